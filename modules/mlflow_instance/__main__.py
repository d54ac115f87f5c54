"""``python -m modules.mlflow_instance [VERSION ...]``: write the hash locks (``make lock``)."""
import sys

from .locking import main

sys.exit(main())
