"""RDS's default ``max_connections`` for a DB instance class, computed at synth.

RDS sets ``max_connections`` from a formula of ``DBInstanceClassMemory`` (the
class's memory less what the OS and RDS processes reserve):

* MySQL: ``{DBInstanceClassMemory/12582880}``
* PostgreSQL: ``LEAST({DBInstanceClassMemory/9531392}, 5000)``

``DBInstanceClassMemory`` is not published per class. The limits RDS reports
(MySQL db.t3.micro: about 66 connections, 77% of its 1 GiB; larger classes
keep a larger share) put it at 75% of the nominal memory or more, so 75% gives
an estimate at or below the real limit. Pure Python: no cdktf import, so the
settings can use it.
"""
from __future__ import annotations

import re

MYSQL_BYTES_PER_CONNECTION = 12_582_880
POSTGRES_BYTES_PER_CONNECTION = 9_531_392
POSTGRES_MAX = 5000
USABLE_MEMORY_SHARE = 0.75  # DBInstanceClassMemory / nominal memory, at least

# GiB of memory by class size, per family group (AWS's instance class tables).
_BURSTABLE = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
_GENERAL = {"large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64, "8xlarge": 128, "12xlarge": 192,
            "16xlarge": 256, "24xlarge": 384}
_MEMORY = {size: 2 * gib for size, gib in _GENERAL.items()}
_FAMILIES = {
    **{f: _BURSTABLE for f in ("t3", "t4g")},
    **{f: _GENERAL for f in ("m5", "m5d", "m6g", "m6gd", "m6i", "m6id", "m7g", "m7i", "m8g")},
    **{f: _MEMORY for f in ("r5", "r5d", "r6g", "r6gd", "r6i", "r6id", "r7g", "r7i", "r8g")},
}
_CLASS = re.compile(r"^db\.([a-z0-9]+)\.([a-z0-9]+)$")


def class_memory_gib(instance_class: str) -> int | None:
    """Nominal memory of a DB instance class in GiB, or None for a class not in the table."""
    m = _CLASS.match(instance_class)
    if not m:
        return None
    return _FAMILIES.get(m.group(1), {}).get(m.group(2))


def default_max_connections(engine: str, instance_class: str) -> int | None:
    """RDS's default max_connections for the class (estimate, see module doc), or None if unknown."""
    gib = class_memory_gib(instance_class)
    if gib is None:
        return None
    usable = gib * 1024 ** 3 * USABLE_MEMORY_SHARE
    if engine == "mysql":
        return int(usable // MYSQL_BYTES_PER_CONNECTION)
    return int(min(usable // POSTGRES_BYTES_PER_CONNECTION, POSTGRES_MAX))
