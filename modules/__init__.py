"""Construct modules of the MLflow stack, one per section of the resources guide."""
from . import node_runtime, provider_import

node_runtime.select()  # before jsii starts; see node_runtime.py
provider_import.install()  # before any provider import; see provider_import.py
