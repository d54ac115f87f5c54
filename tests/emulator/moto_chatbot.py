"""AWS Chatbot for the emulator: moto 5.2.5 has no Chatbot service at all.

Registered by moto_extensions.py, like its own extensions. Gap: every Chatbot
call (signing name ``chatbot``) gets "Unable to find appropriate backend" and
an error, so aws_chatbot_slack_channel_configuration and
aws_chatbot_teams_channel_configuration (the optional chat alerts,
docs/observability.md) cannot be created. This adds a small Chatbot service to
moto's server: create, describe/get/list, update and delete of Slack and
Microsoft Teams channel configurations, and their tags, answering in the shapes
of botocore's Chatbot model. Configurations are global to the account, as in
AWS (their ARNs carry no region). Nothing is sent to any chat.
"""
from __future__ import annotations

from tests.emulator.moto_extensions import extension

CHATBOT_REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-southeast-1"]


@extension
def chatbot_service() -> None:
    """AWS Chatbot (all of it) is not in moto 5.2.5; see the module docstring."""
    import json
    import re
    import sys
    import types

    from moto import backend_index
    from moto.core.base_backend import BackendDict, BaseBackend
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import BaseResponse

    class NotFound(JsonRESTError):
        code = 404

        def __init__(self, arn: str):
            super().__init__("ResourceNotFoundException", f"Chat configuration {arn} does not exist.")

    class Conflict(JsonRESTError):
        code = 409

        def __init__(self, name: str):
            super().__init__("ConflictException", f"A configuration named {name} already exists.")

    class ChatbotBackend(BaseBackend):
        def __init__(self, region_name: str, account_id: str):
            super().__init__(region_name, account_id)
            self.configurations: dict[str, dict] = {}  # ARN -> configuration (with "Tags")

    ChatbotBackend.__module__ = "moto.chatbot.models"  # moto finds the URL module beside it
    backends = BackendDict(ChatbotBackend, "chatbot", use_boto3_regions=False, additional_regions=CHATBOT_REGIONS)

    SHARED = ("IamRoleArn", "SnsTopicArns", "LoggingLevel", "GuardrailPolicyArns", "UserAuthorizationRequired")
    SLACK = ("SlackChannelId", "SlackChannelName")
    TEAMS = ("ChannelId", "ChannelName")

    class ChatbotResponse(BaseResponse):
        def __init__(self) -> None:
            super().__init__(service_name="chatbot")

        @property
        def store(self) -> dict[str, dict]:
            return backends[self.current_account]["us-east-1"].configurations  # global, like the ARNs

        def _body(self) -> dict:
            return json.loads(self.body or "{}")

        def _create(self, kind: str, fields: tuple[str, ...], extra: dict) -> dict:
            body = self._body()
            name = body["ConfigurationName"]
            arn = f"arn:aws:chatbot::{self.current_account}:chat-configuration/{kind}/{name}"
            if arn in self.store:
                raise Conflict(name)
            config = {
                "ChatConfigurationArn": arn, "ConfigurationName": name, "State": "ENABLED",
                "SnsTopicArns": [], "LoggingLevel": "NONE", "UserAuthorizationRequired": False,
                **extra,
                **{k: body[k] for k in (*SHARED, *fields) if k in body},
                "Tags": body.get("Tags", []),
            }
            self.store[arn] = config
            return config

        def _get(self, arn: str) -> dict:
            if arn not in self.store:
                raise NotFound(arn)
            return self.store[arn]

        def _update(self, fields: tuple[str, ...]) -> dict:
            body = self._body()
            config = self._get(body["ChatConfigurationArn"])
            config.update({k: body[k] for k in (*SHARED, *fields) if k in body})
            return config

        def _delete(self) -> str:
            arn = self._body()["ChatConfigurationArn"]
            self._get(arn)
            del self.store[arn]
            return "{}"

        # --- Slack ---------------------------------------------------------------
        def create_slack_channel_configuration(self) -> str:
            body = self._body()
            config = self._create("slack-channel", ("SlackTeamId", *SLACK), {
                "SlackTeamId": body.get("SlackTeamId"), "SlackTeamName": "emulator-workspace",
                "SlackChannelName": body.get("SlackChannelName") or body.get("SlackChannelId"),
            })
            return json.dumps({"ChannelConfiguration": config})

        def describe_slack_channel_configurations(self) -> str:
            arn = self._body().get("ChatConfigurationArn")
            found = [c for a, c in self.store.items()
                     if "/slack-channel/" in a and (arn is None or a == arn)]
            return json.dumps({"SlackChannelConfigurations": found})

        def update_slack_channel_configuration(self) -> str:
            return json.dumps({"ChannelConfiguration": self._update(SLACK)})

        def delete_slack_channel_configuration(self) -> str:
            return self._delete()

        # --- Microsoft Teams -------------------------------------------------------
        def create_microsoft_teams_channel_configuration(self) -> str:
            body = self._body()
            config = self._create("microsoft-teams-channel", ("TeamId", "TenantId", "TeamName", *TEAMS), {
                "TeamId": body.get("TeamId"), "TenantId": body.get("TenantId"),
                "TeamName": body.get("TeamName") or "emulator-team",
                "ChannelName": body.get("ChannelName") or body.get("ChannelId"),
            })
            return json.dumps({"ChannelConfiguration": config})

        def get_microsoft_teams_channel_configuration(self) -> str:
            return json.dumps({"ChannelConfiguration": self._get(self._body()["ChatConfigurationArn"])})

        def list_microsoft_teams_channel_configurations(self) -> str:
            team = self._body().get("TeamId")
            found = [c for a, c in self.store.items()
                     if "/microsoft-teams-channel/" in a and (team is None or c.get("TeamId") == team)]
            return json.dumps({"TeamChannelConfigurations": found})

        def update_microsoft_teams_channel_configuration(self) -> str:
            return json.dumps({"ChannelConfiguration": self._update(TEAMS)})

        def delete_microsoft_teams_channel_configuration(self) -> str:
            return self._delete()

        # --- tags --------------------------------------------------------------------
        def list_tags_for_resource(self) -> str:
            return json.dumps({"Tags": self._get(self._body()["ResourceARN"])["Tags"]})

        def tag_resource(self) -> str:
            body = self._body()
            config = self._get(body["ResourceARN"])
            new = {t["TagKey"]: t["TagValue"] for t in body.get("Tags", [])}
            config["Tags"] = [t for t in config["Tags"] if t["TagKey"] not in new] + [
                {"TagKey": k, "TagValue": v} for k, v in new.items()]
            return "{}"

        def untag_resource(self) -> str:
            body = self._body()
            config = self._get(body["ResourceARN"])
            config["Tags"] = [t for t in config["Tags"] if t["TagKey"] not in set(body.get("TagKeys", []))]
            return "{}"

    url_base = r"https?://chatbot\.(.+)\.amazonaws\.com"
    urls = types.ModuleType("moto.chatbot.urls")
    urls.url_bases = [url_base]
    urls.url_paths = {"{0}/(?P<operation>[a-z-]+)$": ChatbotResponse.dispatch}
    models = types.ModuleType("moto.chatbot.models")
    models.ChatbotBackend = ChatbotBackend
    models.chatbot_backends = backends
    package = types.ModuleType("moto.chatbot")
    package.__path__ = []
    package.chatbot_backends = backends
    package.models, package.urls = models, urls
    sys.modules.update({"moto.chatbot": package, "moto.chatbot.models": models, "moto.chatbot.urls": urls})
    backend_index.backend_url_patterns.append(("chatbot", re.compile(url_base)))
