"""Test tiers. Plain tests are the unit suite (in-memory synth); the others are marked.

- terraform: real `terraform init/validate` on the synthesized JSON (offline mirror)
- emulator:  plan/apply/re-plan/destroy against moto on 127.0.0.1 (tests/emulator)
- runtime:   the real MLflow server behind nginx on 127.0.0.1 (tests/runtime)
- policy:    checkov on the synthesized JSON, with the checked-in skip file
"""
import pytest


@pytest.fixture(scope="session")
def default() -> dict:
    """The default stack, synthesized once per session."""
    from tests.support import settings_for, synth_json
    return synth_json(settings_for())


@pytest.fixture(scope="session")
def second() -> dict:
    """The second configuration (postgres, 3 AZs, single NAT, HTTPS), synthesized once."""
    from tests.support import SECOND_CONFIG, settings_for, synth_json
    return synth_json(settings_for(**SECOND_CONFIG))


# Measurements of the emulator tier's tests, recorded as a user property (which pytest-xdist
# carries from the workers to the controller) and printed at the end of the run. Here, not in
# tests/emulator/conftest.py, because the xdist controller loads only this conftest.
_RESULTS: list[dict] = []
EMULATOR_RESULT = "emulator_result"


def pytest_runtest_logreport(report):
    if report.when == "call":
        _RESULTS.extend(value for name, value in report.user_properties if name == EMULATOR_RESULT)


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("emulator tier measurements")
    for r in _RESULTS:
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in r["phases"].items())
        tr.write_line(
            f"{r['config']}: {r['resources']} resources; {phases}; total {r['total']:.1f}s; "
            f"peak RSS moto {r['moto_rss_mb']:.0f} MiB, terraform+provider {r['terraform_rss_mb']:.0f} MiB"
        )


def pytest_collection_modifyitems(config, items):
    """The long tests (emulator, runtime: minutes each) first, so that parallel workers start them
    at once and the short ones fill the gaps; otherwise a late long test sets the run's length."""
    slow = {"emulator": 0, "runtime": 1, "terraform": 2, "policy": 3}

    def rank(item) -> int:
        return min((slow[m.name] for m in item.iter_markers() if m.name in slow), default=len(slow))

    items.sort(key=rank)  # stable: order within a tier is kept
