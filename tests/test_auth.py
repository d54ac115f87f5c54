"""MLflow authentication (basic auth) on by default: the synthesized SSM secrets and
the rendered bootstrap. No services; the runtime tier (tests/runtime) runs it for real.
"""
from __future__ import annotations

import base64
import configparser
import json
import types

import pytest
from sqlalchemy.engine import make_url

from modules.mlflow_instance import BootstrapInputs, render

SECRETS = ("mlflow_admin_password", "mlflow_flask_secret_key")
UNIT = "/etc/systemd/system/mlflow.service"
LAUNCHER = "/opt/mlflow/launch.py"
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


def launcher(**overrides) -> types.ModuleType:
    module = types.ModuleType("rendered_launch")
    source = render(BootstrapInputs(**{**BASE, **overrides})).files[LAUNCHER]
    exec(compile(source, "launch.py", "exec"), module.__dict__)
    return module


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
    user_data = base64.b64decode(lt["user_data"]).decode()
    assert "random_password" not in user_data and "${ephemeral" not in user_data
    assert "--app-name" in user_data and '"basic-auth"' in user_data
    assert "RuntimeDirectory=mlflow\n" in user_data
    # The launcher knows the parameter names, never their values.
    assert '"mlflow/admin_password", "mlflow/flask_secret_key"' in user_data


# --- the rendered bootstrap -----------------------------------------------------------

@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_rendered_launcher_and_unit_select_basic_auth(engine):
    rendered = render(BootstrapInputs(**{**BASE, "db_engine": engine}))
    unit = rendered.files[UNIT].splitlines()
    assert "RuntimeDirectory=mlflow" in unit and "RuntimeDirectoryMode=0700" in unit
    assert not any(line.startswith("ExecStart=") and "basic-auth" in line for line in unit)
    module = launcher(db_engine=engine)
    assert module.AUTH is True and module.ADMIN == "admin" and module.AUTH_DB == "mlflow_auth"
    assert module.server_argv()[-4:] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert {"mlflow/admin_password", "mlflow/flask_secret_key"} <= set(module.REQUIRED)
    for secret in (VALUES["mlflow/admin_password"], VALUES["mlflow/flask_secret_key"]):
        assert secret not in rendered.user_data


def test_launcher_reads_secrets_in_batches_of_ten():
    module = launcher()
    calls = []

    class FakeSSM:
        def get_parameters(self, Names, WithDecryption):
            assert WithDecryption is True and len(Names) <= 10
            calls.append(Names)
            return {"Parameters": [{"Name": n, "Value": VALUES[n[len("/mlflow/dev/"):]]}
                                   for n in Names if n[len("/mlflow/dev/"):] in VALUES]}

    assert module.read_parameters(FakeSSM()) == VALUES
    assert len(calls) == 2

    class Missing(FakeSSM):
        def get_parameters(self, Names, WithDecryption):
            reply = super().get_parameters(Names, WithDecryption)
            return {"Parameters": [p for p in reply["Parameters"] if not p["Name"].endswith("flask_secret_key")]}

    with pytest.raises(SystemExit, match="mlflow/flask_secret_key"):
        module.read_parameters(Missing())


@pytest.mark.parametrize("engine, scheme", [("mysql", "mysql+pymysql"), ("postgres", "postgresql+psycopg2")])
def test_auth_config_file_and_server_environment(engine, scheme):
    module = launcher(db_engine=engine, auth_admin_username="boss", auth_db_name="tracking_users")
    ini = module.auth_config(VALUES)
    config = configparser.ConfigParser()  # as MLflow reads it (with % interpolation)
    config.read_string(ini)
    section = config["mlflow"]
    assert section["default_permission"] == "NO_PERMISSIONS"
    assert section["admin_username"] == "boss"
    url = make_url(section["database_uri"])
    assert url.drivername == scheme and url.database == "tracking_users"
    assert (url.username, url.password, url.host) == ("mlflow_admin", VALUES["db/password"], "db.example")
    # The admin password and the Flask key go through the environment, not the file.
    assert VALUES["mlflow/admin_password"] not in ini and VALUES["mlflow/flask_secret_key"] not in ini
    env = module.server_environment(VALUES, {"MLFLOW_WORKERS": "2", "MLFLOW_AUTH_ADMIN_USERNAME": "x"},
                                    "/run/mlflow/basic_auth.ini")
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/run/mlflow/basic_auth.ini"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == VALUES["mlflow/admin_password"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == VALUES["mlflow/flask_secret_key"]
    assert "MLFLOW_AUTH_ADMIN_USERNAME" not in env


def test_auth_config_file_is_private(tmp_path):
    module = launcher()
    path = tmp_path / "basic_auth.ini"
    (tmp_path / "basic_auth.ini.tmp").write_text("stale")
    module.write_private(str(path), "[mlflow]\n")
    assert path.read_text() == "[mlflow]\n" and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["basic_auth.ini"]


def test_auth_off_keeps_the_old_behaviour():
    rendered = render(BootstrapInputs(**BASE, auth=False))
    assert "RuntimeDirectory" not in rendered.files[UNIT]
    module = launcher(auth=False)
    assert module.AUTH is False
    assert module.server_argv()[-2:] == ["mlflow", "server"]
    assert "mlflow/admin_password" not in module.REQUIRED
    env = module.server_environment(VALUES, {"MLFLOW_WORKERS": "2"})
    assert not any(k.startswith(("MLFLOW_AUTH", "MLFLOW_FLASK")) for k in env)


@pytest.mark.parametrize("field, value", [
    ("auth_db_name", "Mlflow-Auth"), ("auth_db_name", "x" * 64), ("auth_db_name", "a;drop"),
    ("auth_admin_username", "ad min"), ("auth_admin_username", "a\nb"), ("auth", "yes"),
])
def test_bad_auth_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        BootstrapInputs(**BASE, **{field: value})
