"""The MLflow instance bootstrap: typed inputs, a bundle, and a small user data.

``build_bundle(BootstrapInputs(...))`` packs everything an instance needs into
one deterministic ``.tar.gz`` (same inputs, same bytes): the rendered config
files (nginx, the systemd unit, logrotate, the CloudWatch agent), the launcher
module (``launcher.py``) with its configuration (``launcher.env``), the
bootstrap script, and the hash locks of MLflow's venv and of the installer.
The stack stores it in S3 under a content-addressed key, and
``render_user_data(bucket, key, sha256, region)`` is the user data: it
downloads the bundle, checks its sha256 and only then runs it. So any change
to the bundle changes the user data, and the launch template gets a version.

``render(inputs)`` returns the files (install path -> content) and the
bootstrap script, for tests and review. Nothing Terraform computes is in the
bundle, and no secret: the launcher reads the deployment's values from SSM
(by the names of ``ssm_names``, default ``<ssm_prefix>/<key>``) at each start.

Templates use Jinja2 with ``StrictUndefined``; inputs are validated by
pydantic, so a bad value raises ``ValueError`` naming the field. A version
without a lock raises ``modules.settings.SettingsError`` naming ``make lock``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import launcher
from .locking import UV_LOCK, lock_for

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
LAUNCHER_SOURCE = HERE / "launcher.py"
INSTALL_SCRIPT = HERE / "install-venv.sh"
DB_PASSWORD_HOOK = HERE / "db_password_hook.py"  # install-venv.sh puts it into the venv

USER_DATA_LIMIT = 4 * 1024  # ours; EC2 takes 16 KiB
BUNDLE_PREFIX = "bootstrap/"
BUNDLE_MTIME = 946684800  # 2000-01-01T00:00:00Z on every member: same inputs, same bytes
DOWNLOAD_ATTEMPTS = 10
DOWNLOAD_RETRY_SECONDS = 6
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

NGINX_MAIN_PATH = "/etc/nginx/nginx.conf"
NGINX_SITE_PATH = "/etc/nginx/conf.d/mlflow.conf"
UNIT_PATH = "/etc/systemd/system/mlflow.service"
LOGROTATE_PATH = "/etc/logrotate.d/mlflow"
AGENT_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/mlflow-agent.json"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_SSM_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_SSM_PATH_MAX = 900  # leaves room for the keys under a prefix (SSM names: 1011 characters)
_LOG_GROUP = re.compile(r"^[A-Za-z0-9_./#-]{1,512}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_./#:-]{1,255}$")
_VERSION = re.compile(r"^\d+(\.\d+){1,3}((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_FS_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_DB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CDKTF_TOKEN = re.compile(r"^\$\{TfToken\[TOKEN\.\d+\]\}$")  # a bucket name Terraform fills in
_KEY = re.compile(r"^[A-Za-z0-9/._-]{1,512}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _ssm_name_problem(v: str) -> str | None:
    if not _SSM_PATH.match(v) or len(v) > _SSM_PATH_MAX:
        return (f"{v!r} is not an SSM parameter path: '/'-separated segments of letters,"
                " digits, '_', '.', '-', starting with '/' and without a trailing '/'")
    if v.lower().startswith(("/aws", "/ssm")):
        return f"{v!r}: SSM reserves paths starting with /aws and /ssm"
    return None


class BootstrapInputs(BaseModel):
    """Everything the bootstrap needs that is known at synth time.

    The path fields have production defaults; tests point them at temporary
    directories (and ``ca_bundle_path`` at a local CA) so the rendered launcher
    and unit run unchanged on a developer machine.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    region: str
    ssm_prefix: str
    log_group_mlflow: str
    log_group_nginx: str
    log_group_system: str
    mlflow_version: str
    db_engine: Literal["mysql", "postgres"]
    metrics_namespace: str
    mlflow_port: int = Field(default=5000, ge=1024, le=65535)
    http_port: int = Field(default=80, ge=1, le=65535)
    workers: int = Field(default=2, ge=1, le=32,
                         description="API workers (gunicorn) of the API server on mlflow_port + 1, beside the "
                                     "UI server on mlflow_port; the launcher runs fewer if db_connections "
                                     "holds fewer")
    db_connections: int | None = Field(
        default=None, ge=1, le=100_000,
        description="database connections the instance's servers may hold (modules/db_budget.py); "
                    "None = the launcher's default")
    install_dir: str = "/opt/mlflow"
    state_dir: str = "/var/lib/mlflow"
    log_dir: str = "/var/log/mlflow"
    ca_bundle_path: str = "/opt/mlflow/rds-global-bundle.pem"
    auth: bool = Field(default=True, description="MLflow basic auth (--app-name basic-auth)")
    auth_secrets_version: int = Field(
        default=1, ge=1, description="in launcher.env only: a bump changes the bundle, so the group rolls and "
        "every server starts with the new admin password and Flask secret key (the launcher ignores it)")
    auth_admin_username: str = "admin"
    auth_db_name: str = Field(
        default="mlflow_auth",
        description="database of the auth user store, created on the RDS server by the launcher",
    )
    ssm_names: dict[str, str] | None = Field(
        default=None,
        description="logical key (db/host, ...) -> full SSM parameter name; None = <ssm_prefix>/<key>",
    )
    artifacts_prefix: str = Field(
        default=launcher.ARTIFACTS_PREFIX,
        description="path of MLflow's artifacts destination in the bucket; '' = the bucket root",
    )
    rewrite_legacy_artifact_uris: bool = Field(
        default=False,
        description="at start, rewrite s3:// URIs under the destination to mlflow-artifacts:/ (launcher)",
    )

    @field_validator("auth_db_name")
    @classmethod
    def _auth_db_name(cls, v: str) -> str:
        if not _DB_NAME.match(v):
            raise ValueError(f"{v!r} is not a database name (lowercase letter, then a-z, 0-9, '_'; at most 63)")
        return v

    @field_validator("artifacts_prefix")
    @classmethod
    def _artifacts_prefix(cls, v: str) -> str:
        problem = launcher.artifacts_prefix_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("auth_admin_username")
    @classmethod
    def _auth_admin_username(cls, v: str) -> str:
        if not _USERNAME.match(v):
            raise ValueError(f"{v!r} is not a plain user name (letters, digits, '_', '.', '@', '-')")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not _REGION.match(v):
            raise ValueError(f"{v!r} is not an AWS region name such as 'us-east-1'")
        return v

    @field_validator("ssm_prefix")
    @classmethod
    def _ssm_prefix(cls, v: str) -> str:
        problem = _ssm_name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("log_group_mlflow", "log_group_nginx", "log_group_system")
    @classmethod
    def _log_group(cls, v: str) -> str:
        if not _LOG_GROUP.match(v):
            raise ValueError(f"{v!r} is not a CloudWatch log group name")
        return v

    @field_validator("metrics_namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not _NAMESPACE.match(v) or v.startswith("AWS/"):
            raise ValueError(f"{v!r} is not a custom CloudWatch namespace (and must not start with 'AWS/')")
        return v

    @field_validator("mlflow_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _VERSION.match(v):
            raise ValueError(f"{v!r} is not an exact release version such as '3.17.2'")
        return v

    @field_validator("install_dir", "state_dir", "log_dir", "ca_bundle_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _FS_PATH.match(v) or posixpath.normpath(v) != v or "/../" in f"{v}/":
            raise ValueError(
                f"{v!r} is not a plain absolute path (letters, digits, '_', '.', '-', '/'; no '..')"
            )
        return v

    @field_validator("ssm_names")
    @classmethod
    def _ssm_names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        unknown = sorted(set(v) - set(launcher.ALL_KEYS))
        if unknown:
            raise ValueError(f"unknown keys {unknown}; allowed: {', '.join(launcher.ALL_KEYS)}")
        for key, name in v.items():
            problem = _ssm_name_problem(name)
            if problem:
                raise ValueError(f"{key}: {problem}")
        if len(set(v.values())) != len(v):
            raise ValueError(f"{v!r}: two keys share one parameter name; each key needs its own")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> BootstrapInputs:
        last = self.mlflow_port + launcher.PORTS - 1
        if self.mlflow_port <= self.http_port <= last:
            raise ValueError(f"http_port {self.http_port} is one of the servers' ports (mlflow_port "
                             f"{self.mlflow_port} to {last}); they must differ")
        if last > 65535:
            raise ValueError(f"mlflow_port {self.mlflow_port} leaves no room for the API server's port "
                             f"(mlflow_port + 1)")
        if self.db_connections is not None and launcher.serving_plan(self.db_connections, self.workers,
                                                                     self.auth) is None:
            least = 2 * launcher.connections_per_process(self.auth)
            raise ValueError(f"db_connections {self.db_connections} is too few for the UI server and one "
                             f"API worker (at least {least})")
        if self.ssm_names is not None:
            needed = launcher.REQUIRED_KEYS + (launcher.AUTH_KEYS if self.auth else ())
            missing = [k for k in needed if k not in self.ssm_names]
            if missing:
                raise ValueError(f"ssm_names lacks {', '.join(missing)}; it needs a name for each of "
                                 f"{', '.join(needed)} (cache/endpoint and cache/port are optional)")
        return self

    @property
    def launcher_path(self) -> str:
        return f"{self.install_dir}/launcher.py"

    @property
    def launcher_env_path(self) -> str:
        return f"{self.install_dir}/launcher.env"

    @property
    def parameter_names(self) -> dict[str, str]:
        """logical key -> full SSM parameter name the launcher reads."""
        if self.ssm_names is not None:
            return {k: self.ssm_names[k] for k in launcher.ALL_KEYS if k in self.ssm_names}
        keys = [k for k in launcher.ALL_KEYS if self.auth or k not in launcher.AUTH_KEYS]
        return {k: f"{self.ssm_prefix}/{k}" for k in keys}


@dataclass(frozen=True)
class InstanceFile:
    path: str
    mode: str
    content: str


@dataclass(frozen=True)
class Rendered:
    """The files an instance installs (install path -> content) and the bootstrap script."""

    files: dict[str, str]
    modes: dict[str, str]
    script: str


@dataclass(frozen=True)
class Bundle:
    """The bootstrap bundle: gzipped tar bytes, their sha256 and the S3 key (under BUNDLE_PREFIX)."""

    data: bytes
    sha256: str
    key: str
    members: dict[str, bytes]


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 (shell, nginx, systemd and JSON files; no HTML)
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _template(name: str, **context: object) -> str:
    text = _ENV.get_template(name).render(**context)
    return text.rstrip("\n") + "\n"


def render(inputs: BootstrapInputs) -> Rendered:
    """Render the instance's files and bootstrap script for ``inputs``. Pure and deterministic."""
    if not isinstance(inputs, BootstrapInputs):
        raise TypeError(f"render() takes BootstrapInputs, not {type(inputs).__name__}")
    common = dict(inputs.model_dump(), launcher_path=inputs.launcher_path,
                  launcher_env_path=inputs.launcher_env_path,
                  ui_port=inputs.mlflow_port, api_port=inputs.mlflow_port + 1,
                  api_prefixes=launcher.API_PREFIXES, ui_routes=launcher.UI_ROUTES,
                  api_timeout=launcher.API_TIMEOUT)

    log_files = [
        {"path": f"{inputs.log_dir}/mlflow.log", "group": inputs.log_group_mlflow},
        {"path": "/var/log/nginx/access.log", "group": inputs.log_group_nginx},
        {"path": "/var/log/nginx/error.log", "group": inputs.log_group_nginx},
        {"path": "/var/log/messages", "group": inputs.log_group_system},
        {"path": "/var/log/cloud-init-output.log", "group": inputs.log_group_system},
        {"path": "/var/log/secure", "group": inputs.log_group_system},
    ]
    for entry in log_files:
        # One stream per instance and file; the agent fills in {instance_id}.
        entry["stream"] = "{instance_id}" + entry["path"].replace("/", ".")
    ssm_variables = [(launcher.ssm_variable(k), n) for k, n in inputs.parameter_names.items()]

    files = [
        InstanceFile(NGINX_MAIN_PATH, "0644", _template("nginx-main.conf.j2", **common)),
        InstanceFile(NGINX_SITE_PATH, "0644", _template("nginx.conf.j2", **common)),
        InstanceFile(UNIT_PATH, "0644", _template("mlflow.service.j2", **common)),
        InstanceFile(inputs.launcher_path, "0644", LAUNCHER_SOURCE.read_text()),
        InstanceFile(inputs.launcher_env_path, "0644",
                     _template("launcher.env.j2", **common, ssm_variables=ssm_variables)),
        InstanceFile(LOGROTATE_PATH, "0644", _template("logrotate.j2", **common)),
        InstanceFile(AGENT_CONFIG_PATH, "0644",
                     _template("cloudwatch-agent.json.j2", **common, log_files=log_files)),
    ]
    script = _template("bootstrap.sh.j2", **common, files=files, agent_config_path=AGENT_CONFIG_PATH,
                       ca_bundle_url=RDS_CA_BUNDLE_URL)
    return Rendered(files={f.path: f.content for f in files}, modes={f.path: f.mode for f in files},
                    script=script)


def _tar_gz(members: dict[str, tuple[str, bytes]]) -> bytes:
    """Deterministic .tar.gz of name -> (mode, data): sorted, root-owned, fixed mtime, gzip mtime 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            mode, data = members[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), int(mode, 8), BUNDLE_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build_bundle(inputs: BootstrapInputs) -> Bundle:
    """The bootstrap bundle of ``inputs``: same inputs (and locks), byte-identical bundle."""
    rendered = render(inputs)
    members: dict[str, tuple[str, bytes]] = {
        "bootstrap.sh": ("0755", rendered.script.encode()),
        "install-venv.sh": ("0755", INSTALL_SCRIPT.read_bytes()),
        "db_password_hook.py": ("0644", DB_PASSWORD_HOOK.read_bytes()),
        "requirements.txt": ("0644", lock_for(inputs.mlflow_version).read_bytes()),
        "uv.txt": ("0644", UV_LOCK.read_bytes()),
    }
    for path, content in rendered.files.items():
        members[f"files{path}"] = (rendered.modes[path], content.encode())
    data = _tar_gz(members)
    sha256 = hashlib.sha256(data).hexdigest()
    return Bundle(data=data, sha256=sha256, key=f"{BUNDLE_PREFIX}{sha256}.tar.gz",
                  members={name: content for name, (_, content) in members.items()})


def render_user_data(bucket: str, key: str, sha256: str, region: str) -> str:
    """The user data: fetch s3://bucket/key, stop unless its sha256 is ``sha256``, run its bootstrap.sh.

    ``bucket`` is a bucket name or a cdktf token of one (Terraform fills it in);
    the text has no other ``${`` or ``%{``, so Terraform leaves the rest alone.
    """
    checks = (
        ("bucket", bucket, _BUCKET.match(bucket) or _CDKTF_TOKEN.match(bucket),
         "an S3 bucket name (3-63 of a-z, 0-9, '.', '-') or a cdktf token of one"),
        ("key", key, _KEY.match(key), "an S3 key of letters, digits, '/', '.', '_', '-'"),
        ("sha256", sha256, _SHA256.match(sha256), "64 lowercase hex digits"),
        ("region", region, _REGION.match(region), "an AWS region name such as 'us-east-1'"),
    )
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"render_user_data: {name} {value!r} is not allowed; expected {allowed}")
    text = _template("user-data.sh.j2", bucket=bucket, key=key, sha256=sha256, region=region,
                     attempts=DOWNLOAD_ATTEMPTS, retry_seconds=DOWNLOAD_RETRY_SECONDS)
    longest = text.replace(bucket, "b" * 63) if _CDKTF_TOKEN.match(bucket) else text
    size = len(longest.encode())
    if size > USER_DATA_LIMIT:
        raise ValueError(f"user data is {size} bytes; at most {USER_DATA_LIMIT}")
    return text


__all__ = [
    "BUNDLE_PREFIX",
    "USER_DATA_LIMIT",
    "BootstrapInputs",
    "Bundle",
    "Rendered",
    "build_bundle",
    "lock_for",
    "render",
    "render_user_data",
]
