"""Where permission failures are announced: Slack when configured, the log otherwise."""

import os

import dagster as dg


class AlertResource(dg.ConfigurableResource):
    """Slack when SLACK_BOT_TOKEN and BEDROCK_USAGE_SLACK_CHANNEL are set, else the
    sensor's log. The token is read from the environment, never from run config."""

    slack_token: str | None = None
    slack_channel: str | None = None

    def send(self, text: str, log) -> str:
        if self.slack_token and self.slack_channel:
            # Imported when used: every run loads this module, few send to Slack (2 MB).
            from dagster_slack import SlackResource

            SlackResource(token=self.slack_token).get_client().chat_postMessage(
                channel=self.slack_channel, text=text
            )
            return "slack"
        log.warning(text)
        return "log"


def alert_resource() -> AlertResource:
    if os.environ.get("SLACK_BOT_TOKEN") and os.environ.get("BEDROCK_USAGE_SLACK_CHANNEL"):
        return AlertResource(
            slack_token=dg.EnvVar("SLACK_BOT_TOKEN"),
            slack_channel=os.environ["BEDROCK_USAGE_SLACK_CHANNEL"],
        )
    return AlertResource()
