"""vCPUs and memory of EC2 instance types, for the MLflow API workers decided at synth.

The synth needs the number of API workers per instance (the database
connection budget counts them), so it cannot wait for the instance to boot.
``instance_shape`` knows the common general-purpose, compute and memory
families (AWS's instance type tables); for another type, set
``mlflow_workers``. Pure Python: no cdktf import, so the settings can use it.
"""
from __future__ import annotations

import re

GIB = 1024 ** 3

# Burstable types: size -> (vCPUs, GiB).
_BURSTABLE = {"nano": (2, 0.5), "micro": (2, 1), "small": (2, 2), "medium": (2, 4), "large": (2, 8),
              "xlarge": (4, 16), "2xlarge": (8, 32)}
# Other families: size -> vCPUs; memory is vCPUs times the family's GiB per vCPU.
_VCPUS = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48,
          "16xlarge": 64, "24xlarge": 96}
_GIB_PER_VCPU = {
    **{f: 2 for f in ("c5", "c5a", "c6a", "c6g", "c6i", "c7a", "c7g", "c7i", "c8g")},
    **{f: 4 for f in ("m5", "m5a", "m6a", "m6g", "m6i", "m7a", "m7g", "m7i", "m8g")},
    **{f: 8 for f in ("r5", "r5a", "r6a", "r6g", "r6i", "r7a", "r7g", "r7i", "r8g")},
}
_BURSTABLE_FAMILIES = ("t3", "t3a", "t4g")
_TYPE = re.compile(r"^([a-z0-9]+)\.([a-z0-9]+)$")


def instance_shape(instance_type: str) -> tuple[int, int] | None:
    """(vCPUs, memory in bytes) of an EC2 instance type, or None for a type not in the table."""
    m = _TYPE.match(instance_type)
    if not m:
        return None
    family, size = m.groups()
    if family in _BURSTABLE_FAMILIES:
        shape = _BURSTABLE.get(size)
        return None if shape is None else (shape[0], int(shape[1] * GIB))
    if family in _GIB_PER_VCPU and size in _VCPUS:
        vcpus = _VCPUS[size]
        return vcpus, vcpus * _GIB_PER_VCPU[family] * GIB
    return None
