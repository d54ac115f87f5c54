"""Provider configuration: real AWS by default, an AWS emulator when settings ask."""
from __future__ import annotations

from cdktf import TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags, AwsProviderEndpoints
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from .settings import Settings

# Ephemeral resources (1.10) and write-only arguments (1.11) need at least this Terraform.
TERRAFORM_REQUIRED_VERSION = ">= 1.11"

# Every service the stack calls, by the provider's endpoint names.
EMULATED_SERVICES = (
    "acm", "autoscaling", "chatbot", "cloudwatch", "ec2", "elasticache", "elbv2", "iam", "kms", "logs",
    "rds", "route53", "s3", "secretsmanager", "sns", "ssm", "sts",
)


def configure_providers(scope: Construct, settings: Settings) -> None:
    """hashicorp/aws (with the settings' tags as default_tags) and hashicorp/random.

    Their versions are exact: the bindings' own (aws 5.100.0; random as the Pipfile's
    cdktf-cdktf-provider-random), written into ``terraform.required_providers`` by cdktf.
    """
    TerraformStack.of(scope).add_override("terraform.required_version", TERRAFORM_REQUIRED_VERSION)
    _aws(scope, "aws", settings, settings.region)
    RandomProvider(scope, "random")


def chatbot_provider(scope: Construct, settings: Settings, region: str) -> AwsProvider:
    """hashicorp/aws aliased "chatbot" in a region of the AWS Chatbot API (it exists in four only)."""
    return _aws(scope, "aws_chatbot", settings, region, alias="chatbot")


def _aws(scope: Construct, id: str, settings: Settings, region: str, alias: str | None = None) -> AwsProvider:
    common = dict(region=region, alias=alias, default_tags=[AwsProviderDefaultTags(tags=settings.all_tags)])
    emu = settings.emulator
    if emu is None:
        return AwsProvider(scope, id, **common)
    return AwsProvider(
        scope, id,
        **common,
        access_key="emulator",
        secret_key="emulator",
        max_retries=emu.max_retries,
        skip_credentials_validation=True,
        skip_metadata_api_check="true",
        skip_region_validation=True,
        # false: group-referencing security group rules need the account id.
        skip_requesting_account_id=False,
        s3_use_path_style=True,
        endpoints=[AwsProviderEndpoints(**{s: emu.endpoint for s in EMULATED_SERVICES})],
    )
