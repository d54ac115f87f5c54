#!/bin/bash
# Usage: install-venv.sh PYTHON DIR
# Installs the installer (uv) from uv.txt into DIR/installer, then MLflow's venv
# DIR/venv from requirements.txt (both beside this script): wheels only, every
# file checked against the lock's sha256, no dependency resolution.
# uv's cache follows UV_CACHE_DIR / UV_NO_CACHE. Bytecode is compiled here, once:
# the service cannot write it (read-only venv) and imports ~3x slower without it.
# Then the password-rotation hook (db_password_hook.py, beside this script) goes
# into the venv with a .pth file that imports it in every process of the venv;
# it stays inert unless the launcher's variable is set (the server only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=$1
dir=$2
export UV_PYTHON_DOWNLOADS=never

"$python" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
    --no-deps --require-hashes --only-binary=:all: --target "$dir/installer" -r "$here/uv.txt"
"$python" -m venv --without-pip "$dir/venv"
"$dir/installer/bin/uv" pip install --quiet --python "$dir/venv/bin/python" --no-deps \
    --require-hashes --only-binary :all: --compile-bytecode -r "$here/requirements.txt"
site=$("$dir/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
install -m 0644 "$here/db_password_hook.py" "$site/mlflow_db_password_hook.py"
"$dir/venv/bin/python" -m compileall -q "$site/mlflow_db_password_hook.py"
echo "import mlflow_db_password_hook" >"$site/mlflow_db_password_hook.pth"
