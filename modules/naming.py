"""Every AWS name that identifies a resource, from one place.

A name, ``name_prefix``, identifier or (for some types) description that
changes makes Terraform replace the resource. So each of them is decided here,
by the naming profile of the settings, and nowhere else:

* ``standard``: this project's own names, ``<name>-<environment>-...``;
* ``hcl``: the names of a deployment of the public HCL stack the resources
  guide documents (``../shared/spec/hcl-deployment-identity.tsv``), so that
  adopting its state replaces nothing that holds data or identity
  (docs/adoption.md).

Modules receive these values through their props; they never build names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Profile = Literal["standard", "hcl"]

# HCL descriptions Terraform filled in where the HCL set none.
HCL_DEFAULT_DESCRIPTION = "Managed by Terraform"
# The HCL's DB parameter group family (its default engine, MySQL 8.0). Another
# family gets its own name, so create_before_destroy can build it beside the old.
HCL_DB_PARAMETER_FAMILY = "mysql8.0"

# Logical keys of the SSM parameters the instances read, in both profiles.
SSM_KEYS = (
    "db/host", "db/port", "db/name", "db/username", "db/password",
    "cache/endpoint", "cache/port",
    "mlflow/artifact_bucket", "mlflow/allowed_hosts", "mlflow/admin_password", "mlflow/flask_secret_key",
)


@dataclass(frozen=True)
class Ident:
    """How one resource is named: exactly one of name / name_prefix, plus a description."""

    name: str | None = None
    name_prefix: str | None = None
    description: str | None = None

    def kwargs(self, *, description: bool = True) -> dict[str, str]:
        out = {"name": self.name} if self.name is not None else {"name_prefix": self.name_prefix}
        if description and self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Names:
    profile: Profile
    prefix: str
    ssm_prefix: str
    """Parameter Store path under which every parameter of the deployment lives."""
    ssm: dict[str, str]
    """Logical key (``db/host``, ...) -> full parameter name."""
    log_groups: dict[str, str]
    """The instances' log groups: mlflow, nginx, system."""
    security_groups: dict[str, Ident]
    """alb, mlflow_app, database, elasticache, vpc_endpoints."""
    inline_security_group_rules: bool
    """True where the adopted groups carry inline rules (see modules/security.py)."""
    instance_role: Ident
    instance_profile: Ident
    instance_policies: dict[str, Ident]
    """mlflow_s3_policy, mlflow_cloudwatch_policy, mlflow_ssm_policy, mlflow_kms_policy."""
    kms_alias: str
    db_subnet_group: str
    db_parameter_group: Ident
    cache_subnet_group: str
    cache_parameter_group: Ident
    replication_group_id: str
    asg: str
    launch_template: Ident
    dashboards: dict[str, str]
    """CloudWatch dashboards: mlflow (metrics), logs (saved queries). A new name replaces one."""
    redis_slow_log_group: str
    """Log group of the Redis slow log (a new name replaces it)."""
    artifacts_prefix: str
    """Path of MLflow's artifacts destination in the bucket ('' = the bucket root)."""
    rewrite_legacy_artifact_uris: bool
    """The launcher rewrites stored s3:// artifact URIs under the destination to mlflow-artifacts:/."""
    alb_logs_bucket_template: str = field(repr=False)
    """With ``{hex}`` for the random suffix."""

    def alb_logs_bucket(self, suffix_hex: str) -> str:
        return self.alb_logs_bucket_template.format(hex=suffix_hex)


def _standard(name: str, environment: str, db_family: str) -> Names:
    p = f"{name}-{environment}"
    ssm_prefix = f"/{name}/{environment}"
    sg_descriptions = {
        "alb": "MLflow load balancer: HTTP/HTTPS from the allowed CIDRs",
        "mlflow_app": "MLflow instances: nginx and MLflow from the load balancer only",
        "database": "MLflow database: engine port from the MLflow instances only",
        "elasticache": "MLflow Redis: 6379 from the MLflow instances only",
        "vpc_endpoints": "Interface VPC endpoints: HTTPS from inside the VPC",
    }
    policy_descriptions = {
        "mlflow_s3_policy": "Artifacts bucket: list, read, write, delete",
        "mlflow_cloudwatch_policy": "Write the MLflow log groups and metrics",
        "mlflow_ssm_policy": "Read this deployment's parameters",
        "mlflow_kms_policy": "Use the deployment key (SSM SecureString, S3 SSE-KMS)",
    }
    return Names(
        profile="standard",
        prefix=p,
        ssm_prefix=ssm_prefix,
        ssm={k: f"{ssm_prefix}/{k}" for k in SSM_KEYS},
        log_groups={k: f"/{name}/{environment}/{k}" for k in ("mlflow", "nginx", "system")},
        security_groups={k: Ident(name=f"{p}-{k.replace('_', '-')}", description=d) for k, d in sg_descriptions.items()},
        inline_security_group_rules=False,
        instance_role=Ident(name=f"{p}-instance", description="MLflow EC2 instances"),
        instance_profile=Ident(name=f"{p}-instance"),
        instance_policies={
            k: Ident(name=f"{p}-{k.removeprefix('mlflow_').replace('_', '-')}", description=d)
            for k, d in policy_descriptions.items()
        },
        kms_alias=f"alias/{p}",
        db_subnet_group=f"{p}-db",
        db_parameter_group=Ident(name=f"{p}-{db_family.replace('.', '-')}", description="MLflow: TLS required"),
        cache_subnet_group=f"{p}-redis",
        cache_parameter_group=Ident(
            name=f"{p}-redis7", description="MLflow Redis: evict least recently used keys when full"),
        replication_group_id=f"{p}-redis",
        asg=f"{p}-mlflow",
        launch_template=Ident(name=f"{p}-mlflow"),
        dashboards={"mlflow": p, "logs": f"{p}-logs"},
        redis_slow_log_group=f"/{name}/{environment}/redis-slow-log",
        artifacts_prefix="artifacts",
        rewrite_legacy_artifact_uris=False,
        alb_logs_bucket_template=f"{p}-alb-logs-{{hex}}",
    )


def _hcl(name: str, environment: str, db_family: str) -> Names:
    """The identity table of the HCL deployment (hcl-deployment-identity.tsv), row by row."""
    p = f"{name}-{environment}"
    ssm_prefix = f"/{p}"
    hcl_ssm = {
        "db/host": "database/host", "db/port": "database/port", "db/name": "database/name",
        "db/username": "database/username", "db/password": "database/password",
        "cache/endpoint": "cache/endpoint", "cache/port": "cache/port",
    }
    std = _standard(name, environment, db_family)
    db_params = (f"{p}-db-params" if db_family == HCL_DB_PARAMETER_FAMILY
                 else f"{p}-db-params-{db_family.replace('.', '-')}")
    return Names(
        profile="hcl",
        prefix=p,
        ssm_prefix=ssm_prefix,
        # Ours that the HCL did not have live beside its own, under the same path.
        ssm={k: f"{ssm_prefix}/{hcl_ssm.get(k, k)}" for k in SSM_KEYS},
        log_groups={"mlflow": f"/aws/ec2/mlflow/{p}", "nginx": f"/{p}/nginx", "system": f"/{p}/system"},
        security_groups={
            k: Ident(name_prefix=f"{p}-{k.replace('_', '-')}", description=HCL_DEFAULT_DESCRIPTION)
            for k in std.security_groups
        },
        inline_security_group_rules=True,
        instance_role=Ident(name_prefix=f"{p}-mlflow-instance", description="MLflow EC2 instances"),
        instance_profile=Ident(name_prefix=f"{p}-mlflow-instance"),
        instance_policies={
            k: Ident(name_prefix=f"{p}-mlflow-{k.removeprefix('mlflow_').removesuffix('_policy')}")
            for k in std.instance_policies
        },
        kms_alias=f"alias/{p}-mlflow",
        db_subnet_group=f"{p}-db-subnet-group",
        db_parameter_group=Ident(name=db_params, description=HCL_DEFAULT_DESCRIPTION),
        cache_subnet_group=f"{p}-cache-subnet",
        cache_parameter_group=Ident(name=f"{p}-cache-params", description=HCL_DEFAULT_DESCRIPTION),
        replication_group_id=f"{p}-cache",
        asg=f"{p}-asg",
        launch_template=Ident(name_prefix=f"{p}-lt"),
        dashboards={"mlflow": f"{p}-main-dashboard", "logs": f"{p}-dashboard"},
        redis_slow_log_group=f"/aws/elasticache/{p}-slow-log",
        # The HCL's servers handed clients s3://<bucket>/... URIs (no proxy). A destination at the
        # bucket root maps every one of them to mlflow-artifacts:/<same key>: the proxy then reads
        # and writes the very objects those URIs name, in place, with nothing copied or moved
        # (docs/adoption.md, "Old runs' artifacts").
        artifacts_prefix="",
        rewrite_legacy_artifact_uris=True,
        alb_logs_bucket_template=f"{p}-artifacts-{{hex}}-alb-logs",
    )


def names_for(profile: Profile, name: str, environment: str, db_family: str) -> Names:
    return (_hcl if profile == "hcl" else _standard)(name, environment, db_family)
