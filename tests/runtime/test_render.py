"""Fast checks of render(), the bootstrap bundle, the user data and the locks.

Not marked ``runtime``: no services, no root, no network, no external tools.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile

import jinja2
import pytest

import modules.mlflow_instance as mi
from modules.mlflow_instance import (
    BootstrapInputs,
    build_bundle,
    lock_for,
    locking,
    render,
    render_user_data,
)
from modules.settings import SettingsError

BASE = dict(
    region="us-east-1",
    ssm_prefix="/mlflow/dev",
    log_group_mlflow="/mlflow/dev/mlflow",
    log_group_nginx="/mlflow/dev/nginx",
    log_group_system="/mlflow/dev/system",
    mlflow_version="3.17.2",
    db_engine="mysql",
    metrics_namespace="MLflow/mlflow-dev",
    mlflow_port=5000,
    http_port=80,
    workers=2,
)
INSTALLED = {
    "/etc/nginx/nginx.conf", "/etc/nginx/conf.d/mlflow.conf", "/etc/systemd/system/mlflow.service",
    "/opt/mlflow/launcher.py", "/opt/mlflow/launcher.env", "/etc/logrotate.d/mlflow",
    "/opt/aws/amazon-cloudwatch-agent/etc/mlflow-agent.json",
}
LONGEST_BUCKET = "b" * 63


def inputs(**overrides) -> BootstrapInputs:
    return BootstrapInputs(**{**BASE, **overrides})


@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_render_is_deterministic_and_shaped(engine):
    a, b = render(inputs(db_engine=engine)), render(inputs(db_engine=engine))
    assert a == b
    assert set(a.files) == INSTALLED and set(a.modes.values()) == {"0644"}
    for content in a.files.values():
        assert content.endswith("\n") and not content.endswith("\n\n")
    assert a.files["/opt/mlflow/launcher.py"] == mi.LAUNCHER_SOURCE.read_text()  # shipped, not rendered
    assert a.script.startswith("#!/bin/bash\n") and "set -euo pipefail" in a.script
    # Every file is installed from the bundle with its mode; MLflow comes only from the lock.
    for path in a.files:
        assert f"install -D -m 0644 -o root -g root files{path} {path}\n" in a.script
    assert "UV_NO_CACHE=1 ./install-venv.sh python3.11 /opt/mlflow\n" in a.script
    assert "pip install" not in a.script and "mlflow[auth]" not in a.script


def test_install_script_installs_only_hash_locked_wheels():
    text = mi.INSTALL_SCRIPT.read_text()
    installs = [line for line in text.replace("\\\n", " ").splitlines() if " install " in line]
    assert len(installs) == 2  # the installer, then MLflow's venv
    for line in installs:
        assert "--require-hashes" in line and "--no-deps" in line and "--only-binary" in line
    assert '-r "$here/uv.txt"' in installs[0] and '-r "$here/requirements.txt"' in installs[1]


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_bundle_is_byte_identical_for_the_same_inputs_and_content_addressed():
    a, b = build_bundle(inputs()), build_bundle(inputs())
    assert a.data == b.data and a.sha256 == b.sha256 == hashlib.sha256(a.data).hexdigest()
    assert a.key == f"bootstrap/{a.sha256}.tar.gz"
    assert gzip.decompress(a.data)  # a valid gzip stream
    assert a.data[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    found = members(a.data)
    assert set(found) == {"bootstrap.sh", "install-venv.sh", "db_password_hook.py", "requirements.txt", "uv.txt"} | {
        f"files{p}" for p in INSTALLED}
    assert list(found) == sorted(found)
    for info in found.values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "root", "root", mi.BUNDLE_MTIME)
    assert found["bootstrap.sh"].mode == found["install-venv.sh"].mode == 0o755
    assert a.members["requirements.txt"] == lock_for("3.17.2").read_bytes()
    assert a.members["uv.txt"] == locking.UV_LOCK.read_bytes()
    assert a.members["db_password_hook.py"] == mi.DB_PASSWORD_HOOK.read_bytes()
    assert found["db_password_hook.py"].mode == 0o644


@pytest.mark.parametrize("change", [
    {"db_engine": "postgres"}, {"mlflow_version": "3.16.1"}, {"workers": 3}, {"auth": False},
    {"ssm_names": {k: f"/other/{k}" for k in mi.launcher.REQUIRED_KEYS + mi.launcher.AUTH_KEYS}},
])
def test_any_input_change_changes_the_bundle_and_the_user_data(change):
    a, b = build_bundle(inputs()), build_bundle(inputs(**change))
    assert a.sha256 != b.sha256 and a.key != b.key
    assert render_user_data("bucket", a.key, a.sha256, "us-east-1") != render_user_data(
        "bucket", b.key, b.sha256, "us-east-1")


def test_user_data_is_small_pins_the_sha256_and_leaves_terraform_nothing_to_interpolate():
    bundle = build_bundle(inputs())
    text = render_user_data(LONGEST_BUCKET, bundle.key, bundle.sha256, "ap-southeast-2")
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert len(text.encode()) <= mi.USER_DATA_LIMIT == 4096
    assert f"sha256='{bundle.sha256}'\n" in text and f"key='{bundle.key}'\n" in text
    assert "${" not in text and "%{" not in text
    # The check comes before anything reads the bundle.
    check, untar, run = (text.index("sha256sum --check"), text.index("tar -xzf"), text.index("exec bash"))
    assert check < untar < run
    token = render_user_data("${TfToken[TOKEN.7]}", bundle.key, bundle.sha256, "us-east-1")
    assert token.count("${") == 1  # only the bucket name Terraform fills in


@pytest.mark.parametrize("field, value", [
    ("bucket", "Bad_Bucket"), ("bucket", "x'; reboot; '"), ("key", "a b"), ("sha256", "abc"),
    ("sha256", "A" * 64), ("region", "mars-1"),
])
def test_user_data_rejects_bad_values_naming_them(field, value):
    args = dict(bucket="bucket", key="bootstrap/x.tar.gz", sha256="0" * 64, region="us-east-1")
    with pytest.raises(ValueError, match=rf"render_user_data: {field} .* is not allowed; expected"):
        render_user_data(**{**args, field: value})


def test_only_agent_placeholders_look_like_interpolation():
    rendered = render(inputs())
    text = "".join(rendered.files.values()) + rendered.script
    assert set(re.findall(r"\$\{[^}]*\}", text)) == {"${aws:AutoScalingGroupName}", "${aws:InstanceId}"}
    assert "%{" not in text


def test_agent_config_routes_logs_and_metrics():
    config = json.loads(render(inputs()).files["/opt/aws/amazon-cloudwatch-agent/etc/mlflow-agent.json"])
    routes = {e["file_path"]: e["log_group_name"]
              for e in config["logs"]["logs_collected"]["files"]["collect_list"]}
    assert routes == {
        "/var/log/mlflow/mlflow.log": "/mlflow/dev/mlflow",
        "/var/log/nginx/access.log": "/mlflow/dev/nginx",
        "/var/log/nginx/error.log": "/mlflow/dev/nginx",
        "/var/log/messages": "/mlflow/dev/system",
        "/var/log/cloud-init-output.log": "/mlflow/dev/system",
        "/var/log/secure": "/mlflow/dev/system",
    }
    assert config["metrics"]["namespace"] == "MLflow/mlflow-dev"
    collected = config["metrics"]["metrics_collected"]
    assert collected["mem"]["measurement"] == ["mem_used_percent"]
    assert collected["disk"]["measurement"] == ["disk_used_percent"]


def nginx_routes(site: str) -> dict[str, str]:
    """location prefix -> upstream, from the rendered site (prefix locations only, as nginx.conf.j2 has)."""
    server_block = site.split("\nserver {", 1)[1]
    blocks = re.findall(r"location\s+(\S+)\s*\{([^}]*)\}", server_block)
    assert all(not prefix.startswith(("~", "=", "^")) for prefix, _ in blocks)  # no regex or exact ones
    return {prefix: re.search(r"proxy_pass http://(\w+);", body).group(1) for prefix, body in blocks}


def upstream_of(routes: dict[str, str], path: str) -> str:
    """nginx's choice among prefix locations: the longest matching prefix."""
    return routes[max((p for p in routes if path.startswith(p)), key=len)]


def test_nginx_site_routes_the_rest_api_to_the_api_server_and_the_rest_to_the_ui_server():
    site = render(inputs(mlflow_port=5055, http_port=8080, workers=3)).files["/etc/nginx/conf.d/mlflow.conf"]
    assert "listen 8080 default_server;" in site
    ui = site.split("upstream mlflow_ui {", 1)[1].split("}", 1)[0]
    api = site.split("upstream mlflow_api {", 1)[1].split("}", 1)[0]
    assert re.findall(r"^\s*server (.+);", ui, re.M) == ["127.0.0.1:5055"]
    # The API server first; the UI server, which serves the same API, only while it is down.
    assert re.findall(r"^\s*server (.+);", api, re.M) == ["127.0.0.1:5056 max_fails=1 fail_timeout=5s",
                                                        "127.0.0.1:5055 backup"]
    routes = nginx_routes(site)
    for path in ("/api/2.0/mlflow/runs/log-batch", "/ajax-api/2.0/mlflow/experiments/search",
                 "/api/3.0/mlflow/traces", "/ajax-api/3.0/mlflow/logged-models/search",
                 "/api/2.0/mlflow/users/create"):
        assert upstream_of(routes, path) == "mlflow_api", path
    for path in ("/", "/health", "/static-files/index.html", "/api/2.0/mlflow-artifacts/artifacts/1/a.bin",
                 "/ajax-api/2.0/mlflow-artifacts/artifacts/1/a.bin", "/get-artifact", "/v1/traces",
                 "/gateway/openai/v1/chat/completions", "/ajax-api/3.0/jobs/search",
                 "/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/assistant/config",
                 "/api/3.0/mlflow/mcp-servers/x/versions", "/version"):
        assert upstream_of(routes, path) == "mlflow_ui", path
    server_block = site.split("\nserver {", 1)[1]
    assert "return" not in server_block.replace("proxy_", "")  # nginx never answers itself, /health included
    for directive in ("client_max_body_size 0;", "server_tokens off;", "proxy_set_header Host $host;",
                      "X-Forwarded-For", "X-Forwarded-Proto", "proxy_read_timeout 900s;"):
        assert directive in server_block
    # Streaming (artifacts) on the UI server; the API buffered both ways (a sync worker never waits
    # on a slow client).
    for prefix, body in re.findall(r"location\s+(\S+)\s*\{([^}]*)\}", server_block):
        streams = "proxy_request_buffering off;" in body and "proxy_buffering off;" in body
        assert streams == (routes[prefix] == "mlflow_ui"), prefix


def test_every_fastapi_only_route_of_the_default_mlflow_stays_on_the_ui_server():
    """The API server runs MLflow's Flask app, which lacks the routes MLflow serves only through its
    FastAPI app (otel, jobs, gateway, assistant, artifacts, MCP, server info): nginx must send each
    of them to the UI server. Checked against the MLflow of the project's venv, the default pin."""
    import mlflow
    from mlflow.server.fastapi_app import create_fastapi_app
    from starlette.routing import Mount

    assert mlflow.__version__ == inputs().mlflow_version
    routes = nginx_routes(render(inputs()).files["/etc/nginx/conf.d/mlflow.conf"])

    def paths(items, prefix=""):
        for route in items:
            if isinstance(route, Mount):
                continue  # the Flask app, mounted at /
            router = getattr(route, "original_router", None)  # an include_router: its prefix + its routes
            if router is not None:
                yield from paths(router.routes, prefix + route.include_context.prefix)
            else:
                yield prefix + route.path

    found = sorted(set(paths(create_fastapi_app().routes)))
    assert len(found) >= 20 and "/v1/traces" in found and "/api/3.0/mlflow/server-info" in found, found
    misrouted = [p for p in found if upstream_of(routes, p.split("{")[0]) != "mlflow_ui"]
    assert not misrouted, f"FastAPI-only routes nginx sends to the API server: {misrouted}"


def test_unit_hardening_and_launcher_configuration():
    rendered = render(inputs())
    unit = rendered.files["/etc/systemd/system/mlflow.service"].splitlines()
    for line in ("User=mlflow", "KillMode=control-group", "Restart=always", "NoNewPrivileges=true",
                 "ProtectSystem=strict", "PrivateTmp=true", "ReadWritePaths=/var/log/mlflow /var/lib/mlflow",
                 "StandardOutput=append:/var/log/mlflow/mlflow.log",
                 "Environment=MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
                 "EnvironmentFile=/opt/mlflow/launcher.env",
                 "ExecStart=/opt/mlflow/venv/bin/python /opt/mlflow/launcher.py"):
        assert line in unit
    env = rendered.files["/opt/mlflow/launcher.env"]
    assert "MLFLOW_LAUNCH_SSM_DB_PASSWORD=/mlflow/dev/db/password\n" in env
    assert "MLFLOW_LAUNCH_DB_ENGINE=mysql\n" in env and "MLFLOW_LAUNCH_AUTH=true\n" in env
    assert "MLFLOW_LAUNCH_API_WORKERS=2\nMLFLOW_LAUNCH_FIRST_PORT=5000\n" in env
    assert "MLFLOW_LAUNCH_DB_CONNECTIONS" not in env  # none given: the launcher's default
    assert "MLFLOW_LAUNCH_DB_CONNECTIONS=18\n" in render(inputs(db_connections=18)).files["/opt/mlflow/launcher.env"]
    assert not [line for line in unit if "MLFLOW_WORKERS" in line or "MLFLOW_PORT" in line]  # set per server


@pytest.mark.parametrize("field, value", [
    ("region", "us-east"), ("ssm_prefix", "mlflow/dev"), ("ssm_prefix", "/mlflow/dev/"),
    ("ssm_prefix", "/aws/x"), ("log_group_nginx", "bad group"), ("mlflow_version", "latest"),
    ("mlflow_version", ">=3"), ("db_engine", "oracle"), ("metrics_namespace", "AWS/EC2"),
    ("mlflow_port", 0), ("http_port", 70000), ("workers", 0), ("workers", 33), ("mlflow_port", "5000"),
    ("db_connections", 11),
    ("state_dir", "relative/dir"), ("log_dir", "/var/log/../etc"), ("ca_bundle_path", "/a b"),
    ("install_dir", "/opt/$(reboot)"),
    ("ssm_names", {"db/hostname": "/x/y"}), ("ssm_names", {"db/host": "no-slash"}),
    ("ssm_names", {"db/host": "/ssm/x"}), ("ssm_names", {"db/host": "/x", "db/port": "/x"}),
    ("ssm_names", {"db/host": "/x"}),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        inputs(**{field: value})


def test_ssm_names_missing_keys_are_listed():
    names = {k: f"/d/{k}" for k in mi.launcher.REQUIRED_KEYS}
    with pytest.raises(ValueError, match="ssm_names lacks mlflow/admin_password, mlflow/flask_secret_key"):
        inputs(ssm_names=names)
    assert inputs(ssm_names=names, auth=False).parameter_names == names  # auth off: enough


def test_ports_must_differ_and_extra_fields_are_rejected():
    with pytest.raises(ValueError, match=r"http_port 8080 is one of the servers' ports \(mlflow_port 8080 to 8081\)"):
        inputs(mlflow_port=8080, http_port=8080)
    with pytest.raises(ValueError, match="http_port 8081 is one of the servers' ports"):
        inputs(mlflow_port=8080, http_port=8081, workers=2)
    assert inputs(mlflow_port=8080, http_port=8082, workers=2).http_port == 8082
    with pytest.raises(ValueError, match="db_password"):
        inputs(db_password="x")


def test_templates_reject_undefined_variables():
    with pytest.raises(jinja2.UndefinedError):
        mi._ENV.get_template("nginx.conf.j2").render(http_port=80)


# --- the locks -------------------------------------------------------------------------

def test_a_version_without_a_lock_is_one_clear_settings_error():
    with pytest.raises(SettingsError) as caught:
        build_bundle(inputs(mlflow_version="3.17.1"))
    message = str(caught.value)
    assert "\n" not in message
    assert "mlflow_version: '3.17.1' has no lock file" in message and "make lock MLFLOW_VERSIONS=3.17.1" in message
    assert "3.16.1, 3.17.2" in message
    assert lock_for("3.17.2").name == "mlflow-3.17.2.txt"


@pytest.mark.parametrize("version", ["3.16.1", "3.17.2"])
def test_locks_pin_every_package_by_hash_with_wheels_for_both_architectures(version):
    text = lock_for(version).read_text()
    pins = locking.parse_lock(text)
    assert pins["mlflow"][0] == version and pins["mlflow-skinny"][0] == version
    for name in ("boto3", "redis", "pymysql", "psycopg2-binary", "sqlalchemy", "alembic"):
        assert name in pins
    assert "async-timeout" not in pins  # redis needs it only before CPython 3.11.3
    assert len(pins) > 80 and all(hashes for _, hashes in pins.values())
    requirement_lines = [line for line in text.splitlines()
                         if line and not line.startswith(("#", "    --hash=sha256:"))]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==\S+ \\", line) for line in requirement_lines)  # exact pins
    # Per package, the wheel names the lock lists: a compiled one needs both architectures.
    blocks = re.findall(r"((?:^# .+\.whl\n)+)([A-Za-z0-9._-]+)==", text, re.M)
    assert len(blocks) == len(pins)
    for wheels, name in blocks:
        files = wheels.split()
        universal = any(f.endswith("-none-any.whl") for f in files)
        assert universal or (any("x86_64" in f for f in files) and any("aarch64" in f for f in files)), name


def test_the_installer_lock_pins_uv_for_both_architectures():
    text = locking.UV_LOCK.read_text()
    pins = locking.parse_lock(text)
    assert list(pins) == ["uv"] and pins["uv"][0] == locking.UV_VERSION
    assert "x86_64" in text and "aarch64" in text and len(pins["uv"][1]) >= 2
