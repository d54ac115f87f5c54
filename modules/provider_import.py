"""Import only the AWS provider submodules the stack uses.

Why: ``cdktf_cdktf_provider_aws/__init__.py`` eagerly imports all of its
~2,100 submodules (about 9 s per process). Every submodule imports only
``.._jsii``, ``cdktf`` and ``constructs``, so we register the package without
running its ``__init__``; ``from cdktf_cdktf_provider_aws.vpc import Vpc`` then
loads just that submodule, and jsii resolves other types on demand. The
synthesized JSON is byte-identical (tests/test_lazy_import.py).

A no-op when the package is already imported, when its ``__init__`` is not
eager (a future lazy release), or when MLFLOW_EAGER_PROVIDER_IMPORT=1 (used by
bench/ to measure the difference).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

PACKAGE = "cdktf_cdktf_provider_aws"
_EAGER_THRESHOLD = 100  # "from . import x" lines above this mean an eager __init__


def install() -> bool:
    """Register the provider package lazily. Returns True if it did."""
    if os.environ.get("MLFLOW_EAGER_PROVIDER_IMPORT") == "1" or PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return False
    with open(spec.origin, encoding="utf-8") as f:
        eager_lines = sum(1 for line in f if line.startswith("from . import "))
    if eager_lines < _EAGER_THRESHOLD:
        return False
    pkg = types.ModuleType(PACKAGE)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__package__ = PACKAGE
    sys.modules[PACKAGE] = pkg
    return True
