"""Settings: defaults, files, and clear one-paragraph errors that write nothing."""
from __future__ import annotations


import pytest

from modules.settings import Settings, SettingsError, load_settings
from tests.support import ROOT, run_main


def error_of(**overrides) -> str:
    with pytest.raises(SettingsError) as e:
        load_settings(None, **overrides)
    return str(e.value)


def test_defaults_are_complete_and_valid():
    s = load_settings(None)
    assert s.stack_name == "mlflow-dev"
    assert s.azs == ["us-east-1a", "us-east-1b"]
    assert s.nat_count == 2 and s.db_port == 3306 and s.db_parameter_family == "mysql8.0"
    assert s.ssh_allowed_cidrs == [] and s.alb_allowed_cidrs == ["0.0.0.0/0"]


def test_every_field_has_a_default_and_a_description():
    for name, field in Settings.model_fields.items():
        assert not field.is_required(), name
        assert field.description and len(field.description) > 15, f"{name} has no description"


@pytest.mark.parametrize("overrides,field,value", [
    ({"az_count": 7}, "az_count", "7"),
    ({"asg_min_size": 5, "asg_max_size": 3, "asg_desired_capacity": 4}, "asg_min_size", "5/4/3"),
    ({"vpc_cidr": "10.0.0.0/33"}, "vpc_cidr", "10.0.0.0/33"),
    ({"vpc_cidr": "10.0.0.1/16"}, "vpc_cidr", "10.0.0.1/16"),
    ({"db_engine": "oracle"}, "db_engine", "oracle"),
    ({"db_engine_version": "5.7"}, "db_engine_version", "5.7"),
    ({"alb_allowed_cidrs": ["not-a-cidr"]}, "alb_allowed_cidrs", "not-a-cidr"),
    ({"log_retention_days": 2}, "log_retention_days", "2"),
    ({"availability_zones": ["eu-west-1a", "eu-west-1b"]}, "availability_zones", "eu-west-1a"),
    ({"name": 'ml"flow'}, "name", 'ml"flow'),
    ({"nat_gateway_mode": "none"}, "nat_gateway_mode", "none"),
    ({"alert_emails": ["nobody"]}, "alert_emails", "nobody"),
    ({"subnet_newbits": 8, "vpc_cidr": "10.0.0.0/24"}, "subnet_newbits", "8"),
])
def test_bad_values_name_the_field_the_value_and_what_is_allowed(overrides, field, value):
    msg = error_of(**overrides)
    assert field in msg and value in msg, msg
    assert "is not allowed; allowed: " in msg, msg
    assert "\n" not in msg, "one paragraph"


def test_unknown_setting_lists_the_allowed_ones():
    msg = error_of(az_cuont=3)
    assert "az_cuont" in msg and "az_count" in msg


def test_wrong_type_is_refused_not_coerced():
    assert "az_count" in error_of(az_count="3")


def test_settings_file_is_toml(tmp_path):
    f = tmp_path / "prod.toml"
    f.write_text('environment = "prod"\ndb_engine = "postgres"\naz_count = 3\n[tags]\nTeam = "ml"\n')
    s = load_settings(f)
    assert (s.stack_name, s.db_engine, len(s.azs), s.tags) == ("mlflow-prod", "postgres", 3, {"Team": "ml"})


def test_broken_toml_and_missing_file_are_clear(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("az_count = = 3")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(f)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize("text,field", [
    ("az_count = 7\n", "az_count"),
    ("asg_min_size = 4\nasg_max_size = 2\n", "asg_min_size"),
    ('vpc_cidr = "10.0.0/16"\n', "vpc_cidr"),
    ('db_engine = "mssql"\n', "db_engine"),
])
def test_main_stops_with_one_paragraph_and_writes_nothing(tmp_path, text, field):
    proc = run_main(tmp_path, {"bad.toml": text})
    assert proc.returncode == 2
    assert field in proc.stderr and "Traceback" not in proc.stderr and "jsii" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cdktf.out").exists()


def test_main_refuses_unreadable_settings_files_in_one_line(tmp_path):
    settings = tmp_path / "settings"
    (settings / "dir.toml").mkdir(parents=True)
    proc = run_main(tmp_path)
    assert proc.returncode == 2 and "is a directory" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    (settings / "dir.toml").rmdir()
    (settings / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    proc = run_main(tmp_path)
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "cdktf.out").exists()


def test_synthesized_json_does_not_depend_on_where_the_project_lives(tmp_path, default):
    """The local state path is relative to the stack folder: the project root, wherever it is."""
    assert default["terraform"]["backend"] == {"local": {"path": "../../../terraform.mlflow-dev.tfstate"}}
    proc = run_main(tmp_path)
    text = (tmp_path / "cdktf.out" / "stacks" / "mlflow-dev" / "cdk.tf.json").read_text()
    assert str(tmp_path) not in text and str(ROOT) not in text
    assert "synthesized cdktf.out/stacks/mlflow-dev/cdk.tf.json from the built-in defaults" in proc.stdout


def test_main_with_no_settings_file_synthesizes_the_default_stack(tmp_path):
    proc = run_main(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cdktf.out" / "stacks" / "mlflow-dev" / "cdk.tf.json").exists()
    assert proc.stderr.strip() == "", proc.stderr  # no Node end-of-life banner, no warnings
