"""The Bedrock metrics that carry usage, and how each is read for a UTC day."""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "AWS/Bedrock"
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class UsageMetric:
    metric_name: str
    statistic: str
    column: str


# Counts are summed per day. InvocationLatency is read as Sum and SampleCount so that an
# average over any set of days or models is sum/samples, never an average of averages.
# EstimatedTPMQuotaUsage is a quota estimate with multipliers, not tokens: never read.
USAGE_METRICS: tuple[UsageMetric, ...] = (
    UsageMetric("InputTokenCount", "Sum", "input_tokens"),
    UsageMetric("OutputTokenCount", "Sum", "output_tokens"),
    UsageMetric("Invocations", "Sum", "invocations"),
    UsageMetric("CacheReadInputTokenCount", "Sum", "cache_read_input_tokens"),
    UsageMetric("CacheWriteInputTokenCount", "Sum", "cache_write_input_tokens"),
    UsageMetric("InvocationClientErrors", "Sum", "client_errors"),
    UsageMetric("InvocationServerErrors", "Sum", "server_errors"),
    UsageMetric("InvocationThrottles", "Sum", "throttles"),
    UsageMetric("InvocationLatency", "Sum", "latency_ms_sum"),
    UsageMetric("InvocationLatency", "SampleCount", "latency_samples"),
)
COUNT_COLUMNS = tuple(m.column for m in USAGE_METRICS if m.column != "latency_ms_sum")

# Every request is either counted in Invocations or throttled, so these two reveal
# whether a model had any traffic.
PRESENCE_METRICS: tuple[UsageMetric, ...] = tuple(
    m for m in USAGE_METRICS if m.metric_name in ("Invocations", "InvocationThrottles")
)


@dataclass(frozen=True)
class Series:
    """One CloudWatch series: a metric and statistic for one model, or for the region's
    dimensionless total when model_id is None."""

    metric: UsageMetric
    model_id: str | None

    def query(self, query_id: str, period: int = DAY_SECONDS) -> dict:
        dimensions = [] if self.model_id is None else [{"Name": "ModelId", "Value": self.model_id}]
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": self.metric.metric_name,
                    "Dimensions": dimensions,
                },
                "Period": period,
                "Stat": self.metric.statistic,
            },
            "ReturnData": True,
        }


def series_for(model_ids, metrics=USAGE_METRICS) -> list[Series]:
    return [Series(metric, model_id) for model_id in model_ids for metric in metrics]
