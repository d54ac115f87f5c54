"""Fast checks of render() and the rendered launcher's pure functions.

Not marked ``runtime``: no services, no root, no external tools.
"""
from __future__ import annotations

import json
import re
import types

import jinja2
import pytest
from sqlalchemy.engine import make_url

import modules.mlflow_instance as mi
from modules.mlflow_instance import BootstrapInputs, render

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
    workers=0,
)


def inputs(**overrides) -> BootstrapInputs:
    return BootstrapInputs(**{**BASE, **overrides})


def launcher(rendered) -> types.ModuleType:
    module = types.ModuleType("rendered_launch")
    exec(compile(rendered.files["/opt/mlflow/launch.py"], "launch.py", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_render_is_deterministic_and_shaped(engine):
    a, b = render(inputs(db_engine=engine)), render(inputs(db_engine=engine))
    assert a.user_data == b.user_data and a.files == b.files
    assert a.user_data.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in a.user_data
    assert len(a.user_data.encode()) <= mi.USER_DATA_LIMIT
    assert set(a.files) == {
        "/etc/nginx/nginx.conf", "/etc/nginx/conf.d/mlflow.conf",
        "/etc/systemd/system/mlflow.service", "/opt/mlflow/launch.py",
        "/etc/logrotate.d/mlflow", "/opt/aws/amazon-cloudwatch-agent/etc/mlflow-agent.json",
    }
    for content in a.files.values():
        assert content.endswith("\n") and not content.endswith("\n\n")
    driver = {"mysql": "pymysql", "postgres": "psycopg2-binary"}[engine]
    assert f"'mlflow[auth]==3.17.2' boto3 redis {driver}\n" in a.user_data


def test_only_agent_placeholders_look_like_interpolation():
    rendered = render(inputs())
    # Terraform would interpolate ${...} and %{...}; the only ones are the
    # CloudWatch agent's own placeholders (the lead escapes them in JSON).
    assert set(re.findall(r"\$\{[^}]*\}", rendered.user_data)) == {
        "${aws:AutoScalingGroupName}", "${aws:InstanceId}"}
    assert "%{" not in rendered.user_data


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


def test_nginx_site_proxies_everything():
    site = render(inputs(mlflow_port=5055, http_port=8080)).files["/etc/nginx/conf.d/mlflow.conf"]
    assert "server 127.0.0.1:5055;" in site and "listen 8080 default_server;" in site
    assert "/health" not in site.replace("/health itself", "").split("server {", 1)[1]
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;", "server_tokens off;",
                      "proxy_set_header Host $host;", "X-Forwarded-For", "X-Forwarded-Proto"):
        assert directive in site


def test_unit_hardening():
    unit = render(inputs()).files["/etc/systemd/system/mlflow.service"]
    for line in ("User=mlflow", "KillMode=control-group", "Restart=always", "NoNewPrivileges=true",
                 "ProtectSystem=strict", "PrivateTmp=true", "ReadWritePaths=/var/log/mlflow /var/lib/mlflow",
                 "StandardOutput=append:/var/log/mlflow/mlflow.log",
                 "Environment=MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false"):
        assert line in unit.splitlines()


@pytest.mark.parametrize("field, value", [
    ("region", "us-east"), ("ssm_prefix", "mlflow/dev"), ("ssm_prefix", "/mlflow/dev/"),
    ("ssm_prefix", "/aws/x"), ("log_group_nginx", "bad group"), ("mlflow_version", "latest"),
    ("mlflow_version", ">=3"), ("db_engine", "oracle"), ("metrics_namespace", "AWS/EC2"),
    ("mlflow_port", 0), ("http_port", 70000), ("workers", -1), ("mlflow_port", "5000"),
    ("state_dir", "relative/dir"), ("log_dir", "/var/log/../etc"), ("ca_bundle_path", "/a b"),
    ("install_dir", "/opt/$(reboot)"),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        inputs(**{field: value})


def test_ports_must_differ_and_extra_fields_are_rejected():
    with pytest.raises(ValueError, match="mlflow_port and http_port"):
        inputs(mlflow_port=8080, http_port=8080)
    with pytest.raises(ValueError, match="db_password"):
        inputs(db_password="x")


def test_templates_reject_undefined_variables():
    with pytest.raises(jinja2.UndefinedError):
        mi._ENV.get_template("nginx.conf.j2").render(http_port=80)


@pytest.mark.parametrize("engine, scheme", [("mysql", "mysql+pymysql"), ("postgres", "postgresql+psycopg2")])
def test_launcher_builds_quoted_tls_uri(engine, scheme):
    module = launcher(render(inputs(db_engine=engine, ca_bundle_path="/opt/mlflow/ca.pem")))
    values = {"db/host": "db.example", "db/port": "3306", "db/name": "ml flow",
              "db/username": "u@x", "db/password": "p@ss:w/rd%25+&=?#'\"x"}
    url = make_url(module.backend_store_uri(values))
    assert url.drivername == scheme
    assert (url.username, url.password, url.database) == ("u@x", "p@ss:w/rd%25+&=?#'\"x", "ml flow")
    assert (url.host, url.port) == ("db.example", 3306)
    if engine == "mysql":
        assert dict(url.query) == {"ssl_ca": "/opt/mlflow/ca.pem"}
    else:
        assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": "/opt/mlflow/ca.pem"}


def test_launcher_hosts_origins_and_workers():
    module = launcher(render(inputs()))
    hosts = module.public_hosts({"mlflow/allowed_hosts": " ALB.example ,mlflow.example,,alb.example"})
    assert hosts == ["alb.example", "mlflow.example"]
    assert module.allowed_hosts(hosts).split(",") == [
        "alb.example", "alb.example:*", "mlflow.example", "mlflow.example:*",
        "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    assert module.cors_origins(["a.example"]) == "https://a.example,http://a.example"
    gib = 1024 ** 3
    assert module.auto_workers(cpus=2, memory=4 * gib) == 4
    assert module.auto_workers(cpus=8, memory=2 * gib) == 4  # memory-bound
    assert module.auto_workers(cpus=1, memory=gib // 2) == 1


def test_launcher_reports_missing_parameters():
    module = launcher(render(inputs()))

    class FakeSSM:
        def get_parameters(self, Names, WithDecryption):
            assert WithDecryption is True and len(Names) <= 10
            return {"Parameters": [{"Name": "/mlflow/dev/db/host", "Value": "h"}]}

    with pytest.raises(SystemExit, match="db/password"):
        module.read_parameters(FakeSSM())
