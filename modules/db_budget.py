"""The database connection budget of the MLflow servers, computed at synth (docs/runtime.md).

Every instance runs the UI server and ``api_workers`` API workers, each a
serving process with SQLAlchemy pools (``launcher.connections_per_process``).
At the largest group, during an instance refresh, they must all fit in the
database's ``max_connections`` with a reserve to spare. ``connection_budget``
splits what is left after the reserve evenly over the instances; the launcher
runs as many API workers as that share holds (``launcher.serving_plan``), so
the settings refuse exactly the configurations where not even one fits. Pure
Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .mlflow_instance.launcher import ServingPlan, connections_per_process, serving_plan

ADMIN_RESERVE = 10  # an operator's sessions, monitoring, RDS's own (PostgreSQL keeps 3 for superusers)
LAUNCHER_CONNECTIONS = 3  # a booting launcher: schema upgrade, auth-store lock and its migration
REFRESH_MIN_HEALTHY_PERCENT = 50  # the group's instance refresh preference (modules/mlflow.py)


def peak_instances(asg_max_size: int) -> int:
    """Instances that can hold connections at once: a full group, plus the ones an instance refresh
    is replacing (up to 100 - REFRESH_MIN_HEALTHY_PERCENT %), which keep serving while they drain."""
    return asg_max_size + math.ceil(asg_max_size * (100 - REFRESH_MIN_HEALTHY_PERCENT) / 100)


@dataclass(frozen=True)
class Budget:
    max_connections: int
    asg_max_size: int
    api_workers: int
    """API workers per instance asked for (mlflow_workers, or one per vCPU)."""
    auth: bool
    peak_instances: int
    reserve: int
    per_instance: int
    """Connections each instance's servers may hold (the launcher's MLFLOW_LAUNCH_DB_CONNECTIONS)."""
    plan: ServingPlan | None
    """API workers the share holds (at most api_workers); None = not even one fits."""

    @property
    def required(self) -> int:
        """The least max_connections this configuration fits in (the UI server and one API worker)."""
        return self.reserve + self.peak_instances * 2 * connections_per_process(self.auth)

    @property
    def used(self) -> int:
        """Connections the serving processes can hold at the peak, plus the reserve."""
        processes = self.plan.processes if self.plan else 2
        return self.reserve + self.peak_instances * processes * connections_per_process(self.auth)


def connection_budget(max_connections: int, asg_max_size: int, api_workers: int, auth: bool) -> Budget:
    peak = peak_instances(asg_max_size)
    reserve = ADMIN_RESERVE + LAUNCHER_CONNECTIONS * (peak - asg_max_size)
    per_instance = max(0, (max_connections - reserve) // peak)
    return Budget(max_connections=max_connections, asg_max_size=asg_max_size, api_workers=api_workers,
                  auth=auth, peak_instances=peak, reserve=reserve, per_instance=per_instance,
                  plan=serving_plan(per_instance, api_workers, auth))
