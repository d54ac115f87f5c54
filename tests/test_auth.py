"""MLflow authentication (basic auth) on by default: the synthesized SSM secrets and
the rendered bootstrap. No services; the runtime tier (tests/runtime) runs it for real.
"""
from __future__ import annotations

import base64
import io
import json
import tarfile

import pytest

from modules.mlflow_instance import BootstrapInputs, render
from modules.mlflow_instance import launcher as L

SECRETS = ("mlflow_admin_password", "mlflow_flask_secret_key")
UNIT = "/etc/systemd/system/mlflow.service"
LAUNCHER_ENV = "/opt/mlflow/launcher.env"
BASE = dict(
    region="us-east-1", ssm_prefix="/mlflow/dev", log_group_mlflow="/mlflow/dev/mlflow",
    log_group_nginx="/mlflow/dev/nginx", log_group_system="/mlflow/dev/system",
    mlflow_version="3.17.2", db_engine="mysql", metrics_namespace="MLflow/mlflow-dev",
)
VALUES = {
    "db/host": "db.example", "db/port": "3306", "db/name": "mlflow", "db/username": "mlflow_admin",
    "db/password": "p@ss:w/rd%25+&=?#x", "mlflow/artifact_bucket": "bucket",
    "mlflow/allowed_hosts": "alb.example", "mlflow/admin_password": "AdminSecret0123456789",
    "mlflow/flask_secret_key": "FlaskSecret0123456789",
}


def launcher_config(**overrides) -> L.Config:
    """The launcher's configuration as the rendered launcher.env and unit give it."""
    env_file = render(BootstrapInputs(**{**BASE, **overrides})).files[LAUNCHER_ENV]
    environ = dict(line.split("=", 1) for line in env_file.splitlines() if line and not line.startswith("#"))
    return L.Config.from_environ({**environ, "AWS_REGION": "us-east-1"})


# --- the synthesized stack ------------------------------------------------------------

@pytest.mark.parametrize("config", ["default", "second"])
def test_auth_secrets_are_write_only_securestrings_from_ephemeral_passwords(config, request):
    stack = request.getfixturevalue(config)
    prefix = "/mlflow/dev" if config == "default" else "/mlflow/second"
    ephemeral = stack["ephemeral"]["aws_secretsmanager_random_password"]
    for name in SECRETS:
        param = stack["resource"]["aws_ssm_parameter"][name]
        assert param["name"] == f"{prefix}/mlflow/{name.removeprefix('mlflow_')}"
        assert param["type"] == "SecureString"
        assert param["key_id"] in ("${aws_kms_key.mlflow.key_id}", "${aws_kms_key.mlflow.arn}")
        assert param["value_wo"] == f"${{ephemeral.aws_secretsmanager_random_password.{name}.random_password}}"
        assert isinstance(param["value_wo_version"], int) and param["value_wo_version"] >= 1
        assert "value" not in param and "insecure_value" not in param
        # Letters and digits only: nothing to quote in the ini file, a URL or basic auth.
        assert ephemeral[name]["exclude_punctuation"] is True
        assert ephemeral[name]["password_length"] >= 32


def test_no_secret_value_is_in_the_synthesized_json(default):
    text = json.dumps(default)
    # The only mentions of the generated values are the references in value_wo.
    assert text.count("random_password}") == text.count("value_wo\": \"${ephemeral") + text.count(
        "password_wo\": \"${ephemeral")


def test_launch_template_user_data_has_no_secret_and_selects_basic_auth(default):
    lt = default["resource"]["aws_launch_template"]["mlflow"]
    bundle = base64.b64decode(default["resource"]["aws_s3_object"]["bootstrap_bundle"]["content_base64"])
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    for text in (lt["user_data"], *files.values()):
        assert "random_password" not in text and "${ephemeral" not in text
    assert "RuntimeDirectory=mlflow\n" in files[f"files{UNIT}"]
    # The launcher knows the parameter names, never their values.
    env = files[f"files{LAUNCHER_ENV}"]
    assert "MLFLOW_LAUNCH_AUTH=true\n" in env
    assert "MLFLOW_LAUNCH_SSM_MLFLOW_ADMIN_PASSWORD=/mlflow/dev/mlflow/admin_password\n" in env
    assert "MLFLOW_LAUNCH_SSM_MLFLOW_FLASK_SECRET_KEY=/mlflow/dev/mlflow/flask_secret_key\n" in env


# --- the rendered bootstrap -----------------------------------------------------------

@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_rendered_launcher_and_unit_select_basic_auth(engine):
    rendered = render(BootstrapInputs(**{**BASE, "db_engine": engine}))
    unit = rendered.files[UNIT].splitlines()
    assert "RuntimeDirectory=mlflow" in unit and "RuntimeDirectoryMode=0700" in unit
    assert not any(line.startswith("ExecStart=") and "basic-auth" in line for line in unit)
    config = launcher_config(db_engine=engine)
    assert config.auth is True and config.admin_username == "admin" and config.auth_db_name == "mlflow_auth"
    for argv in (L.ui_argv(config), L.api_argv(config, 2)):
        assert argv[argv.index("--app-name") + 1] == "basic-auth"
    assert {"mlflow/admin_password", "mlflow/flask_secret_key"} <= set(config.required_keys)
    # The secrets reach MLflow through its environment only: never its command line (visible in
    # ps) nor the auth config file, and the admin password only where MLflow reads it.
    env = L.server_environment(VALUES, {}, config, auth_config_path="/run/mlflow/basic_auth.ini")
    argv = " ".join(L.ui_argv(config) + L.api_argv(config, 2))
    ini = L.auth_config(VALUES, config)
    for secret in (VALUES["mlflow/admin_password"], VALUES["mlflow/flask_secret_key"]):
        assert secret in "".join(env.values()), "the server never gets the secret"
        assert secret not in argv and secret not in ini


def test_launcher_reads_secrets_in_batches_of_ten():
    config = launcher_config()
    calls = []

    class FakeSSM:
        def get_parameters(self, Names, WithDecryption):  # noqa: N803 (boto3's names)
            assert WithDecryption is True and len(Names) <= 10
            calls.append(Names)
            return {"Parameters": [{"Name": n, "Value": VALUES[n[len("/mlflow/dev/"):]]}
                                   for n in Names if n[len("/mlflow/dev/"):] in VALUES]}

    assert L.read_parameters(FakeSSM(), config) == VALUES
    assert len(calls) == 2

    class Missing(FakeSSM):
        def get_parameters(self, Names, WithDecryption):  # noqa: N803
            reply = super().get_parameters(Names, WithDecryption)
            return {"Parameters": [p for p in reply["Parameters"] if not p["Name"].endswith("flask_secret_key")]}

    with pytest.raises(SystemExit, match="mlflow/flask_secret_key"):
        L.read_parameters(Missing(), config)


def test_auth_off_keeps_the_old_behaviour():
    rendered = render(BootstrapInputs(**BASE, auth=False))
    assert "RuntimeDirectory" not in rendered.files[UNIT]
    config = launcher_config(auth=False)
    assert config.auth is False
    assert "--app-name" not in L.ui_argv(config) + L.api_argv(config, 1)
    assert "mlflow/admin_password" not in config.required_keys
    env = L.server_environment(VALUES, {"MLFLOW_WORKERS": "2"}, config)
    assert not any(k.startswith(("MLFLOW_AUTH", "MLFLOW_FLASK")) for k in env)


@pytest.mark.parametrize("field, value", [
    ("auth_db_name", "Mlflow-Auth"), ("auth_db_name", "x" * 64), ("auth_db_name", "a;drop"),
    ("auth_admin_username", "ad min"), ("auth_admin_username", "a\nb"), ("auth", "yes"),
])
def test_bad_auth_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        BootstrapInputs(**BASE, **{field: value})
