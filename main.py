#!/usr/bin/env python
"""MLflow tracking server on AWS, as a CDK for Terraform app.

    bootstrap -> networking -> security -> database -> mlflow -> alerting -> observability

One stack per settings file in settings/ (``mlflow-dev``, ``mlflow-prod``,
...), or one ``mlflow-dev`` stack from the built-in defaults when there is no
file. ``MLFLOW_SETTINGS=path.toml`` synthesizes just that file;
``MLFLOW_SETTINGS_DIR`` points at another folder of settings files.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import modules  # noqa: F401  (selects Node 22 and the lazy provider import first)
from modules.settings import Settings, SettingsError, load_all, settings_sources

SETTINGS_DIR = Path(os.environ.get("MLFLOW_SETTINGS_DIR", Path(__file__).resolve().parent / "settings"))

if __name__ == "__main__":
    # Settings first: a bad value is one line on stderr, before cdktf starts Node.
    try:
        ALL_SETTINGS = load_all(settings_sources(SETTINGS_DIR))
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

from cdktf import Annotations, App, LocalBackend, S3Backend, TerraformOutput  # noqa: E402
from constructs import Construct  # noqa: E402

from modules.adoption import moved_blocks, removed_blocks  # noqa: E402
from modules.alerting import Alerting, AlertingProps, ChatProps  # noqa: E402
from modules.base import AddressedStack, address_of  # noqa: E402
from modules.bootstrap import Bootstrap, BootstrapProps  # noqa: E402
from modules.database import Database, DatabaseProps  # noqa: E402
from modules.mlflow import Mlflow, MlflowProps, ScalingProps  # noqa: E402
from modules.networking import Networking, NetworkingProps  # noqa: E402
from modules.observability import Observability, ObservabilityProps  # noqa: E402
from modules.providers import chatbot_provider, configure_providers  # noqa: E402
from modules.security import Security, SecurityProps  # noqa: E402


class MlflowStack(AddressedStack):
    """The whole deployment of one environment."""

    def __init__(self, scope: Construct, s: Settings):
        super().__init__(scope, s.stack_name)
        configure_providers(self, s)

        boot = Bootstrap(self, "bootstrap", BootstrapProps(prefix=s.prefix, ssh_public_key=s.ssh_public_key))
        names = s.names
        artifact_bucket = s.artifact_bucket_name or f"{s.prefix}-artifacts-{boot.bucket_suffix_hex}"
        alb_logs_bucket = names.alb_logs_bucket(boot.bucket_suffix_hex)
        metrics_namespace = f"MLflow/{s.prefix}"

        net = Networking(self, "networking", NetworkingProps(
            prefix=s.prefix, region=s.region, vpc_cidr=s.vpc_cidr, azs=s.azs,
            public_cidrs=s.subnet_cidrs("public"), private_cidrs=s.subnet_cidrs("private"),
            database_cidrs=s.subnet_cidrs("database"), nat_count=s.nat_count, names=names,
            artifact_bucket_name=artifact_bucket, account_id=boot.account_id, partition=boot.partition,
            reverse_dns_prefix=boot.reverse_dns_prefix, protect=s.deletion_protection,
        ))

        sec = Security(self, "security", SecurityProps(
            prefix=s.prefix, region=s.region, account_id=boot.account_id, partition=boot.partition,
            vpc_id=net.vpc_id, db_port=s.db_port,
            alb_allowed_cidrs=s.alb_allowed_cidrs, ssh_allowed_cidrs=s.ssh_allowed_cidrs,
            artifact_bucket_name=artifact_bucket, ssm_prefix=s.ssm_prefix,
            log_group_names=s.log_group_names, metrics_namespace=metrics_namespace,
            flow_log_group_name=s.flow_log_group_name, log_retention_days=s.log_retention_days,
            names=names, private_cidrs=s.subnet_cidrs("private"), database_cidrs=s.subnet_cidrs("database"),
            alb_internal=not s.alb_internet_facing, dns_suffix=boot.dns_suffix, protect_key=s.deletion_protection,
        ))

        db = Database(self, "database", DatabaseProps(
            prefix=s.prefix, names=names, engine=s.db_engine, engine_version=s.engine_version,
            engine_version_pinned=s.engine_version_pinned,
            parameter_family=s.db_parameter_family, port=s.db_port, instance_class=s.db_instance_class,
            allocated_storage_gb=s.db_allocated_storage_gb, max_allocated_storage_gb=s.db_max_allocated_storage_gb,
            multi_az=s.db_multi_az, backup_retention_days=s.db_backup_retention_days,
            deletion_protection=s.deletion_protection, password_version=s.db_password_version,
            keep_deployed_password=s.keep_deployed_db_password,
            subnet_ids=net.database_subnet_ids, database_security_group_id=sec.database_security_group_id,
            cache_security_group_id=sec.cache_security_group_id, kms_key=sec.kms_key,
            redis_node_type=s.redis_node_type, redis_num_nodes=s.redis_num_nodes,
            redis_uses_deployment_key=s.redis_uses_deployment_key,
            partition=boot.partition, monitoring_interval=s.db_monitoring_interval,
            region=s.region, account_id=boot.account_id, snapshot_suffix=boot.bucket_suffix_hex,
            apply_immediately=s.apply_immediately, snapshot_identifier=s.db_snapshot_identifier,
        ))

        app = Mlflow(self, "mlflow", MlflowProps(
            prefix=s.prefix, names=names, region=s.region, account_id=boot.account_id, partition=boot.partition,
            vpc_id=net.vpc_id, public_subnet_ids=net.public_subnet_ids, private_subnet_ids=net.private_subnet_ids,
            alb_security_group_id=sec.alb_security_group_id, app_security_group_id=sec.app_security_group_id,
            instance_profile_arn=sec.instance_profile_arn, kms_key=sec.kms_key, key_name=boot.key_name,
            artifact_bucket_name=artifact_bucket, alb_logs_bucket_name=alb_logs_bucket,
            ssm_prefix=s.ssm_prefix, log_group_names=s.log_group_names, log_retention_days=s.log_retention_days,
            metrics_namespace=metrics_namespace, instance_type=s.instance_type,
            min_size=s.asg_min_size, desired_capacity=s.asg_desired_capacity, max_size=s.asg_max_size,
            mlflow_version=s.mlflow_version, mlflow_workers=s.mlflow_processes, db_engine=s.db_engine,
            certificate_arn=s.certificate_arn, deletion_protection=s.deletion_protection, tags=s.all_tags,
            launch_tags=s.base_tags, ami_id=s.ami_id,
            alb_internet_facing=s.alb_internet_facing, domain_name=s.domain_name, route53_zone_id=s.route53_zone_id,
            waf=s.waf, auth=s.mlflow_auth, auth_secrets_version=s.mlflow_auth_secrets_version,
            db_connections=s.db_budget.per_instance,
            scaling=ScalingProps(
                requests_per_target=s.scaling_requests_per_target, cpu_percent=s.scaling_cpu_percent,
                instance_warmup_seconds=s.instance_warmup_seconds,
                health_check_grace_seconds=s.health_check_grace_seconds,
                deregistration_delay_seconds=s.deregistration_delay_seconds,
            ),
        ))

        # AWS names a replication group's members <id>-001, <id>-002, ...
        redis_cluster_ids = [f"{names.replication_group_id}-{i:03d}" for i in range(1, s.redis_num_nodes + 1)]
        chat = None
        if s.chat_alerts is not None:
            c = s.chat_alerts
            chat = ChatProps(platform=c.platform, channel_id=c.channel_id, team_id=c.team_id, tenant_id=c.tenant_id,
                             provider=chatbot_provider(self, s, c.region))
        alerts = Alerting(self, "alerting", AlertingProps(
            prefix=s.prefix, account_id=boot.account_id, kms_key_id=sec.kms_key.key_id,
            alert_emails=s.alert_emails, asg_name=app.asg_name, alb_arn_suffix=app.alb_arn_suffix,
            target_group_arn_suffix=app.target_group_arn_suffix, db_instance_id=db.db_instance_id,
            metrics_namespace=metrics_namespace, asg_min_size=s.asg_min_size, asg_max_size=s.asg_max_size,
            db_connections_alarm=s.db_connections_alarm_threshold, redis_cluster_ids=redis_cluster_ids,
            partition=boot.partition, chat=chat,
        ))
        obs = Observability(self, "observability", ObservabilityProps(
            prefix=s.prefix, region=s.region, names=names, kms_key_arn=sec.kms_key.arn,
            log_retention_days=s.log_retention_days, metrics_namespace=metrics_namespace,
            asg_name=app.asg_name, asg_min_size=s.asg_min_size, asg_max_size=s.asg_max_size,
            alb_arn_suffix=app.alb_arn_suffix, target_group_arn_suffix=app.target_group_arn_suffix,
            db_instance_id=db.db_instance_id, db_connections_alarm=s.db_connections_alarm_threshold,
            redis_cluster_ids=redis_cluster_ids, scaling_requests_per_target=s.scaling_requests_per_target,
            scaling_cpu_percent=s.scaling_cpu_percent,
        ))
        db.redis.put_log_delivery_configuration(obs.redis_log_delivery)  # the slow log, to obs's log group

        TerraformOutput(self, "tracking_url", value=app.tracking_url, description="MLflow tracking URI")
        TerraformOutput(self, "alb_dns_name", value=app.alb_dns_name)
        TerraformOutput(self, "artifact_bucket", value=app.artifact_bucket)
        TerraformOutput(self, "db_endpoint", value=db.db_endpoint)
        TerraformOutput(self, "sns_topic_arn", value=alerts.topic_arn)
        if not s.alb_internet_facing:
            TerraformOutput(self, "port_forward_command", value=port_forward_command(s, app),
                            description="Reach the internal load balancer from your machine through Session Manager")
        if s.allow_public_plain_http:
            Annotations.of(self).add_warning(
                f"{s.stack_name}: allow_public_plain_http = true: the internet-facing load balancer serves MLflow "
                "over plain HTTP, so logins and tokens cross the internet in clear text. Set domain_name and "
                "route53_zone_id (or certificate_arn) to serve HTTPS.")

        self._state_and_adoption(s)

    def _state_and_adoption(self, s: Settings) -> None:
        if s.backend is None:
            # Relative to the stack's folder (cdktf.out/stacks/<stack>): the project root, as
            # cdktf's default, but without the absolute path of wherever the project was cloned.
            LocalBackend(self, path=f"../../../terraform.{s.stack_name}.tfstate")
        else:
            b = s.backend
            S3Backend(self, bucket=b.bucket, key=b.key, region=b.region, encrypt=True, kms_key_id=b.kms_key_id)
            self.add_override("terraform.backend.s3.use_lockfile", True)  # cdktf 0.21 lacks the field
        if s.adopt_hcl_deployment:
            self.add_blocks("moved", moved_blocks(s))
            self.add_blocks("removed", removed_blocks())
        if s.imports:
            known = {address_of(e) for e in self.elements()}
            unknown = sorted(a for a in s.imports if a.split("[")[0] not in known)
            if unknown:
                raise SettingsError(
                    f"imports: {', '.join(unknown)} is not an address of this stack; allowed: addresses of "
                    "resources the stack creates, such as aws_key_pair.mlflow_key or aws_s3_bucket.mlflow_artifacts."
                )
            self.add_blocks("import", [{"to": a, "id": i} for a, i in sorted(s.imports.items())])


def port_forward_command(s: Settings, app: Mlflow) -> str:
    """The aws CLI command that forwards localhost:8080 to the internal load balancer via an instance."""
    port = 443 if s.https else 80
    instance = (f"$(aws autoscaling describe-auto-scaling-groups --region {s.region} "
                f"--auto-scaling-group-names {app.asg_name} "
                "--query 'AutoScalingGroups[0].Instances[0].InstanceId' --output text)")
    parameters = f'{{"host":["{app.alb_dns_name}"],"portNumber":["{port}"],"localPortNumber":["8080"]}}'
    return (f"aws ssm start-session --region {s.region} --target {instance} "
            f"--document-name AWS-StartPortForwardingSessionToRemoteHost --parameters '{parameters}'")


def build_app(all_settings: list[Settings]) -> App:
    app = App()  # outdir: CDKTF_OUTDIR, else cdktf.out
    for s in all_settings:
        MlflowStack(app, s)
    return app


def main(all_settings: list[Settings]) -> int:
    outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    existed = outdir.exists()
    try:
        build_app(all_settings).synth()
    except SettingsError as e:  # found while building (imports naming a missing address)
        if not existed:  # App() creates the folder; leave nothing half-written
            shutil.rmtree(outdir, ignore_errors=True)
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in all_settings:
        print(f"synthesized {outdir / 'stacks' / s.stack_name / 'cdk.tf.json'} from {s.source}")
    if not os.environ.get("MLFLOW_SETTINGS") and all(s.source != "the built-in defaults" for s in all_settings):
        print(f"note: {SETTINGS_DIR} has settings files, so only their stacks are synthesized "
              "(the built-in default stack is made only when that folder has no .toml file)")
    print_warnings(outdir / "manifest.json")
    return 0


def print_warnings(manifest: Path) -> None:
    """The stacks' warning annotations on stderr, as `cdktf synth` shows them."""
    for stack in json.loads(manifest.read_text())["stacks"].values():
        for note in stack.get("annotations", []):
            if note.get("level") == "@cdktf/warn":
                print(f"warning: {note['message']}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(ALL_SETTINGS))
