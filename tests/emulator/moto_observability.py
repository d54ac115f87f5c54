"""Extensions of moto 5.2.5 for demand scaling and observability (docs/observability.md).

Same contract as moto_extensions.py, which registers this module: each
extension's docstring names the AWS call stock moto 5.2.5 lacks, or the
fidelity gap that makes Terraform fail or its second plan not empty. They only
make the emulator answer the way AWS answers.
"""
from __future__ import annotations

from typing import Any

from tests.emulator.moto_extensions import _add_action, extension


@extension
def logs_query_definitions() -> None:
    """CloudWatch Logs PutQueryDefinition, DescribeQueryDefinitions and
    DeleteQueryDefinition are not implemented in moto 5.2.5 (HTTP 500). Needed by
    aws_cloudwatch_query_definition (the saved Logs Insights queries). Put with a
    queryDefinitionId updates that definition, as in AWS; describe filters by
    name prefix, as the provider reads one back by name and id.
    """
    import json
    import time
    import uuid

    from moto.logs.exceptions import ResourceNotFoundException
    from moto.logs.responses import LogsResponse

    def _store(backend: Any) -> dict:
        if not hasattr(backend, "query_definitions"):
            backend.query_definitions = {}  # id -> definition
        return backend.query_definitions

    def put_query_definition(self: Any) -> str:
        store = _store(self.logs_backend)
        qid = self._get_param("queryDefinitionId") or str(uuid.uuid4())
        if self._get_param("queryDefinitionId") and qid not in store:
            raise ResourceNotFoundException(f"Query definition {qid} does not exist.")
        store[qid] = {
            "queryDefinitionId": qid,
            "name": self._get_param("name"),
            "queryString": self._get_param("queryString"),
            "logGroupNames": self._get_param("logGroupNames") or [],
            "queryLanguage": self._get_param("queryLanguage") or "CWLI",
            "lastModified": int(time.time() * 1000),
        }
        return json.dumps({"queryDefinitionId": qid})

    def describe_query_definitions(self: Any) -> str:
        prefix = self._get_param("queryDefinitionNamePrefix") or ""
        found = [d for d in _store(self.logs_backend).values() if d["name"].startswith(prefix)]
        return json.dumps({"queryDefinitions": sorted(found, key=lambda d: d["name"])})

    def delete_query_definition(self: Any) -> str:
        qid = self._get_param("queryDefinitionId")
        if _store(self.logs_backend).pop(qid, None) is None:
            raise ResourceNotFoundException(f"Query definition {qid} does not exist.")
        return json.dumps({"success": True})

    for fn in (put_query_definition, describe_query_definitions, delete_query_definition):
        _add_action(LogsResponse, fn.__name__, fn)


@extension
def autoscaling_policy_read_back() -> None:
    """moto 5.2.5 DescribePolicies differs from AWS in two ways that make the
    second plan of aws_autoscaling_policy not empty: it never returns a policy's
    Enabled flag (PutScalingPolicy ignores it; the provider reads enabled =
    false), and it returns an empty PredictiveScalingConfiguration for every
    policy (the provider reads a predictive_scaling_configuration block on a
    target-tracking policy). AWS policies are enabled unless Enabled=false was
    put, and only predictive policies carry that configuration.
    """
    from moto.autoscaling.responses import AutoScalingResponse

    original_put = AutoScalingResponse.put_scaling_policy

    def put_scaling_policy(self: Any) -> Any:
        result = original_put(self)
        enabled = self._get_param("Enabled")
        policy = self.autoscaling_backend.policies[self._get_param("PolicyName")]
        policy.enabled = enabled is None or str(enabled).lower() == "true"
        if policy.policy_type != "PredictiveScaling":
            policy.predictive_scaling_configuration = None
        return result

    AutoScalingResponse.put_scaling_policy = put_scaling_policy


@extension
def elasticache_modify_log_delivery() -> None:
    """moto 5.2.5 ModifyReplicationGroup ignores LogDeliveryConfigurations, so
    changing a replication group's log delivery (the Redis slow log, e.g. an
    adopted group's text format to our json) is lost and the second plan wants
    it again. As in AWS: an entry replaces the configuration of its log type;
    one with Enabled=false removes it.
    """
    from moto.elasticache.responses import ElastiCacheResponse

    original = ElastiCacheResponse.modify_replication_group

    def modify_replication_group(self: Any) -> Any:
        wanted = self._get_param("LogDeliveryConfigurations")
        if wanted:
            group = self.elasticache_backend.replication_groups.get(self._get_param("ReplicationGroupId"))
            if group is not None:
                by_type = {c["LogType"]: c for c in group.log_delivery_configurations}
                for request in wanted:
                    if str(request.get("Enabled", True)).lower() == "false":
                        by_type.pop(request["LogType"], None)
                    else:
                        by_type[request["LogType"]] = {
                            **{k: v for k, v in request.items() if k != "Enabled"},
                            "Status": "active", "Message": "Log delivery configuration is active.",
                        }
                group.log_delivery_configurations = list(by_type.values())
        return original(self)

    ElastiCacheResponse.modify_replication_group = modify_replication_group
