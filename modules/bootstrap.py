"""Bootstrap (guide: Bootstrap Resources): key pair, bucket suffix, account context."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cdktf import TerraformVariable
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.key_pair import KeyPair
from cdktf_cdktf_provider_random.id import Id as RandomId
from constructs import Construct

from .base import literal


@dataclass(frozen=True)
class BootstrapProps:
    prefix: str
    """Prefix of AWS resource names (<name>-<environment>)."""
    ssh_public_key: Optional[str] = None
    """Public key of the key pair; None = the required Terraform variable ``ssh_public_key``."""


class Bootstrap(Construct):
    """``aws_key_pair.mlflow_key``, ``random_id.bucket_suffix`` and the account/partition lookups."""

    def __init__(self, scope: Construct, id: str, props: BootstrapProps):
        super().__init__(scope, id)
        public_key = props.ssh_public_key
        if public_key is None:
            var = TerraformVariable(
                self, "ssh_public_key",
                type="string",
                description="OpenSSH public key for aws_key_pair.mlflow_key (Session Manager is the default shell access).",
                sensitive=False,
            )
            public_key = var.string_value
        else:
            public_key = literal(public_key)

        self.key_pair = KeyPair(self, "aws_key_pair.mlflow_key", key_name=f"{props.prefix}-key", public_key=public_key)
        self.bucket_suffix = RandomId(self, "random_id.bucket_suffix", byte_length=4)
        caller = DataAwsCallerIdentity(self, "aws_caller_identity.current")
        partition = DataAwsPartition(self, "aws_partition.current")

        # Typed outputs.
        self.key_name: str = self.key_pair.key_name
        self.bucket_suffix_hex: str = self.bucket_suffix.hex
        self.account_id: str = caller.account_id
        self.partition: str = partition.partition
        self.dns_suffix: str = partition.dns_suffix
        self.reverse_dns_prefix: str = partition.reverse_dns_prefix
