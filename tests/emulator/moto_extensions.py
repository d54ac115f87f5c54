"""Extensions of moto 5.2.5 that the emulator tier needs to deploy the stack.

Each extension is one small function registered with ``@extension``. Its
docstring names the AWS call that stock moto 5.2.5 lacks, or the fidelity gap
(moto answers, but differently from AWS, so that Terraform fails or its second
plan is not empty). ``apply()`` installs them all in the current process; the
launcher (``server.py``) calls it before starting moto's server.

Nothing here changes what the stack asks for: the extensions only make the
emulator answer the way AWS answers.
"""
from __future__ import annotations

from typing import Any, Callable

_EXTENSIONS: list[tuple[str, Callable[[], None]]] = []


def extension(fn: Callable[[], None]) -> Callable[[], None]:
    _EXTENSIONS.append((fn.__name__, fn))
    return fn


def apply(without: frozenset[str] = frozenset()) -> list[str]:
    """Install every extension except those named in ``without``; returns the names installed."""
    unknown = without - {name for name, _ in _EXTENSIONS}
    if unknown:
        raise ValueError(f"no such extension: {', '.join(sorted(unknown))}")
    names = []
    for name, fn in _EXTENSIONS:
        if name not in without:
            fn()
            names.append(name)
    return names


def _add_action(response_cls: type, name: str, fn: Callable[..., Any]) -> None:
    """Add a handler for a missing API action (moto dispatches on snake_case method names)."""
    if hasattr(response_cls, name):
        raise RuntimeError(f"{response_cls.__name__}.{name} exists in this moto; drop the extension")
    fn.__name__ = name
    setattr(response_cls, name, fn)


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------


@extension
def server_one_request_at_a_time() -> None:
    """moto's server (werkzeug, ``threaded=True``) handles each connection on its
    own thread, but moto's backends are not thread-safe. Example: every EC2
    response that shows tags scans the whole tag table (every resource's tag
    dict), and a concurrent request that tags a resource makes the scan raise
    "dictionary changed size during iteration": HTTP 500 after the change of the
    scanning request was already made. The provider retries a 500, so a
    CreateInternetGateway answered that way leaves a second, untracked gateway
    behind (issue #14; see the igw-tag-race fault below). AWS applies each call
    atomically: handle one request at a time (connections are still accepted
    concurrently; the provider's parallel operations just queue).
    """
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lock = threading.Lock()
    original = DomainDispatcherApplication.__call__

    def __call__(self: Any, environ: dict, start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            result = original(self, environ, start_response)
            try:
                return list(result)  # the body is built under the lock too
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    DomainDispatcherApplication.__call__ = __call__


# ---------------------------------------------------------------------------
# ElastiCache
# ---------------------------------------------------------------------------


@extension
def elasticache_cache_parameter_groups() -> None:
    """ElastiCache CreateCacheParameterGroup, DescribeCacheParameterGroups,
    ModifyCacheParameterGroup, ResetCacheParameterGroup, DeleteCacheParameterGroup
    and DescribeCacheParameters are not implemented in moto 5.2.5 (HTTP 500).
    Needed by aws_elasticache_parameter_group. Only user-set parameters are
    kept (the provider reads back ``Source=user`` only); their tags go through
    moto's tagging service, whose ARN pattern gains ``parametergroup``.
    """
    import re

    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, EmptyResult
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    class NotFound(ServiceException):
        code = "CacheParameterGroupNotFound"

    class AlreadyExists(ServiceException):
        code = "CacheParameterGroupAlreadyExists"

    class InUse(ServiceException):
        code = "InvalidCacheParameterGroupState"

    original_init = ElastiCacheBackend.__init__

    def __init__(self: Any, region_name: str, account_id: str) -> None:
        original_init(self, region_name, account_id)
        self.cache_parameter_groups = {}
        self.arn_regex = re.compile(
            r"^arn:aws:elasticache:.*:[0-9]*:(cluster|snapshot|subnetgroup|replicationgroup|user|parametergroup):.*$"
        )

    ElastiCacheBackend.__init__ = __init__

    def _group(backend: Any, name: str) -> dict:
        if name not in backend.cache_parameter_groups:
            raise NotFound(f"CacheParameterGroup {name} not found.")
        return backend.cache_parameter_groups[name]

    def _public(group: dict) -> dict:
        return {k: v for k, v in group.items() if k != "Parameters"}

    def create_cache_parameter_group(self: Any) -> ActionResult:
        b = self.elasticache_backend
        name = self._get_param("CacheParameterGroupName")
        if name in b.cache_parameter_groups:
            raise AlreadyExists(f"Parameter group {name} already exists.")
        arn = f"arn:aws:elasticache:{self.region}:{self.current_account}:parametergroup:{name}"
        group = {
            "CacheParameterGroupName": name,
            "CacheParameterGroupFamily": self._get_param("CacheParameterGroupFamily"),
            "Description": self._get_param("Description"),
            "IsGlobal": False,
            "ARN": arn,
            "Parameters": {},
        }
        b.cache_parameter_groups[name] = group
        tags = self._get_param("Tags", [])
        if tags:
            b.tagging_service.tag_resource(arn, tags)
        return ActionResult({"CacheParameterGroup": _public(group)})

    def describe_cache_parameter_groups(self: Any) -> ActionResult:
        b = self.elasticache_backend
        name = self._get_param("CacheParameterGroupName")
        groups = [_group(b, name)] if name else list(b.cache_parameter_groups.values())
        return ActionResult({"CacheParameterGroups": [_public(g) for g in groups]})

    def modify_cache_parameter_group(self: Any) -> ActionResult:
        group = _group(self.elasticache_backend, self._get_param("CacheParameterGroupName"))
        for p in self._get_param("ParameterNameValues", []):
            group["Parameters"][p["ParameterName"]] = p["ParameterValue"]
        return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})

    def reset_cache_parameter_group(self: Any) -> ActionResult:
        group = _group(self.elasticache_backend, self._get_param("CacheParameterGroupName"))
        if self._get_bool_param("ResetAllParameters"):
            group["Parameters"].clear()
        for p in self._get_param("ParameterNameValues", []):
            group["Parameters"].pop(p["ParameterName"], None)
        return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})

    def delete_cache_parameter_group(self: Any) -> ActionResult:
        b = self.elasticache_backend
        name = self._get_param("CacheParameterGroupName")
        group = _group(b, name)
        users = [r for r in b.replication_groups.values() if r.cache_parameter_group_name == name]
        if users:  # AWS refuses to delete a group in use
            raise InUse(f"Parameter group {name} is in use by {users[0].replication_group_id}.")
        del b.cache_parameter_groups[name]
        b.tagging_service.delete_all_tags_for_resource(group["ARN"])
        return EmptyResult()

    def describe_cache_parameters(self: Any) -> ActionResult:
        group = _group(self.elasticache_backend, self._get_param("CacheParameterGroupName"))
        source = self._get_param("Source")
        params = [] if source not in (None, "user") else [
            {"ParameterName": k, "ParameterValue": v, "Source": "user", "DataType": "string",
             "IsModifiable": True, "ChangeType": "immediate"}
            for k, v in sorted(group["Parameters"].items())
        ]
        return ActionResult({"Parameters": params})

    for fn in (create_cache_parameter_group, describe_cache_parameter_groups, modify_cache_parameter_group,
               reset_cache_parameter_group, delete_cache_parameter_group, describe_cache_parameters):
        _add_action(ElastiCacheResponse, fn.__name__, fn)


@extension
def elasticache_delete_cache_subnet_group() -> None:
    """ElastiCache DeleteCacheSubnetGroup is not implemented in moto 5.2.5 (HTTP
    500), so destroying aws_elasticache_subnet_group fails. Refuses, like AWS,
    while a replication group still uses the subnet group.
    """
    from moto.core.exceptions import ServiceException
    from moto.core.responses import EmptyResult
    from moto.elasticache.exceptions import CacheSubnetGroupNotFound
    from moto.elasticache.responses import ElastiCacheResponse

    class InUse(ServiceException):
        code = "CacheSubnetGroupInUse"

    def delete_cache_subnet_group(self: Any) -> EmptyResult:
        b = self.elasticache_backend
        name = self._get_param("CacheSubnetGroupName")
        if name not in b.cache_subnet_groups:
            raise CacheSubnetGroupNotFound(name)
        users = [r for r in b.replication_groups.values() if r.cache_subnet_group_name == name]
        if users:
            raise InUse(f"Cache subnet group {name} is currently in use by a replication group.")
        group = b.cache_subnet_groups.pop(name)
        b.tagging_service.delete_all_tags_for_resource(group.arn)
        return EmptyResult()

    _add_action(ElastiCacheResponse, "delete_cache_subnet_group", delete_cache_subnet_group)


@extension
def elasticache_modify_cache_subnet_group() -> None:
    """ElastiCache ModifyCacheSubnetGroup is not implemented in moto 5.2.5 (HTTP
    500), so an in-place update of aws_elasticache_subnet_group (a new
    description or subnet list, e.g. when the stack adopts another deployment's
    group) fails. AWS changes the description and, when SubnetIds is given, the
    subnets (InvalidSubnet unless all are in one VPC) and answers with the
    group; the name, ARN and tags stay.
    """
    from moto.core.responses import ActionResult
    from moto.elasticache.exceptions import CacheSubnetGroupNotFound
    from moto.elasticache.models import CacheSubnetGroup
    from moto.elasticache.responses import ElastiCacheResponse

    def modify_cache_subnet_group(self: Any) -> ActionResult:
        b = self.elasticache_backend
        name = self._get_param("CacheSubnetGroupName")
        if name not in b.cache_subnet_groups:
            raise CacheSubnetGroupNotFound(name)
        group = b.cache_subnet_groups[name]
        subnet_ids = self._get_param("SubnetIds", [])
        if subnet_ids:
            # moto's constructor resolves the subnets (AZs, network types, VPC) and
            # raises InvalidSubnet for subnets of several VPCs, as AWS does.
            fresh = CacheSubnetGroup(b.account_id, b.region_name, name, group.cache_subnet_group_description,
                                     subnet_ids, None)
            group.subnet_ids = fresh.subnet_ids
            group.subnets = fresh.subnets
            group.supported_network_types = fresh.supported_network_types
            group.vpc_id = fresh.vpc_id
        description = self._get_param("CacheSubnetGroupDescription")
        if description is not None:
            group.cache_subnet_group_description = description
        return ActionResult({"CacheSubnetGroup": group})

    _add_action(ElastiCacheResponse, "modify_cache_subnet_group", modify_cache_subnet_group)


@extension
def elasticache_replication_group_members() -> None:
    """moto 5.2.5 CreateReplicationGroup ignores NumCacheClusters (a cluster-mode-
    disabled group always gets one member, so the second plan wants 2 again),
    creates no member cache clusters (the provider reads engine version,
    parameter group, security groups, windows and encryption flags from
    DescribeCacheClusters of the first member), and DeleteReplicationGroup only
    marks the group "deleting" forever (the provider waits until it is gone).
    This creates the NumCacheClusters members as cache clusters carrying the
    group's settings, and deletes group and members on DeleteReplicationGroup.
    """
    from moto.elasticache.models import CacheCluster, ElastiCacheBackend

    original_create = ElastiCacheBackend.create_replication_group
    original_delete = ElastiCacheBackend.delete_replication_group

    def create_replication_group(self: Any, **kw: Any) -> Any:
        group = original_create(self, **kw)
        wanted = kw.get("num_cache_clusters") or 1
        if group.cluster_mode != "enabled" and not kw.get("replicas_per_node_group") and not kw.get("num_node_groups"):
            node_group = group.node_groups[0]
            members = node_group["node_group_members"]
            azs = kw.get("preferred_cache_cluster_azs") or []
            for r in range(len(members), wanted):
                cid = f"{group.replication_group_id}-{r + 1:03}"
                template = dict(members[0])
                template.update(
                    cache_cluster_id=cid,
                    current_role="replica",
                    preferred_availability_zone=azs[r] if r < len(azs) else f"{self.region_name}{'abcdef'[r % 6]}",
                    read_endpoint={"address": members[0]["read_endpoint"]["address"].replace(
                        members[0]["cache_cluster_id"], cid), "port": group.port},
                )
                members.append(template)
                group.member_clusters.append(cid)
            if len(group.member_clusters) > 1:
                group.snapshotting_cluster_id = group.member_clusters[1] if group.snapshot_retention_limit else None
        for member in group.node_groups[0]["node_group_members"]:
            cluster = CacheCluster(
                account_id=self.account_id, region_name=self.region_name,
                cache_cluster_id=member["cache_cluster_id"], cache_node_type=group.cache_node_type,
                replication_group_id=group.replication_group_id, az_mode="single-az",
                preferred_availability_zone=member.get("preferred_availability_zone"), num_cache_nodes=1,
                engine=group.engine, engine_version=_full_redis_version(group.engine_version),
                cache_parameter_group_name=group.cache_parameter_group_name,
                cache_subnet_group_name=group.cache_subnet_group_name,
                transit_encryption_enabled=group.transit_encryption_enabled,
                network_type=group.network_type, ip_discovery=group.ip_discovery, snapshot_name=None,
                preferred_maintenance_window=group.preferred_maintenance_window or "sun:05:00-sun:06:00",
                port=group.port, notification_topic_arn=group.notification_topic_arn,
                auto_minor_version_upgrade=group.auto_minor_version_upgrade,
                snapshot_retention_limit=group.snapshot_retention_limit, snapshot_window=group.snapshot_window,
                auth_token=None, outpost_mode=None, preferred_outpost_arn=None, preferred_availability_zones=None,
                cache_security_group_names=None, security_group_ids=group.security_group_ids, tags=None,
                snapshot_arns=None, preferred_outpost_arns=None, log_delivery_configurations=[],
                cache_node_ids_to_remove=None, cache_node_ids_to_reboot=None,
            )
            # Shapes of DescribeCacheClusters that CacheCluster does not carry.
            cluster.cache_parameter_group = {
                "CacheParameterGroupName": group.cache_parameter_group_name or "default.redis7",
                "ParameterApplyStatus": "in-sync",
            }
            cluster.security_groups = [{"SecurityGroupId": s, "Status": "active"} for s in group.security_group_ids or []]
            cluster.at_rest_encryption_enabled = group.at_rest_encryption_enabled
            cluster.transit_encryption_mode = group.transit_encryption_mode or (
                "required" if group.transit_encryption_enabled else None)
            self.cache_clusters[cluster.cache_cluster_id] = cluster
        group.member_cluster_objects = list(group.member_clusters)
        return group

    def delete_replication_group(self: Any, replication_group_id: str, retain_primary_cluster: Any) -> Any:
        group = original_delete(self, replication_group_id, retain_primary_cluster)
        for cid in getattr(group, "member_cluster_objects", []):
            self.cache_clusters.pop(cid, None)
        self.replication_groups.pop(replication_group_id, None)
        self.tagging_service.delete_all_tags_for_resource(group.arn)
        return group

    ElastiCacheBackend.create_replication_group = create_replication_group
    ElastiCacheBackend.delete_replication_group = delete_replication_group


@extension
def elasticache_modify_replication_group_settings() -> None:
    """moto 5.2.5 ModifyReplicationGroup applies only the description, engine,
    node type, failover, Multi-AZ and snapshot retention, and to the group
    alone: PreferredMaintenanceWindow, AutoMinorVersionUpgrade, SnapshotWindow,
    CacheParameterGroupName, SecurityGroupIds and NotificationTopicArn are
    dropped, and the member clusters (from which the provider reads
    maintenance_window, the parameter group, security groups, node type) keep
    their creation settings. Adopting a group (the HCL's
    auto_minor_version_upgrade = false, "Sun:07:00-Sun:09:00") then leaves a
    second plan that wants the change again. AWS applies them to the group and
    its member clusters, and keeps the maintenance window in lowercase.
    """
    from moto.elasticache.responses import ElastiCacheResponse

    original = ElastiCacheResponse.modify_replication_group

    def modify_replication_group(self: Any) -> Any:
        result = original(self)  # raises ReplicationGroupNotFoundFault for an unknown group
        b = self.elasticache_backend
        group = b.replication_groups[self._get_param("ReplicationGroupId")]
        members = [b.cache_clusters[c] for c in group.member_clusters if c in b.cache_clusters]
        targets = [group, *members]

        def assign(attribute: str, value: Any) -> None:
            if value is not None:
                for target in targets:
                    setattr(target, attribute, value)

        window = self._get_param("PreferredMaintenanceWindow")
        assign("preferred_maintenance_window", window.lower() if window else None)
        assign("auto_minor_version_upgrade", self._get_bool_param("AutoMinorVersionUpgrade"))
        assign("snapshot_window", self._get_param("SnapshotWindow"))
        assign("notification_topic_arn", self._get_param("NotificationTopicArn"))
        assign("cache_node_type", self._get_param("CacheNodeType"))
        for member in members:
            member.snapshot_retention_limit = group.snapshot_retention_limit
        parameter_group = self._get_param("CacheParameterGroupName")
        if parameter_group:
            assign("cache_parameter_group_name", parameter_group)
            for member in members:
                member.cache_parameter_group = {
                    "CacheParameterGroupName": parameter_group, "ParameterApplyStatus": "in-sync"}
        security_groups = self._get_param("SecurityGroupIds")
        if security_groups:
            assign("security_group_ids", list(security_groups))
            for member in members:
                member.security_groups = [{"SecurityGroupId": g, "Status": "active"} for g in security_groups]
        return result

    ElastiCacheResponse.modify_replication_group = modify_replication_group


@extension
def elasticache_lowercase_maintenance_window() -> None:
    """ElastiCache keeps a maintenance window in lowercase ("sun:07:00-sun:09:00"
    for a requested "Sun:07:00-Sun:09:00"; the provider's maintenance_window
    has a lowercasing StateFunc for that reason); moto 5.2.5 stores and echoes
    what it was sent. A state that holds the mixed-case value (the adopted HCL
    group) then never converges: every plan wants the lowercased value, and
    the provider, which sends the unmodified value, never changes it. This
    lowercases it on CreateReplicationGroup and CreateCacheCluster, as AWS does
    (ModifyReplicationGroup: elasticache_modify_replication_group_settings).
    """
    from moto.elasticache.models import ElastiCacheBackend

    for name in ("create_replication_group", "create_cache_cluster"):
        original = getattr(ElastiCacheBackend, name)

        def create(self: Any, *args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            window = kwargs.get("preferred_maintenance_window")
            if isinstance(window, str):
                kwargs["preferred_maintenance_window"] = window.lower()
            return __original(self, *args, **kwargs)

        setattr(ElastiCacheBackend, name, create)


def _full_redis_version(version: str | None) -> str:
    """AWS reports the full engine version (7.1.0) for a requested 7.1."""
    if not version:
        return "7.1.0"
    return version if version.count(".") >= 2 else f"{version}.0"


# ---------------------------------------------------------------------------
# Auto Scaling
# ---------------------------------------------------------------------------


@extension
def autoscaling_notification_configurations() -> None:
    """Auto Scaling PutNotificationConfiguration, DescribeNotificationConfigurations
    and DeleteNotificationConfiguration are not implemented in moto 5.2.5 (HTTP
    500). Needed by aws_autoscaling_notification. Deleting a group drops its
    configurations, as in AWS.
    """
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult, EmptyResult

    def _store(backend: Any) -> dict:
        if not hasattr(backend, "notification_configurations"):
            backend.notification_configurations = {}  # (group, topic) -> [types]
        return backend.notification_configurations

    def put_notification_configuration(self: Any) -> EmptyResult:
        b = self.autoscaling_backend
        group = self._get_param("AutoScalingGroupName")
        if group not in b.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - {group}")
        _store(b)[(group, self._get_param("TopicARN"))] = list(self._get_param("NotificationTypes", []))
        return EmptyResult()

    def describe_notification_configurations(self: Any) -> ActionResult:
        names = self._get_param("AutoScalingGroupNames", [])
        configs = [
            {"AutoScalingGroupName": g, "TopicARN": t, "NotificationType": n}
            for (g, t), types in sorted(_store(self.autoscaling_backend).items())
            if not names or g in names
            for n in types
        ]
        return ActionResult({"NotificationConfigurations": configs})

    def delete_notification_configuration(self: Any) -> EmptyResult:
        key = (self._get_param("AutoScalingGroupName"), self._get_param("TopicARN"))
        _store(self.autoscaling_backend).pop(key, None)
        return EmptyResult()

    for fn in (put_notification_configuration, describe_notification_configurations,
               delete_notification_configuration):
        _add_action(AutoScalingResponse, fn.__name__, fn)

    original_delete = AutoScalingBackend.delete_auto_scaling_group

    def delete_auto_scaling_group(self: Any, group_name: str) -> None:
        original_delete(self, group_name)
        store = _store(self)
        for key in [k for k in store if k[0] == group_name]:
            del store[key]

    AutoScalingBackend.delete_auto_scaling_group = delete_auto_scaling_group


@extension
def autoscaling_instance_refresh() -> None:
    """Auto Scaling StartInstanceRefresh, DescribeInstanceRefreshes and
    CancelInstanceRefresh are not implemented in moto 5.2.5 (HTTP 500). The
    provider starts a refresh when an aws_autoscaling_group with an
    instance_refresh block gets a new launch template version (here: when the
    stack adopts the HCL's group), and cancels one in progress (then waits for
    its status) before starting another. AWS replaces the group's instances
    with ones launched from the current launch template (in batches kept above
    MinHealthyPercentage; instances protected from scale in are skipped with
    the default ScaleInProtectedInstances=Ignore) and reports the refresh
    Pending, InProgress, then Successful. Nothing boots in the emulator, so the
    refresh is done at once: new instances replace the old ones (also in the
    target groups), and the refresh is Successful, 100 % complete; Cancel then
    finds no active refresh (ActiveInstanceRefreshNotFound), as in AWS.
    """
    import uuid
    from datetime import UTC, datetime

    from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    class NotActive(AutoscalingClientError):
        code = "ActiveInstanceRefreshNotFound"

    def _store(backend: Any) -> dict:
        if not hasattr(backend, "instance_refreshes"):
            backend.instance_refreshes = {}  # group name -> refreshes, newest first
        return backend.instance_refreshes

    def _group(backend: Any, name: str) -> Any:
        if name not in backend.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - {name}")
        return backend.autoscaling_groups[name]

    def start_instance_refresh(self: Any) -> ActionResult:
        b = self.autoscaling_backend
        name = self._get_param("AutoScalingGroupName")
        group = _group(b, name)
        started = datetime.now(UTC)
        old = [s for s in group.instance_states
               if s.lifecycle_state == "InService" and not s.protected_from_scale_in]
        if old:
            group.replace_autoscaling_group_instances(len(old), group.get_propagated_tags())
            ids = [s.instance.id for s in old]
            for arn in group.target_group_arns:
                target_group = b.elbv2_backend.target_groups.get(arn)
                if target_group is not None:
                    target_group.deregister_terminated_instances(ids)
            b.ec2_backend.terminate_instances(ids)
            group.instance_states = [s for s in group.instance_states if s not in old]
            b.update_attached_elbs(name)
            b.update_attached_target_groups(name)
        refresh = {
            "InstanceRefreshId": str(uuid.uuid4()),
            "AutoScalingGroupName": name,
            "Status": "Successful",
            "StartTime": started,
            "EndTime": datetime.now(UTC),
            "PercentageComplete": 100,
            "InstancesToUpdate": 0,
            "Strategy": self._get_param("Strategy") or "Rolling",
        }
        _store(b).setdefault(name, []).insert(0, refresh)
        return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})

    def describe_instance_refreshes(self: Any) -> ActionResult:
        b = self.autoscaling_backend
        name = self._get_param("AutoScalingGroupName")
        _group(b, name)
        wanted = self._get_param("InstanceRefreshIds", [])
        found = [r for r in _store(b).get(name, []) if not wanted or r["InstanceRefreshId"] in wanted]
        return ActionResult({"InstanceRefreshes": found})

    def cancel_instance_refresh(self: Any) -> ActionResult:
        b = self.autoscaling_backend
        name = self._get_param("AutoScalingGroupName")
        _group(b, name)
        active = [r for r in _store(b).get(name, []) if r["Status"] in ("Pending", "InProgress")]
        if not active:
            raise NotActive(f"No in progress or pending Instance Refresh found for Auto Scaling group {name}")
        active[0]["Status"] = "Cancelled"
        return ActionResult({"InstanceRefreshId": active[0]["InstanceRefreshId"]})

    for fn in (start_instance_refresh, describe_instance_refreshes, cancel_instance_refresh):
        _add_action(AutoScalingResponse, fn.__name__, fn)

    original_delete = AutoScalingBackend.delete_auto_scaling_group

    def delete_auto_scaling_group(self: Any, group_name: str) -> None:
        original_delete(self, group_name)
        _store(self).pop(group_name, None)

    AutoScalingBackend.delete_auto_scaling_group = delete_auto_scaling_group


# ---------------------------------------------------------------------------
# EC2
# ---------------------------------------------------------------------------


@extension
def ec2_resolve_ssm_image_id() -> None:
    """AWS resolves an ImageId of the form ``resolve:ssm:<parameter>`` (used by the
    launch template) from Parameter Store when it launches an instance; moto
    5.2.5 stores the literal string as the instance's ImageId. This resolves it
    from moto's SSM store (which holds the public AMI parameters), and fails
    like AWS when the parameter does not exist.
    """
    from moto.ec2.exceptions import InvalidAMIIdError
    from moto.ec2.models import EC2Backend
    from moto.ssm.models import ssm_backends

    original = EC2Backend.run_instances

    def run_instances(self: Any, image_id: str, *args: Any, **kwargs: Any) -> Any:
        if image_id and image_id.startswith("resolve:ssm:"):
            param = ssm_backends[self.account_id][self.region_name].get_parameter(image_id[len("resolve:ssm:"):])
            if param is None:
                raise InvalidAMIIdError(image_id)
            image_id = param.value
        return original(self, image_id, *args, **kwargs)

    EC2Backend.run_instances = run_instances


@extension
def ec2_group_rule_descriptions() -> None:
    """moto 5.2.5 stores the description of a rule that references another
    security group in the group pair (UserIdGroupPairs[].Description) but
    DescribeSecurityGroupRules reports a rule's Description from its CIDR range
    only, so every group-referencing aws_vpc_security_group_*_rule reads back
    without its description and the second plan wants to add it again.
    """
    from moto.ec2.models.security_groups import SecurityGroupRule

    def description(self: Any) -> str | None:
        return self.ip_range.get("Description") or (self.source_group or {}).get("Description")

    SecurityGroupRule.description = property(description)


@extension
def ec2_atomic_security_group_rule_updates() -> None:
    """moto's server answers requests on threads, and its AuthorizeSecurityGroup*
    and RevokeSecurityGroup* rebuild a group's rule list from a snapshot
    (``group.egress_rules = [r for r in ... if ...]``) without a lock. The
    provider runs up to 10 operations at once, so revoking the default egress
    rule while another rule of the same group is authorized can silently drop
    the new rule; destroy then fails with InvalidPermission.NotFound (seen once
    in five runs). AWS applies each call atomically: serialize them.
    """
    import functools
    import threading

    from moto.ec2.models.security_groups import SecurityGroupBackend

    lock = threading.RLock()
    for name in ("authorize_security_group_ingress", "authorize_security_group_egress",
                 "revoke_security_group_ingress", "revoke_security_group_egress",
                 "create_security_group", "delete_security_group"):
        original = getattr(SecurityGroupBackend, name)

        def locked(*args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        setattr(SecurityGroupBackend, name, functools.wraps(original)(locked))


@extension
def ec2_launch_template_resource_tags() -> None:
    """CreateLaunchTemplate's TagSpecifications tag the launch template itself
    (ResourceType launch-template). moto 5.2.5 also copies them into the
    template's LaunchTemplateData.TagSpecifications, where AWS does not allow
    that resource type, so the provider reads back an extra tag_specifications
    block (the provider's default tags) and the second plan wants a new
    template version. This drops launch-template entries from the template data.
    """
    from moto.ec2.models import EC2Backend

    original = EC2Backend.create_launch_template

    def create_launch_template(self: Any, name: str, description: str, template_data: dict, *args: Any, **kwargs: Any) -> Any:
        specs = template_data.get("TagSpecifications")
        if specs:
            kept = [s for s in specs if s.get("ResourceType") != "launch-template"]
            if kept:
                template_data["TagSpecifications"] = kept
            else:
                del template_data["TagSpecifications"]
        return original(self, name, description, template_data, *args, **kwargs)

    EC2Backend.create_launch_template = create_launch_template


@extension
def ec2_launch_template_version_user_data() -> None:
    """moto 5.2.5 CreateLaunchTemplate decodes LaunchTemplateData.UserData into
    its Base64EncodedString type, but CreateLaunchTemplateVersion stores it as
    a plain str; launching an instance from such a version (an Auto Scaling
    scale-out or instance refresh after the template changed) then fails an
    assertion in moto (HTTP 500). In AWS every version launches instances, and
    both calls reject user data that is not base64. This treats the user data
    of a new version like that of a new template.
    """
    from moto.ec2.models.launch_templates import LaunchTemplate
    from moto.ec2.utils import parse_user_data

    original = LaunchTemplate.create_version

    def create_version(self: Any, data: dict, description: str) -> Any:
        if isinstance(data.get("UserData"), (str, bytes)):
            data = {**data, "UserData": parse_user_data(data["UserData"])}
        return original(self, data, description)

    LaunchTemplate.create_version = create_version


@extension
def ec2_launch_template_live_tags() -> None:
    """moto 5.2.5 DescribeLaunchTemplates answers a template's Tags from a copy
    taken when the template was created; CreateTags/DeleteTags on the template
    (how the provider updates an aws_launch_template's tags, e.g. dropping the
    adopted HCL template's Owner/CostCenter tags) change moto's tag table but
    not that copy, so the second plan wants to change the tags again (and the
    Auto Scaling group's template version with them). AWS reports the
    template's current tags: read them from the tag table.
    """
    from moto.ec2.models.launch_templates import LaunchTemplate

    LaunchTemplate.tags = property(
        lambda self: self.get_tags(),
        lambda self, value: None,  # moto's constructor stores its copy; the tag table is the truth
    )


# ---------------------------------------------------------------------------
# RDS
# ---------------------------------------------------------------------------


@extension
def rds_user_parameter_source() -> None:
    """moto 5.2.5 DescribeDBParameters returns the parameters set with
    Create/ModifyDBParameterGroup without ``Source`` and ignores the Source
    filter. The provider keeps only parameters whose Source is ``user`` (or
    ``system`` ones named in the configuration), so it reads back none and the
    second plan wants to add the parameter again. Parameters set through the
    API are user parameters in AWS: this marks them so.
    """
    from moto.rds.models import DBParameterGroup

    original = DBParameterGroup.update_parameters

    def update_parameters(self: Any, new_parameters: Any) -> None:
        new_parameters = list(new_parameters)
        original(self, new_parameters)
        for p in new_parameters:
            self.parameters[p["ParameterName"]]["Source"] = "user"

    DBParameterGroup.update_parameters = update_parameters


@extension
def rds_unique_resource_ids() -> None:
    """moto 5.2.5 gives every DB instance the same DbiResourceId (db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U),
    and the provider identifies an instance by it (the resource id is the state's ``id``). With
    two instances in one account, a database restored from a snapshot next to its source, the
    provider finds the source when it looks for the new one, and waits for the new one's
    modification forever. AWS gives each instance its own: so does this.
    """
    import secrets
    import string

    from moto.rds.models import DBInstance

    original = DBInstance.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        alphabet = string.ascii_uppercase + string.digits
        self.dbi_resource_id = "db-" + "".join(secrets.choice(alphabet) for _ in range(26))

    DBInstance.__init__ = __init__


@extension
def rds_modify_db_subnet_group() -> None:
    """moto 5.2.5 ModifyDBSubnetGroup pops the group out of the backend's table
    (``self.subnet_groups.pop(name)``) and never puts it back: the call answers
    with the modified group, but every later DescribeDBSubnetGroups says
    DBSubnetGroupNotFoundFault, so Terraform fails an in-place update of
    aws_db_subnet_group with "Root object was present, but now absent" (and a
    missing name raises KeyError, HTTP 500). AWS modifies the group in place:
    new subnets (SubnetIds is required; InvalidSubnet unless all are in one
    VPC) and, when given, a new description.
    """
    from moto.rds.exceptions import DBSubnetGroupNotFoundError, RDSClientError
    from moto.rds.models import RDSBackend

    def modify_db_subnet_group(self: Any, subnet_name: str, description: str | None, subnets: list) -> Any:
        group = self.subnet_groups.get(subnet_name)
        if group is None:
            raise DBSubnetGroupNotFoundError(subnet_name)
        if subnets:
            if len({s.vpc_id for s in subnets}) > 1:
                raise RDSClientError("InvalidSubnet", "The requested subnets are not all in a common VPC.")
            group.subnets = subnets
            group.vpc_id = subnets[0].vpc_id
        if description is not None:
            group.description = description
        return group

    RDSBackend.modify_db_subnet_group = modify_db_subnet_group


@extension
def rds_reset_db_parameter_group() -> None:
    """RDS ResetDBParameterGroup is not implemented in moto 5.2.5 (HTTP 500 with
    a body the SDK cannot parse). The provider calls it when a parameter leaves
    an aws_db_parameter_group's configuration (e.g. the adopted HCL group's
    innodb_buffer_pool_size). AWS sets the named parameters (or, with
    ResetAllParameters, which defaults to true when no parameter is named, all
    of them) back to the engine default, so they are no longer ``Source=user``.
    moto keeps only the parameters set through the API, so a reset drops them.
    """
    from moto.core.responses import ActionResult
    from moto.rds.exceptions import DBParameterGroupNotFoundError
    from moto.rds.responses import RDSResponse

    def reset_db_parameter_group(self: Any) -> ActionResult:
        name = self.params.get("DBParameterGroupName")
        group = self.backend.db_parameter_groups.get(name)
        if group is None:
            raise DBParameterGroupNotFoundError(name)
        named = [p["ParameterName"] for p in self.params.get("Parameters") or []]
        reset_all = self.params.get("ResetAllParameters")
        if reset_all or (reset_all is None and not named):
            group.parameters.clear()
        for parameter in named:
            group.parameters.pop(parameter, None)
        return ActionResult({"DBParameterGroupName": group.name})

    _add_action(RDSResponse, "reset_db_parameter_group", reset_db_parameter_group)


@extension
def rds_performance_insights() -> None:
    """moto 5.2.5 CreateDBInstance and ModifyDBInstance ignore
    EnablePerformanceInsights (and create ignores the KMS key and retention),
    and DescribeDBInstances never returns PerformanceInsightsEnabled, so a
    postgres instance (the stack turns Performance Insights on for postgres)
    reads back with it off and the second plan wants to turn it on again. This
    keeps the three settings as AWS reports them (retention defaults to 7 days).
    """
    from moto.rds.models import DBInstance

    original_init = DBInstance.__init__
    original_update = DBInstance.update

    def _set(db: Any, kwargs: dict) -> None:
        enabled = kwargs.get("enable_performance_insights")
        if enabled is None:
            return
        db.performance_insights_enabled = bool(enabled)
        if enabled:
            db.performance_insights_kms_key_id = (
                kwargs.get("performance_insights_kms_key_id") or getattr(db, "performance_insights_kms_key_id", None))
            db.performance_insights_retention_period = int(
                kwargs.get("performance_insights_retention_period")
                or getattr(db, "performance_insights_retention_period", None) or 7)
        else:
            db.performance_insights_kms_key_id = db.performance_insights_retention_period = None

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.performance_insights_enabled = False
        self.performance_insights_kms_key_id = self.performance_insights_retention_period = None
        _set(self, kwargs)

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        original_update(self, *args, **kwargs)
        _set(self, kwargs)

    DBInstance.__init__ = __init__
    DBInstance.update = update


# ---------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------


@extension
def s3_requests_are_secure_transport() -> None:
    """moto 5.2.5 checks a bucket's policy on every object request (PutObject,
    GetObject, HeadObject, ...) but evaluates conditions without a request
    context and knows only the StringEquals operator: a ``Bool`` condition is
    "not supported, ignored", i.e. treated as matching. The stack's
    DenyInsecureTransport statement (Deny s3:* when ``aws:SecureTransport`` is
    false) therefore denies every object request: PutObject of
    aws_s3_object.bootstrap_bundle answers 403 Forbidden once the bucket policy
    exists. In AWS the provider always talks HTTPS, so aws:SecureTransport is
    true and the statement does not apply. The emulator stands in for AWS's
    HTTPS endpoints (it is plain HTTP on loopback only because it is local):
    bucket policies are evaluated as for a request over HTTPS. A statement whose
    Bool aws:SecureTransport condition does not hold for that is left out; where
    it holds, that condition is removed and moto evaluates the rest as before.
    """
    import json

    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission

    def _secure(value: Any) -> bool:
        values = value if isinstance(value, list) else [value]
        return any(str(v).lower() == "true" for v in values)

    def _over_https(statement: dict) -> dict | None:
        conditions = statement.get("Condition") or {}
        booleans = conditions.get("Bool") or {}
        key = next((k for k in booleans if k.lower() == "aws:securetransport"), None)
        if key is None:
            return statement
        if not _secure(booleans[key]):
            return None  # e.g. DenyInsecureTransport: does not apply to HTTPS requests
        rest = {k: v for k, v in booleans.items() if k != key}
        conditions = {**conditions, "Bool": rest} if rest else {k: v for k, v in conditions.items() if k != "Bool"}
        return {**statement, "Condition": conditions} if conditions else {
            k: v for k, v in statement.items() if k != "Condition"}

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return original(self, action, resource)
        document = json.loads(self.policy)
        statements = document.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        kept = [s for s in (_over_https(s) for s in statements) if s is not None]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


# ---------------------------------------------------------------------------
# Opt-in faults (EMULATOR_FAULT=<name>, see server.py): not extensions, never
# installed by apply(). Each forces one failure the tier must survive.
# ---------------------------------------------------------------------------

FAULTS: dict[str, Callable[[], None]] = {}
RACE_WAIT_SECONDS = 5.0


def fault(fn: Callable[[], None]) -> Callable[[], None]:
    FAULTS[fn.__name__.replace("_", "-")] = fn
    return fn


def install_fault(name: str) -> str:
    if name not in FAULTS:
        raise ValueError(f"no such fault: {name!r} (known: {', '.join(sorted(FAULTS))})")
    FAULTS[name]()
    return name


@fault
def igw_tag_race() -> None:
    """Forces the interleaving behind issue #14, which otherwise needs an unlucky
    thread switch. The first tag scan for an internet gateway (the one that
    renders the CreateInternetGateway response) pauses inside a VPC's tag dict
    until a CreateTags call on a VPC has been handled; that CreateTags call
    first waits until the scan is paused. Each wait lasts at most
    RACE_WAIT_SECONDS. With concurrent requests, the tag lands mid-scan: the
    scan raises "dictionary changed size during iteration", HTTP 500, after the
    gateway was created. With one request at a time, one of the two waits times
    out and nothing fails.
    """
    import threading
    from collections import defaultdict

    from moto.ec2.models.tags import TagBackend
    from moto.ec2.responses.tags import TagResponse

    paused, tagged = threading.Event(), threading.Event()
    state = threading.local()
    armed = [True]

    class PausingTags:
        """One VPC's tags as the paused scan sees them: the live dict, paused after its first item."""

        def __init__(self, tags: dict) -> None:
            self.tags = tags

        def items(self) -> Any:
            for i, item in enumerate(self.tags.items()):
                yield item
                if i == 0:
                    print("igw-tag-race: scan paused in a VPC's tags", flush=True)
                    paused.set()
                    tagged.wait(RACE_WAIT_SECONDS)

    class TagTable(defaultdict):
        def copy(self) -> Any:  # describe_tags iterates over table.copy()
            if getattr(state, "pause", False):
                state.pause = False
                return {rid: PausingTags(tags) if rid.startswith("vpc-") and tags else tags
                        for rid, tags in dict(self).items()}
            return defaultdict.copy(self)

    original_init = TagBackend.__init__

    def __init__(self: Any) -> None:
        original_init(self)
        self.tags = TagTable(dict, self.tags)

    original_describe = TagBackend.describe_tags

    def describe_tags(self: Any, filters: Any = None) -> Any:
        ids = (filters or {}).get("resource-id") or []
        if armed and any(str(i).startswith("igw-") for i in ids):
            armed.clear()
            state.pause = True
        return original_describe(self, filters)

    original_create_tags = TagResponse.create_tags

    def create_tags(self: Any) -> Any:
        if any(str(r).startswith("vpc-") for r in self._get_param("Resources", [])) and not tagged.is_set():
            paused.wait(RACE_WAIT_SECONDS)
            try:
                return original_create_tags(self)
            finally:
                print("igw-tag-race: CreateTags handled", flush=True)
                tagged.set()
        return original_create_tags(self)

    TagBackend.__init__ = __init__
    TagBackend.describe_tags = describe_tags
    TagResponse.create_tags = create_tags


from tests.emulator import moto_chatbot, moto_observability  # noqa: E402,F401  (issue 13: register their extensions)
