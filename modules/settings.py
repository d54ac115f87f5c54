"""The one settings object the whole app reads.

Settings load from a TOML file (one per environment, see README) or, with no
file, from the defaults below, which synthesize a complete stack. Every field
is validated before any construct is built; a bad value raises
``SettingsError`` with one paragraph naming the field, the value and what is
allowed.
"""
from __future__ import annotations

import ipaddress
import itertools
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .db_budget import Budget, connection_budget
from .db_limits import default_max_connections
from .instance_types import instance_shape
from .mlflow_instance.launcher import connections_per_process, serving_processes
from .mlflow_instance.locking import locked_versions
from .naming import Names, names_for

# CloudWatch Logs accepts only these retention periods (days; 0 = never expire
# is not offered: production logs should expire).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
    1827, 2192, 2557, 2922, 3288, 3653,
)

# Major versions of the engines RDS offers, mapped to the parameter group family.
DB_ENGINE_VERSIONS = {
    "mysql": {"8.0": "mysql8.0", "8.4": "mysql8.4"},
    "postgres": {
        "14": "postgres14", "15": "postgres15", "16": "postgres16", "17": "postgres17",
    },
}
DB_DEFAULT_VERSION = {"mysql": "8.0", "postgres": "16"}
DB_PORT = {"mysql": 3306, "postgres": 5432}

# Subnet layout inside the VPC CIDR: tier offsets in units of one subnet.
# public = 0.., private = 8.., database = 16..; 8 slots per tier leave room
# for up to 8 AZs without renumbering existing subnets.
TIER_OFFSET = {"public": 0, "private": 8, "database": 16}

_NAME = r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$"

Name = Annotated[str, Field(pattern=_NAME)]


class SettingsError(ValueError):
    """A settings value is not allowed. The message is one paragraph."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)


class EmulatorSettings(_Strict):
    """Point the AWS provider at an AWS emulator (tests only; off by default)."""

    endpoint: Annotated[str, Field(pattern=r"^http://(127\.0\.0\.1|localhost):[0-9]{1,5}$")]
    """Base URL of the emulator, a loopback address only."""
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Provider retries; low, so an unimplemented call fails fast."""


class S3BackendSettings(_Strict):
    """Remote state in S3 with native locking (Terraform 1.10+ use_lockfile)."""

    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    """Existing state bucket (versioning on, please)."""
    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]{1,1024}$")] = "mlflow/terraform.tfstate"
    """Object key of the state; give each environment its own."""
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")] = "us-east-1"
    """Region of the state bucket."""
    kms_key_id: Optional[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+$")]] = None
    """KMS key ARN for the state object; default: the bucket's encryption (state is always encrypted)."""


_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class ChatAlertsSettings(_Strict):
    """The alerts topic in a Slack or Microsoft Teams channel, through AWS Chatbot (docs/observability.md).

    The workspace (Slack) or team (Teams) must be authorized once in the AWS Chatbot console first."""

    platform: Literal["slack", "teams"]
    """slack or teams."""
    channel_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_=+/.,%-]{1,256}$")]
    """Slack channel id (C0123ABCD), or Teams channel id as Chatbot shows it (19%3a...%40thread.tacv2)."""
    team_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,255}$")]
    """Slack workspace id (T0123ABCD) or Teams team id (a UUID)."""
    tenant_id: Optional[Annotated[str, Field(pattern=_UUID)]] = None
    """Microsoft 365 tenant id (Teams only)."""
    region: Literal["us-east-2", "us-west-2", "eu-west-1", "ap-southeast-1"] = "us-east-2"
    """Region of the AWS Chatbot API (it exists in these four only); the channel hears the topic in any region."""

    @model_validator(mode="after")
    def _platform_ids(self) -> "ChatAlertsSettings":
        if self.platform == "slack":
            if not re.fullmatch(r"[A-Z0-9]{1,255}", self.team_id):
                raise _FieldError("chat_alerts.team_id", self.team_id, "a Slack workspace id such as T0123ABCD")
            if not re.fullmatch(r"[A-Z0-9]{1,255}", self.channel_id):
                raise _FieldError("chat_alerts.channel_id", self.channel_id, "a Slack channel id such as C0123ABCD")
            if self.tenant_id is not None:
                raise _FieldError("chat_alerts.tenant_id", self.tenant_id, "unset for Slack (Teams only)")
        else:
            if not re.fullmatch(_UUID, self.team_id):
                raise _FieldError("chat_alerts.team_id", self.team_id, "a Teams team id (a UUID)")
            if self.tenant_id is None:
                raise _FieldError("chat_alerts.tenant_id", None, "the Microsoft 365 tenant id (a UUID) for Teams")
            if not re.fullmatch(r"[A-Za-z0-9_=+/.,-]*%3[aA][A-Za-z0-9_=+/.,-]*%40[A-Za-z0-9_=+/.,-]*", self.channel_id):
                raise _FieldError("chat_alerts.channel_id", self.channel_id,
                                  "a Teams channel id as Chatbot shows it, such as 19%3aabc%40thread.tacv2")
        return self


_ADDRESS = r"^[a-z][a-z0-9_]*\.[a-z_][a-z0-9_-]*(\[[0-9]+\])?$"
_IMPORT_ID = r"^[A-Za-z0-9_.:/@+=,-]{1,512}$"


class Settings(_Strict):
    """Everything a deployment may choose. Every field has a default."""

    # --- identity -----------------------------------------------------------
    name: Name = "mlflow"
    """Short name; prefixes every AWS resource name."""
    environment: Name = "dev"
    """Environment name (dev, staging, prod, ...); part of every resource name."""
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")] = "us-east-1"
    """AWS region of the whole deployment."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags added to every resource (merged over Project/Environment/ManagedBy)."""

    # --- networking ---------------------------------------------------------
    az_count: Annotated[int, Field(ge=2, le=6)] = 2
    """Number of availability zones (2 to 6); ignored when availability_zones is set."""
    availability_zones: Optional[list[Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$")]]] = None
    """Explicit AZ names (2 to 6, in the region). Default: the first az_count AZs of the region (a, b, c, ...)."""
    vpc_cidr: str = "10.0.0.0/16"
    """VPC IPv4 CIDR, /16 to /24."""
    subnet_newbits: Annotated[int, Field(ge=5, le=8)] = 5
    """Bits added to the VPC prefix for each subnet (5 gives /21 subnets in a /16)."""
    nat_gateway_mode: Literal["per_az", "single"] = "per_az"
    """One NAT gateway per AZ (resilient) or a single one (cheaper)."""
    public_subnet_cidrs: Optional[list[str]] = None
    """Explicit CIDRs of the public subnets, one per AZ in AZ order. Default: derived from vpc_cidr
    (slot i of the VPC split by subnet_newbits). Set all three lists to reproduce a deployed layout."""
    private_subnet_cidrs: Optional[list[str]] = None
    """Explicit CIDRs of the private (instance) subnets, one per AZ. Default: slot 8+i."""
    database_subnet_cidrs: Optional[list[str]] = None
    """Explicit CIDRs of the database subnets, one per AZ. Default: slot 16+i."""

    # --- compute ------------------------------------------------------------
    instance_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")] = "t3.medium"
    """EC2 instance type of the MLflow servers (MLflow needs about 1 GiB)."""
    ami_id: Optional[Annotated[str, Field(pattern=r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")]] = None
    """AMI of the instances. Default: the latest Amazon Linux 2023, read from AWS's public SSM
    parameter at plan time, so a new release is a visible change that rolls the fleet (with
    automatic rollback) on the next apply. Set an AMI id to pin it (docs/change-safety.md)."""
    asg_min_size: Annotated[int, Field(ge=1, le=50)] = 2
    """Fewest MLflow instances (1 to 50)."""
    asg_desired_capacity: Annotated[int, Field(ge=1, le=50)] = 2
    """MLflow instances to run (min <= desired <= max)."""
    asg_max_size: Annotated[int, Field(ge=1, le=50)] = 4
    """Most MLflow instances (1 to 50)."""
    mlflow_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")] = "3.17.2"
    """MLflow release installed on the instances (PyPI version)."""
    mlflow_auth: bool = True
    """MLflow's basic-auth app: login required; admin password in SSM (docs/auth.md)."""
    mlflow_auth_secrets_version: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Bump to generate a new admin password and Flask secret key."""
    mlflow_workers: Annotated[int, Field(ge=0, le=32)] = 0
    """API workers per instance: gunicorn workers serving MLflow's REST API, beside the UI server
    (docs/runtime.md, "Serving"). 0 = one per vCPU of instance_type, capped by its memory at 300 MiB
    each after 1,152 MiB (modules/instance_types.py); set it for a type not in that table. The
    instance runs fewer if the database connection budget holds fewer."""

    # --- demand scaling (docs/observability.md) ----------------------------------
    scaling_requests_per_target: Annotated[int, Field(ge=10, le=100_000)] = 1500
    """Target tracking: load balancer requests per instance per minute the group keeps (25/s)."""
    scaling_cpu_percent: Annotated[int, Field(ge=10, le=90)] = 60
    """Target tracking: average CPU of the group, in percent."""
    instance_warmup_seconds: Annotated[int, Field(ge=0, le=3600)] = 180
    """Seconds before a new instance's metrics count for scaling (launch to healthy: about 150 s)."""
    health_check_grace_seconds: Annotated[int, Field(ge=60, le=7200)] = 600
    """Seconds after launch before failed load balancer health checks replace an instance (4x the boot)."""
    deregistration_delay_seconds: Annotated[int, Field(ge=0, le=3600)] = 900
    """Seconds an instance leaving the load balancer keeps serving requests in flight (artifact uploads)."""

    # --- database -----------------------------------------------------------
    db_engine: Literal["mysql", "postgres"] = "mysql"
    """RDS engine: mysql (the guide's default) or postgres."""
    db_engine_version: Optional[str] = None
    """Major version (8.0, 8.4; 14 to 17), or a deployed full version such as 8.0.43 when adopting a
    database: Terraform then keeps what is deployed and leaves minor upgrades to AWS. Default 8.0 for
    mysql, 16 for postgres."""
    db_instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] = "db.t3.small"
    """RDS instance class."""
    db_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = 20
    """Initial gp3 storage (GiB, 20 to 65536)."""
    db_max_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = 100
    """Storage autoscaling ceiling; equal to allocated storage turns it off."""
    db_multi_az: bool = True
    """Standby database in a second AZ."""
    db_backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 7
    """Automated backup retention (1 to 35 days)."""
    db_monitoring_interval: Literal[0, 1, 5, 10, 15, 30, 60] = 60
    """RDS enhanced monitoring interval in seconds (OS metrics); 0 turns it off."""
    db_max_connections: Optional[Annotated[int, Field(ge=10, le=100_000)]] = None
    """The database's max_connections. Default: RDS's default for db_instance_class
    (modules/db_limits.py); set it for a class not in that table or a parameter group that changes
    it. The MLflow servers' pools are sized to fit in it (docs/runtime.md, "Database connection
    budget")."""
    db_password_version: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Bump to rotate the generated DB master password (RDS and SSM get a new one). With naming "hcl",
    version 1 is the adopted deployment's password, left as it is; bumping it generates ours."""
    deletion_protection: bool = True
    """Protects the database and the load balancer from deletion, keeps final DB and Redis snapshots,
    refuses to destroy non-empty buckets, and makes any plan that would destroy or replace the
    database, the artifact bucket, the KMS key, Redis, the VPC or a subnet fail at plan time
    (prevent_destroy; docs/change-safety.md). False lets `destroy` remove everything, data included."""
    apply_immediately: bool = False
    """Apply database and Redis changes (class, engine version, parameter group) at once, with the
    restart they need. Default: in the next maintenance window (docs/change-safety.md)."""
    db_snapshot_identifier: Optional[Annotated[str, Field(pattern=r"^(arn:aws[a-z-]*:rds:[a-z0-9-]+:[0-9]{12}:snapshot:)?[a-zA-Z][a-zA-Z0-9-]{0,254}$")]] = None
    """Create the database from this RDS snapshot (name or ARN; docs/change-safety.md). Read only when the
    database is created: use it for a new environment, never to roll an existing one back."""

    # --- cache --------------------------------------------------------------
    redis_node_type: Annotated[str, Field(pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")] = "cache.t3.micro"
    """ElastiCache node type."""
    redis_num_nodes: Annotated[int, Field(ge=1, le=6)] = 2
    """Primary plus replicas; 2 or more turns on automatic failover and Multi-AZ."""
    redis_at_rest_key: Optional[Literal["deployment", "aws"]] = None
    """Key of Redis's encryption at rest: the deployment's KMS key, or the AWS-owned ElastiCache key.
    Default: deployment (naming "standard"); aws (naming "hcl", as the HCL deployment has it). Changing
    it REPLACES the cache: its data is lost."""

    # --- edge ---------------------------------------------------------------
    alb_internet_facing: bool = False
    """Put the load balancer in the public subnets, reachable from the internet. Default: internal
    (reach it over VPN or peering, or through Session Manager port forwarding; docs/access.md).
    Needs TLS (domain_name or certificate_arn) unless allow_public_plain_http. Changing it REPLACES
    the load balancer (its DNS name changes)."""
    allow_public_plain_http: bool = False
    """Explicitly allow an internet-facing load balancer without TLS: MLflow logins and tokens then
    cross the internet in clear text. Only for adopting a deployment that is already like that; the
    synth warns."""
    domain_name: Optional[Annotated[str, Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")]] = None
    """DNS name of MLflow (e.g. mlflow.example.com). With route53_zone_id the stack creates an ACM
    certificate validated by DNS, an alias A record for the load balancer, and HTTPS."""
    route53_zone_id: Optional[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,32}$")]] = None
    """Route 53 hosted zone of domain_name (it gets the validation and alias records)."""
    certificate_arn: Optional[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$")]] = None
    """ACM certificate for the HTTPS listener; with it, HTTP redirects to HTTPS."""
    alb_allowed_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    """IPv4 CIDRs allowed to reach the load balancer on 80/443."""
    waf: bool = False
    """AWS WAF (IP reputation, known bad inputs, common rules) on the ALB; off by default (paid, and
    MLflow's login already guards the API)."""
    ssh_allowed_cidrs: list[str] = Field(default_factory=list)
    """IPv4 CIDRs allowed to SSH to the instances. Default none: use Session Manager."""
    ssh_public_key: Optional[Annotated[str, Field(pattern=r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( [^\x00-\x1f\"\\$`{}]*)?$")]] = None
    """Public key of the key pair. Default: the Terraform variable ssh_public_key."""

    # --- operations ---------------------------------------------------------
    alert_emails: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")]] = Field(default_factory=list)
    """E-mail addresses subscribed to the alerts topic."""
    log_retention_days: int = 30
    """CloudWatch Logs retention; one of the values CloudWatch allows."""
    db_max_connections_alarm: Optional[Annotated[int, Field(ge=1, le=100_000)]] = None
    """Database connections above which the alarm fires. Default: 80% of db_max_connections (RDS's
    default max_connections for db_instance_class, modules/db_limits.py)."""
    chat_alerts: Optional[ChatAlertsSettings] = None
    """Alerts in a Slack or Teams channel through AWS Chatbot; default none."""

    artifact_bucket_name: Optional[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]] = None
    """Name of the artifact bucket; default <name>-<environment>-artifacts-<random suffix>.
    Set it to adopt an existing bucket (with an import)."""

    # --- state and adoption -------------------------------------------------
    naming: Literal["standard", "hcl"] = "standard"
    """Naming profile: "standard" (this project's names) or "hcl" (the names, paths and descriptions of
    a deployment of the guide's public HCL stack, so that adopting it replaces nothing that holds data;
    docs/adoption.md). Choose once per environment: changing it replaces most resources."""
    backend: Optional[S3BackendSettings] = None
    """Remote state in S3 with native locking; default: local state file."""
    adopt_hcl_deployment: bool = False
    """Emit moved/removed blocks to take over a deployment of the guide's public HCL stack
    (needs naming = "hcl"; docs/adoption.md)."""
    imports: dict[Annotated[str, Field(pattern=_ADDRESS)], Annotated[str, Field(pattern=_IMPORT_ID)]] = Field(
        default_factory=dict)
    """Existing AWS objects to adopt: our address -> AWS id (emits import blocks)."""

    emulator: Optional[EmulatorSettings] = None
    """Tests only: send every AWS call to an emulator on loopback."""

    # --- validators ---------------------------------------------------------
    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 40:
            raise ValueError("at most 40 tags (AWS allows 50 per resource; the stack adds its own)")
        for k, val in v.items():
            if not re.fullmatch(r"[\w .:/=+@-]{1,128}", k) or k.lower().startswith("aws:"):
                raise ValueError(f"tag key {k!r} must be 1-128 letters, digits, spaces or _.:/=+-@ and not start with aws:")
            if not re.fullmatch(r"[\w .:/=+@-]{0,256}", val):
                raise ValueError(f"tag value {val!r} (key {k!r}) must be 0-256 letters, digits, spaces or _.:/=+-@")
        return v

    @field_validator("db_engine_version", mode="before")
    @classmethod
    def _version_number(cls, v: object) -> object:
        """TOML has numbers: db_engine_version = 16 or 8.0 means the version "16" or "8.0"."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, v: str) -> str:
        net = _ipv4_network(v)
        if not 16 <= net.prefixlen <= 24:
            raise ValueError("must have a prefix length from /16 to /24")
        if not net.is_private:
            raise ValueError("must be a private (RFC 1918) range")
        return v

    @field_validator("alb_allowed_cidrs", "ssh_allowed_cidrs")
    @classmethod
    def _cidr_list(cls, v: list[str]) -> list[str]:
        for c in v:
            _ipv4_network(c)
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a CIDR")
        if len(v) > 20:
            raise ValueError("must list at most 20 CIDRs")
        return v

    @field_validator("ssh_allowed_cidrs")
    @classmethod
    def _ssh_narrow(cls, v: list[str]) -> list[str]:
        wide = [c for c in v if ipaddress.ip_network(c).prefixlen < 16]
        if wide:
            raise ValueError(f"SSH must not be open to ranges wider than /16 ({', '.join(wide)}); use Session Manager")
        return v

    @field_validator("alb_allowed_cidrs")
    @classmethod
    def _alb_reachable(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one CIDR, or nobody can reach MLflow")
        return v

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v) or any(len(e) > 254 for e in v):
            raise ValueError("must be distinct addresses of at most 254 characters")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> "Settings":
        if not self.asg_min_size <= self.asg_desired_capacity <= self.asg_max_size:
            raise _FieldError(
                "asg_min_size/asg_desired_capacity/asg_max_size",
                f"{self.asg_min_size}/{self.asg_desired_capacity}/{self.asg_max_size}",
                "min <= desired <= max",
            )
        if len(self.prefix) > 24:
            raise _FieldError(
                "name/environment", self.prefix,
                "<name>-<environment> at most 24 characters (it prefixes names AWS limits, such as the load "
                "balancer's and the Redis members')",
            )
        if self.naming == "hcl" and len(self.prefix) > 22:
            raise _FieldError(
                "name/environment", self.prefix,
                '<name>-<environment> at most 22 characters with naming = "hcl" (IAM allows 38 for the name '
                "prefix <name>-<environment>-mlflow-instance)",
            )
        if self.db_engine_version is not None and _major_version(self.db_engine, self.db_engine_version) is None:
            raise _FieldError(
                "db_engine_version", self.db_engine_version,
                f"for {self.db_engine}: a major version ({', '.join(DB_ENGINE_VERSIONS[self.db_engine])}) "
                f"or a full deployed version of one ({'8.0.43' if self.db_engine == 'mysql' else '16.4'})",
            )
        if self.adopt_hcl_deployment and self.naming != "hcl":
            raise _FieldError(
                "adopt_hcl_deployment", True,
                'only with naming = "hcl", which keeps the adopted deployment\'s names (docs/adoption.md)',
            )
        if self.db_max_allocated_storage_gb < self.db_allocated_storage_gb:
            raise _FieldError(
                "db_max_allocated_storage_gb", self.db_max_allocated_storage_gb,
                f"at least db_allocated_storage_gb ({self.db_allocated_storage_gb})",
            )
        if self.availability_zones is not None:
            azs = self.availability_zones
            if not 2 <= len(azs) <= 6 or len(set(azs)) != len(azs):
                raise _FieldError("availability_zones", azs, "2 to 6 distinct AZ names")
            wrong = [a for a in azs if a[:-1] != self.region]
            if wrong:
                raise _FieldError("availability_zones", azs, f"AZs of region {self.region} (e.g. {self.region}a)")
        net = ipaddress.ip_network(self.vpc_cidr)
        if net.prefixlen + self.subnet_newbits > 28:
            raise _FieldError(
                "subnet_newbits", self.subnet_newbits,
                f"at most {28 - net.prefixlen} for vpc_cidr {self.vpc_cidr} (subnets can be no smaller than /28)",
            )
        self._check_edge()
        self._check_scaling_and_alarms()
        self._check_subnet_cidrs()
        locked = locked_versions()
        if self.mlflow_version not in locked:
            raise _FieldError(
                "mlflow_version", self.mlflow_version,
                f"a release with a hash lock in modules/mlflow_instance/locks ({', '.join(locked)}); for another, "
                f"run `make lock MLFLOW_VERSIONS={self.mlflow_version}` and commit the new lock file",
            )
        return self

    def _check_scaling_and_alarms(self) -> None:
        if self.health_check_grace_seconds < self.instance_warmup_seconds:
            raise _FieldError(
                "health_check_grace_seconds", self.health_check_grace_seconds,
                f"at least instance_warmup_seconds ({self.instance_warmup_seconds}); a shorter grace replaces "
                "instances that are still booting")
        if self.database_max_connections is None:
            raise _FieldError(
                "db_instance_class", self.db_instance_class,
                "a class whose memory the stack knows (modules/db_limits.py), or set db_max_connections "
                "to the database's max_connections")
        self._check_connection_budget()

    def _check_connection_budget(self) -> None:
        if self.mlflow_processes is None:
            raise _FieldError(
                "mlflow_workers", self.mlflow_workers,
                f"a number of API workers per instance (1 to 32) for instance_type {self.instance_type!r}, "
                "whose vCPUs and memory the stack does not know (modules/instance_types.py)")
        b = self.db_budget
        if b.plan is None:
            per_process = connections_per_process(self.mlflow_auth)
            source = ("db_max_connections" if self.db_max_connections is not None
                      else f"RDS's default for {self.db_instance_class} ({self.db_engine})")
            raise _FieldError(
                "asg_max_size/db_instance_class",
                f"{self.asg_max_size}/{self.db_instance_class}",
                f"a configuration whose database connections fit in max_connections: {b.peak_instances} "
                f"instances (asg_max_size {self.asg_max_size} plus {b.peak_instances - self.asg_max_size} "
                f"draining during an instance refresh) x 2 MLflow serving processes (the UI server and one API "
                f"worker) x {per_process} connections, plus {b.reserve} in reserve, need {b.required}, but "
                f"{source} allows {b.max_connections}; lower asg_max_size, "
                "choose a db_instance_class with more memory, or set db_max_connections if the parameter "
                "group allows more (docs/runtime.md, \"Database connection budget\")")

    @property
    def mlflow_processes(self) -> Optional[int]:
        """API workers per instance asked for: mlflow_workers, else from instance_type; None if unknown."""
        if self.mlflow_workers:
            return self.mlflow_workers
        shape = instance_shape(self.instance_type)
        return None if shape is None else serving_processes(*shape)

    @property
    def database_max_connections(self) -> Optional[int]:
        """db_max_connections, else RDS's default for the class; None if unknown."""
        if self.db_max_connections is not None:
            return self.db_max_connections
        return default_max_connections(self.db_engine, self.db_instance_class)

    @property
    def db_budget(self) -> Budget:
        """The connection budget of the MLflow servers (modules/db_budget.py); after validation."""
        assert self.database_max_connections is not None and self.mlflow_processes is not None
        return connection_budget(self.database_max_connections, self.asg_max_size, self.mlflow_processes,
                                 self.mlflow_auth)

    @property
    def db_connections_alarm_threshold(self) -> Optional[int]:
        """db_max_connections_alarm, else 80% of the database's max_connections."""
        if self.db_max_connections_alarm is not None:
            return self.db_max_connections_alarm
        limit = self.database_max_connections
        return None if limit is None else int(limit * 0.8)

    def _check_edge(self) -> None:
        if (self.domain_name is None) != (self.route53_zone_id is None):
            raise _FieldError("domain_name/route53_zone_id", f"{self.domain_name}/{self.route53_zone_id}",
                              "both set (the stack makes and validates a certificate) or neither")
        if self.domain_name and self.certificate_arn:
            raise _FieldError("certificate_arn", self.certificate_arn,
                              "unset when domain_name is set (the stack makes the certificate); choose one")
        if self.allow_public_plain_http and not self.alb_internet_facing:
            raise _FieldError("allow_public_plain_http", True,
                              "only with alb_internet_facing = true (an internal load balancer needs no exception)")
        if self.allow_public_plain_http and self.https:
            raise _FieldError("allow_public_plain_http", True,
                              "only without TLS (with domain_name or certificate_arn, HTTP redirects to HTTPS)")
        if self.alb_internet_facing and not self.https and not self.allow_public_plain_http:
            raise _FieldError(
                "alb_internet_facing", True,
                "only with TLS: set domain_name and route53_zone_id, or certificate_arn (plain HTTP would send "
                "MLflow logins in clear text); to accept that anyway, also set allow_public_plain_http = true")

    def _check_subnet_cidrs(self) -> None:
        vpc = ipaddress.ip_network(self.vpc_cidr)
        n = len(self.azs)
        for tier in TIER_OFFSET:
            field = f"{tier}_subnet_cidrs"
            given = getattr(self, field)
            if given is None:
                continue
            if len(given) != n:
                raise _FieldError(field, given, f"exactly one CIDR per availability zone ({n})")
            for c in given:
                try:
                    net = _ipv4_network(c)
                except ValueError as e:
                    raise _FieldError(field, c, str(e).removeprefix("must be ")) from None
                if not net.subnet_of(vpc):
                    raise _FieldError(field, c, f"a subnet of vpc_cidr {self.vpc_cidr}")
                if net.prefixlen > 28:
                    raise _FieldError(field, c, "a prefix length of /28 or shorter (AWS's smallest subnet)")
        if vpc.prefixlen + self.subnet_newbits > 28:
            return  # reported by the subnet_newbits check
        seen: list[tuple[str, ipaddress.IPv4Network]] = []
        for tier in TIER_OFFSET:
            for c in self.subnet_cidrs(tier):
                net = ipaddress.ip_network(c)
                clash = next((t for t, other in seen if net.overlaps(other)), None)
                if clash:
                    raise _FieldError(f"{tier}_subnet_cidrs", c,
                                      f"CIDRs that overlap no other subnet (it overlaps a {clash} subnet)")
                seen.append((tier, net))

    _source: str = PrivateAttr(default="the built-in defaults")

    @property
    def source(self) -> str:
        """Where these settings were read: a file's path, or the built-in defaults."""
        return self._source

    # --- derived values (one place) -----------------------------------------
    @property
    def prefix(self) -> str:
        """Prefix of every AWS resource name: <name>-<environment>."""
        return f"{self.name}-{self.environment}"

    @property
    def stack_name(self) -> str:
        return self.prefix

    @property
    def azs(self) -> list[str]:
        if self.availability_zones is not None:
            return list(self.availability_zones)
        return [f"{self.region}{chr(ord('a') + i)}" for i in range(self.az_count)]

    @property
    def nat_count(self) -> int:
        return 1 if self.nat_gateway_mode == "single" else len(self.azs)

    def subnet_cidrs(self, tier: str) -> list[str]:
        """CIDRs of a tier (public, private, database), one per AZ: the explicit list, else derived."""
        given = getattr(self, f"{tier}_subnet_cidrs")
        if given is not None:
            return list(given)
        vpc = ipaddress.ip_network(self.vpc_cidr)
        off = TIER_OFFSET[tier]
        return [str(s) for s in itertools.islice(
            vpc.subnets(prefixlen_diff=self.subnet_newbits), off, off + len(self.azs))]

    @property
    def engine_version(self) -> str:
        """The engine_version argument: the major version, or the pinned full one."""
        return self.db_engine_version or DB_DEFAULT_VERSION[self.db_engine]

    @property
    def engine_version_pinned(self) -> bool:
        """A full deployed version: Terraform keeps it and AWS's minor upgrades are not fought."""
        return self.engine_version != _major_version(self.db_engine, self.engine_version)

    @property
    def db_parameter_family(self) -> str:
        return DB_ENGINE_VERSIONS[self.db_engine][_major_version(self.db_engine, self.engine_version)]

    @property
    def names(self) -> Names:
        """Every identifying AWS name of the stack (modules/naming.py)."""
        return names_for(self.naming, self.name, self.environment, self.db_parameter_family)

    @property
    def keep_deployed_db_password(self) -> bool:
        """Adopting with naming "hcl": the adopted master password counts as version 1, left as deployed."""
        return self.naming == "hcl" and self.adopt_hcl_deployment and self.db_password_version == 1

    @property
    def redis_uses_deployment_key(self) -> bool:
        key = self.redis_at_rest_key or ("aws" if self.naming == "hcl" else "deployment")
        return key == "deployment"

    @property
    def db_port(self) -> int:
        return DB_PORT[self.db_engine]

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None or self.domain_name is not None

    @property
    def ssm_prefix(self) -> str:
        """SSM Parameter Store path of this deployment's parameters."""
        return self.names.ssm_prefix

    @property
    def log_group_names(self) -> dict[str, str]:
        """The three CloudWatch log groups: MLflow server, nginx, system."""
        return self.names.log_groups

    @property
    def flow_log_group_name(self) -> str:
        return f"/{self.name}/{self.environment}/vpc-flow-logs"

    @property
    def all_tags(self) -> dict[str, str]:
        """Tags merged from one place: defaults, then the user's tags."""
        return {**self.base_tags, **self.tags}

    @property
    def base_tags(self) -> dict[str, str]:
        """The default tags, fixed for the life of the environment (the launch template carries these)."""
        return {"Project": self.name, "Environment": self.environment, "ManagedBy": "cdktf"}


class _FieldError(ValueError):
    def __init__(self, field: str, value: object, allowed: str):
        super().__init__(f"{field}: {value!r} is not allowed; allowed: {allowed}.")
        self.field, self.value, self.allowed = field, value, allowed


def _major_version(engine: str, version: str) -> Optional[str]:
    """The major version of an engine version RDS offers (8.0.43 -> 8.0, 16.4 -> 16), or None."""
    majors = DB_ENGINE_VERSIONS[engine]
    if version in majors:
        return version
    parts = version.split(".")
    major = ".".join(parts[:2]) if engine == "mysql" else parts[0]
    full_parts = 3 if engine == "mysql" else 2
    if major in majors and len(parts) == full_parts and all(x.isdigit() for x in parts):
        return major
    return None


def _ipv4_network(v: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as e:
        raise ValueError(f"must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set ({e})") from None
    if net.version != 4:
        raise ValueError("must be an IPv4 CIDR")
    return net


# What each pattern-checked setting allows, in words (never a raw regular expression).
PATTERN_HELP: dict[str, str] = {
    "name": "2 to 20 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen",
    "environment": "2 to 20 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen",
    "region": "an AWS region name such as us-east-1 or eu-west-2",
    "availability_zones": "AZ names such as us-east-1a",
    "instance_type": "an EC2 instance type such as t3.medium or m7g.large",
    "mlflow_version": "a release number such as 3.17.2",
    "db_instance_class": "an RDS class such as db.t3.small",
    "redis_node_type": "an ElastiCache node type such as cache.t3.micro",
    "certificate_arn": "an ACM certificate ARN such as "
                       "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-1111-2222-3333-444455556666",
    "ssh_public_key": "one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521, then the "
                      "base64 key, then an optional comment)",
    "alert_emails": "e-mail addresses such as ops@example.com",
    "artifact_bucket_name": "an S3 bucket name: 3 to 63 lowercase letters, digits and hyphens",
    "domain_name": "a lowercase DNS name such as mlflow.example.com",
    "route53_zone_id": "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ",
    "bucket": "an existing S3 bucket name (lowercase letters, digits, dots and hyphens)",
    "key": "an S3 object key of letters, digits and !_.*'()/-",
    "kms_key_id": "a KMS key or alias ARN such as "
                  "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "endpoint": "http://127.0.0.1:PORT or http://localhost:PORT (tests only)",
    "imports": "our address (aws_type.name, optionally [index]) mapped to an AWS id of letters, digits and "
               "_.:/@+=,-",
}


# pydantic's error types, said as what is allowed.
_TYPE_WORDS = {
    "int_type": "a whole number", "string_type": "a quoted string", "bool_type": "true or false",
    "list_type": "a list [...]", "dict_type": "a table", "model_type": "a table", "missing": "a value",
}


def _allowed(e: dict, msg: str) -> str:
    ctx = e.get("ctx") or {}
    kind = e["type"]
    if kind in ("less_than_equal", "less_than"):
        return f"at most {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"at least {ctx.get('ge', ctx.get('gt'))}"
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind in ("too_long", "too_short"):
        return f"{'at most' if kind == 'too_long' else 'at least'} {ctx.get('max_length', ctx.get('min_length'))} items"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    return _TYPE_WORDS.get(kind, msg[:1].lower() + msg[1:])


def _one_paragraph(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(t if (t := str(p)) and t.isprintable() else repr(t) for p in e["loc"]) or "(settings)"
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            parts.append(str(ctx_err))
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = "one of " + ", ".join(Settings.model_fields) if len(e["loc"]) == 1 else "see README"
            parts.append(f"{loc}: unknown setting; allowed: {allowed}.")
        elif e["type"] == "string_pattern_mismatch":
            field = next((str(x) for x in reversed(e["loc"]) if isinstance(x, str) and x in PATTERN_HELP), None)
            allowed = PATTERN_HELP.get(field, "see the settings table in README")
            parts.append(f"{loc}: {e['input']!r} is not allowed; allowed: {allowed}.")
        else:
            parts.append(f"{loc}: {e['input']!r} is not allowed; allowed: {_allowed(e, msg)}.")
    return " ".join(f"Invalid settings in {source}: {' '.join(parts)}".split())


def settings_sources(settings_dir: Path) -> list[Optional[Path]]:
    """MLFLOW_SETTINGS if set, else every <settings_dir>/*.toml, else the built-in defaults (None)."""
    chosen = os.environ.get("MLFLOW_SETTINGS")
    if chosen:
        return [Path(chosen)]
    files = sorted(settings_dir.glob("*.toml"))
    return list(files) or [None]


def load_all(sources: list[Optional[Path]]) -> list[Settings]:
    """Validate every source before any construct is built; one stack name per source."""
    loaded = [load_settings(src) for src in sources]
    by_stack: dict[str, list[str]] = {}
    for s in loaded:
        by_stack.setdefault(s.stack_name, []).append(s.source)
    clashes = [f"{name} from {' and '.join(srcs)}" for name, srcs in sorted(by_stack.items()) if len(srcs) > 1]
    if clashes:
        raise SettingsError(
            f"Two settings files give the same name and environment ({'; '.join(clashes)}); each environment "
            "needs its own stack name: change environment (or name) in one of them."
        )
    return loaded


def load_settings(path: Optional[Path] = None, **overrides: object) -> Settings:
    """Load and validate settings from a TOML file (or the defaults when path is None).

    Keyword overrides win over the file. Raises SettingsError with one paragraph.
    """
    data: dict[str, object] = {}
    source = "the built-in defaults"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError(f"Settings file {path} does not exist.") from None
        except IsADirectoryError:
            raise SettingsError(f"Settings file {path} is a directory; give a .toml file.") from None
        except OSError as e:
            raise SettingsError(f"Settings file {path} cannot be read ({e.strerror or e}).") from None
        except UnicodeDecodeError as e:
            raise SettingsError(f"Settings file {path} is not UTF-8 text (byte {e.start}); TOML files are UTF-8.") \
                from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"Settings file {path} is not valid TOML: {e}.") from None
    data.update(overrides)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise SettingsError(_one_paragraph(source, e)) from None
    settings._source = source
    return settings
