"""Test tiers. Plain tests are the unit suite (in-memory synth); the others are marked.

- terraform: real `terraform init/validate` on the synthesized JSON (offline mirror)
- emulator:  plan/apply/re-plan/destroy against moto on 127.0.0.1 (tests/emulator)
- runtime:   the real MLflow server behind nginx on 127.0.0.1 (tests/runtime)
- policy:    checkov on the synthesized JSON, with the checked-in skip file
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# A folder every worker of one run shares: made by the controller (pytest-xdist's workers inherit
# its environment), removed at its end. The runtime tier installs each locked venv there once.
SHARED_DIR_VARIABLE = "MLFLOW_TESTS_SHARED_DIR"
_SHARED_MADE = pytest.StashKey[str]()


def pytest_configure(config):
    if hasattr(config, "workerinput") or os.environ.get(SHARED_DIR_VARIABLE):
        return
    path = tempfile.mkdtemp(prefix="mlflow-tests-shared-")
    os.chmod(path, 0o755)  # the runtime tier's services run as other users too
    os.environ[SHARED_DIR_VARIABLE] = config.stash[_SHARED_MADE] = path


def pytest_unconfigure(config):
    path = config.stash.get(_SHARED_MADE, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(SHARED_DIR_VARIABLE, None)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """The folder every worker of this run shares (world-readable)."""
    return Path(os.environ.get(SHARED_DIR_VARIABLE) or tmp_path_factory.mktemp("shared"))


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


# The longest tests of their tier (minutes each under load), started before the rest of it.
LONGEST_FIRST = (
    "tests/emulator/test_change_safety.py::test_setting_changes_against_an_applied_stack",
    "tests/emulator/test_adopt_hcl.py::",
    "tests/emulator/test_restore.py::",
    "tests/emulator/test_deploy.py::",
    "tests/runtime/test_rotation_runtime.py::",
    "tests/runtime/test_legacy_artifacts_runtime.py::",
)


def pytest_collection_modifyitems(config, items):
    """The long tests (emulator, runtime: minutes each) first, so that parallel workers start them
    at once and the short ones fill the gaps; otherwise a late long test sets the run's length.

    Each long test is followed by a quick one: pytest-xdist's load scheduling hands every worker
    two consecutive tests to begin with, and two long ones in a row would run one after the other.
    """
    slow = {"emulator": 0, "runtime": 1, "terraform": 2, "policy": 3}

    def rank(item) -> tuple[int, int]:
        tier = min((slow[m.name] for m in item.iter_markers() if m.name in slow), default=len(slow))
        longest = next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                       len(LONGEST_FIRST))
        return tier, longest

    items.sort(key=rank)  # stable: order within a tier is kept otherwise
    long = [item for item in items if rank(item)[0] <= slow["runtime"]]
    rest = items[len(long):]
    quick = [item for item in rest if rank(item)[0] == len(slow)][:len(long)]
    chosen = {id(item) for item in quick}
    paired = [item for pair in zip(long, quick) for item in pair] + long[len(quick):]
    items[:] = paired + [item for item in rest if id(item) not in chosen]
