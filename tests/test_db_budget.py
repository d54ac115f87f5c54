"""The database connection budget (modules/db_budget.py) and its settings check, without a synth."""
from __future__ import annotations

import pytest

from modules.db_budget import ADMIN_RESERVE, LAUNCHER_CONNECTIONS, connection_budget, peak_instances
from modules.instance_types import GIB, instance_shape
from modules.mlflow_instance import launcher as L
from modules.settings import SettingsError, load_settings


def test_peak_instances_count_the_ones_an_instance_refresh_is_draining():
    assert [peak_instances(n) for n in (1, 2, 3, 4, 50)] == [2, 3, 5, 6, 75]


# RDS's defaults for db.t3.small (2 GiB): MySQL DBInstanceClassMemory/12582880, PostgreSQL
# LEAST(DBInstanceClassMemory/9531392, 5000). Per instance: (max_connections - 16) // 6 instances.
# Each serving process holds 3 engines x 2 connections, so 18 hold the UI server and 2 API workers.
@pytest.mark.parametrize("engine, max_connections, per_instance, plan", [
    ("mysql", 128, 18, L.ServingPlan(api_workers=2, wanted=2)),
    ("postgres", 168, 25, L.ServingPlan(api_workers=2, wanted=2)),
])
def test_the_default_settings_fit(engine, max_connections, per_instance, plan):
    s = load_settings(None, db_engine=engine)
    b = s.db_budget
    assert (s.instance_type, s.mlflow_processes, s.asg_max_size, s.db_instance_class) == (
        "t3.medium", 2, 4, "db.t3.small")
    assert (b.max_connections, b.peak_instances, b.reserve) == (max_connections, 6, ADMIN_RESERVE + 2 * LAUNCHER_CONNECTIONS)
    assert (b.per_instance, b.plan, b.required) == (per_instance, plan, 88)
    assert b.used <= b.max_connections


@pytest.mark.parametrize("overrides", [
    {}, {"db_engine": "postgres"}, {"mlflow_workers": 3, "asg_max_size": 2},
    {"mlflow_auth": False, "asg_max_size": 7, "db_engine": "postgres"},
])
def test_one_connection_under_passes_and_one_over_fails(overrides):
    required = load_settings(None, **overrides).db_budget.required
    fits = load_settings(None, db_max_connections=required, **overrides)
    assert fits.db_budget.plan is not None and fits.db_budget.used <= required
    with pytest.raises(SettingsError) as e:
        load_settings(None, db_max_connections=required - 1, **overrides)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert msg.startswith("Invalid settings in the built-in defaults: asg_max_size/db_instance_class: ")
    assert f"need {required}, but db_max_connections allows {required - 1}" in msg
    for name in ("asg_max_size", "db_instance_class", "db_max_connections"):
        assert name in msg


def test_the_refusal_of_a_default_class_names_it():
    with pytest.raises(SettingsError, match=r"the UI server and one API worker\) x 6 connections, plus 16 in "
                                            r"reserve, need 88, but RDS's default for db.t3.micro \(mysql\) "
                                            r"allows 64; lower asg_max_size"):
        load_settings(None, db_instance_class="db.t3.micro")
    small = dict(db_instance_class="db.t3.micro", asg_min_size=1, asg_desired_capacity=1, asg_max_size=2)
    assert load_settings(None, **small).db_budget.plan is not None  # docs/adoption.md


def test_the_budget_never_exceeds_max_connections():
    for max_connections in range(10, 700, 7):
        for max_size in (1, 2, 4, 9):
            for workers in (1, 2, 4):
                for auth in (True, False):
                    b = connection_budget(max_connections, max_size, workers, auth)
                    assert (b.plan is not None) == (max_connections >= b.required)
                    if b.plan is not None:
                        assert b.used <= max_connections
                        assert 1 <= b.plan.api_workers <= workers
                        assert b.peak_instances * b.per_instance + b.reserve <= max_connections


def test_api_workers_come_from_the_instance_type_or_the_setting():
    assert instance_shape("t3.medium") == (2, 4 * GIB) and instance_shape("m7g.2xlarge") == (8, 32 * GIB)
    assert instance_shape("c6i.large") == (2, 4 * GIB) and instance_shape("t3.nano") == (2, GIB // 2)
    assert instance_shape("x2iedn.large") is None and instance_shape("t3.9xlarge") is None
    assert load_settings(None, instance_type="t3.micro").mlflow_processes == 1
    assert load_settings(None, instance_type="m7i.xlarge", db_instance_class="db.m7i.large").mlflow_processes == 4
    assert load_settings(None, instance_type="x2iedn.large", mlflow_workers=2).mlflow_processes == 2
    with pytest.raises(SettingsError, match=r"mlflow_workers: 0 is not allowed; allowed: a number of API "
                                            r"workers per instance \(1 to 32\) for instance_type 'x2iedn.large'"):
        load_settings(None, instance_type="x2iedn.large")


def test_an_unknown_db_class_needs_max_connections_which_also_sets_the_alarm():
    with pytest.raises(SettingsError, match="db_instance_class: 'db.z1d.large' is not allowed; allowed: a class "
                                            "whose memory the stack knows.*set db_max_connections"):
        load_settings(None, db_instance_class="db.z1d.large")
    s = load_settings(None, db_instance_class="db.z1d.large", db_max_connections=1000)
    assert s.db_connections_alarm_threshold == 800 and s.db_budget.per_instance == (1000 - 16) // 6
