"""The MLflow instance bootstrap: typed inputs, template files, one render function.

``render(BootstrapInputs(...))`` returns the EC2 user data (a bash script for
Amazon Linux 2023) and the files it installs. The user data embeds every file
verbatim in a quoted heredoc, so it carries exactly what ``render`` produced;
``Rendered.files`` is the same content keyed by install path, for tests and
review. Nothing Terraform computes appears here: the launcher reads the
deployment's values (database, cache, bucket, host names) from SSM Parameter
Store under ``ssm_prefix`` when the service starts. Secrets never enter the
user data.

With ``auth`` (the default) the launcher also reads the MLflow admin password
and the Flask secret key from SSM and starts ``mlflow server --app-name
basic-auth`` with its user store in the database ``auth_db_name`` on the same
server (see docs/auth.md).

Templates use Jinja2 with ``StrictUndefined``; inputs are validated by
pydantic, so a bad value raises ``ValueError`` (pydantic's ``ValidationError``)
naming the field. ``render`` is pure: the same inputs give byte-identical output.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TEMPLATES = Path(__file__).resolve().parent / "templates"

# EC2 rejects user data over 16 KiB (before base64).
USER_DATA_LIMIT = 16 * 1024
HEREDOC_DELIMITER = "MLFLOW_BOOTSTRAP_EOF"
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
DB_DRIVERS = {"mysql": "pymysql", "postgres": "psycopg2-binary"}

NGINX_MAIN_PATH = "/etc/nginx/nginx.conf"
NGINX_SITE_PATH = "/etc/nginx/conf.d/mlflow.conf"
UNIT_PATH = "/etc/systemd/system/mlflow.service"
LOGROTATE_PATH = "/etc/logrotate.d/mlflow"
AGENT_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/mlflow-agent.json"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_SSM_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_LOG_GROUP = re.compile(r"^[A-Za-z0-9_./#-]{1,512}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_./#:-]{1,255}$")
_VERSION = re.compile(r"^\d+(\.\d+){1,3}((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_FS_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_DB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


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
    workers: int = Field(default=0, ge=0, le=64, description="0 = from CPUs and memory at boot")
    install_dir: str = "/opt/mlflow"
    state_dir: str = "/var/lib/mlflow"
    log_dir: str = "/var/log/mlflow"
    ca_bundle_path: str = "/opt/mlflow/rds-global-bundle.pem"
    auth: bool = Field(default=True, description="MLflow basic auth (--app-name basic-auth)")
    auth_admin_username: str = "admin"
    auth_db_name: str = Field(
        default="mlflow_auth",
        description="database of the auth user store, created on the RDS server by the launcher",
    )

    @field_validator("auth_db_name")
    @classmethod
    def _auth_db_name(cls, v: str) -> str:
        if not _DB_NAME.match(v):
            raise ValueError(f"{v!r} is not a database name (lowercase letter, then a-z, 0-9, '_'; at most 63)")
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
        if not _SSM_PATH.match(v) or len(v) > 900:
            raise ValueError(
                f"{v!r} is not an SSM parameter path: '/'-separated segments of letters,"
                " digits, '_', '.', '-', starting with '/' and without a trailing '/'"
            )
        if v.lower().startswith(("/aws", "/ssm")):
            raise ValueError(f"{v!r}: SSM reserves paths starting with /aws and /ssm")
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

    @model_validator(mode="after")
    def _distinct_ports(self) -> "BootstrapInputs":
        if self.mlflow_port == self.http_port:
            raise ValueError(f"mlflow_port and http_port are both {self.http_port}; they must differ")
        return self

    @property
    def launcher_path(self) -> str:
        return f"{self.install_dir}/launch.py"


@dataclass(frozen=True)
class Rendered:
    """The user-data script and the files it installs (install path -> content)."""

    user_data: str
    files: dict[str, str]


@dataclass(frozen=True)
class _File:
    path: str
    mode: str
    content: str

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.path)


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _template(name: str, **context: object) -> str:
    text = _ENV.get_template(name).render(**context)
    return text.rstrip("\n") + "\n"


def render(inputs: BootstrapInputs) -> Rendered:
    """Render the bootstrap for ``inputs``. Pure and deterministic."""
    if not isinstance(inputs, BootstrapInputs):
        raise TypeError(f"render() takes BootstrapInputs, not {type(inputs).__name__}")
    values = inputs.model_dump()
    common = dict(values, launcher_path=inputs.launcher_path)

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

    files = [
        _File(NGINX_MAIN_PATH, "0644", _template("nginx-main.conf.j2", **common)),
        _File(NGINX_SITE_PATH, "0644", _template("nginx.conf.j2", **common)),
        _File(UNIT_PATH, "0644", _template("mlflow.service.j2", **common)),
        _File(inputs.launcher_path, "0644", _template("mlflow-launch.py.j2", **common)),
        _File(LOGROTATE_PATH, "0644", _template("logrotate.j2", **common)),
        _File(AGENT_CONFIG_PATH, "0644",
              _template("cloudwatch-agent.json.j2", **common, log_files=log_files)),
    ]
    for f in files:
        if any(line == HEREDOC_DELIMITER for line in f.content.split("\n")):
            raise ValueError(f"{f.path} contains the heredoc delimiter {HEREDOC_DELIMITER}")

    user_data = _template(
        "user-data.sh.j2",
        **common,
        files=files,
        delimiter=HEREDOC_DELIMITER,
        agent_config_path=AGENT_CONFIG_PATH,
        ca_bundle_url=RDS_CA_BUNDLE_URL,
        db_driver=DB_DRIVERS[inputs.db_engine],
    )
    size = len(user_data.encode("utf-8"))
    if size > USER_DATA_LIMIT:
        raise ValueError(f"rendered user data is {size} bytes; EC2 accepts at most {USER_DATA_LIMIT}")
    return Rendered(user_data=user_data, files={f.path: f.content for f in files})


__all__ = ["BootstrapInputs", "Rendered", "render", "USER_DATA_LIMIT"]
