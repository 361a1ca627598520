"""The Bedrock metrics that carry usage, and how each is read for a UTC day.

Two endpoints, two namespaces: the runtime endpoint (Converse, InvokeModel) publishes
to `AWS/Bedrock` with the dimension `ModelId`; the OpenAI-compatible bedrock-mantle
endpoint (Responses, Chat Completions, Anthropic Messages) publishes only to
`AWS/BedrockMantle`, at four levels: Account (no dimension), Project, Model and
Project+Model. Each level repeats the same usage, so per-model usage comes from the
Model level alone and the Account level is that endpoint's region total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_SECONDS = 86_400
# How the data points are stored: the region total's model_id, and the project_id of
# every series that has no Project dimension.
TOTAL = "(region total)"
NO_PROJECT = ""


@dataclass(frozen=True)
class Endpoint:
    name: str  # the value of bedrock_usage_daily.api_endpoint
    namespace: str
    model_dimension: str


RUNTIME = Endpoint("bedrock-runtime", "AWS/Bedrock", "ModelId")
MANTLE = Endpoint("bedrock-mantle", "AWS/BedrockMantle", "Model")
ENDPOINTS = (RUNTIME, MANTLE)
NAMESPACE = RUNTIME.namespace
PROJECT_DIMENSION = "Project"


@dataclass(frozen=True)
class UsageMetric:
    metric_name: str
    statistic: str
    column: str
    endpoint: Endpoint = RUNTIME


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

# AWS/BedrockMantle at the Account and Model levels. TotalInputTokens/TotalOutputTokens
# are the aggregate billable tokens; no latency, cache, throttle or server-error metric
# is published there.
MANTLE_METRICS: tuple[UsageMetric, ...] = (
    UsageMetric("TotalInputTokens", "Sum", "input_tokens", MANTLE),
    UsageMetric("TotalOutputTokens", "Sum", "output_tokens", MANTLE),
    UsageMetric("Inferences", "Sum", "invocations", MANTLE),
    UsageMetric("InferenceClientErrors", "Sum", "client_errors", MANTLE),
)
# The Project+Model level, for attribution by project only: it has no TotalInputTokens;
# the Sum of its per-inference InputTokens/OutputTokens is that project-model's total.
# Never added to bedrock_usage_daily (the Model level already counts the same usage).
PROJECT_METRICS: tuple[UsageMetric, ...] = (
    UsageMetric("InputTokens", "Sum", "input_tokens", MANTLE),
    UsageMetric("OutputTokens", "Sum", "output_tokens", MANTLE),
    UsageMetric("Inferences", "Sum", "inferences", MANTLE),
    UsageMetric("InferenceClientErrors", "Sum", "client_errors", MANTLE),
)
MANTLE_METRIC_NAMES = frozenset(m.metric_name for m in MANTLE_METRICS + PROJECT_METRICS)

# Every request is either counted in Invocations or throttled, so these two reveal
# whether a runtime model had any traffic; Inferences does so for the mantle endpoint.
PRESENCE_METRICS: tuple[UsageMetric, ...] = tuple(
    m for m in USAGE_METRICS if m.metric_name in ("Invocations", "InvocationThrottles")
)
MANTLE_PRESENCE_METRICS: tuple[UsageMetric, ...] = tuple(
    m for m in MANTLE_METRICS if m.metric_name == "Inferences"
)


@dataclass
class KnownSeries:
    """Model ids (and mantle project-model pairs) of one region: listed by ListMetrics,
    or stored by an earlier sync (which ListMetrics' two weeks may no longer show)."""

    runtime: set[str] = field(default_factory=set)
    mantle: set[str] = field(default_factory=set)
    projects: set[tuple[str, str]] = field(default_factory=set)

    def __or__(self, other: KnownSeries) -> KnownSeries:
        return KnownSeries(
            self.runtime | other.runtime, self.mantle | other.mantle, self.projects | other.projects
        )


@dataclass(frozen=True)
class Series:
    """One CloudWatch series: a metric and statistic for one model (and, on the mantle
    endpoint, one project), or for the endpoint's dimensionless region total when
    model_id is None."""

    metric: UsageMetric
    model_id: str | None
    project_id: str | None = None

    def query(self, query_id: str, period: int = DAY_SECONDS) -> dict:
        endpoint = self.metric.endpoint
        dimensions = []
        if self.project_id is not None:
            dimensions.append({"Name": PROJECT_DIMENSION, "Value": self.project_id})
        if self.model_id is not None:
            dimensions.append({"Name": endpoint.model_dimension, "Value": self.model_id})
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": endpoint.namespace,
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


def project_series_for(pairs) -> list[Series]:
    """Project+Model series for (project_id, model_id) pairs."""
    return [
        Series(metric, model, project) for project, model in pairs for metric in PROJECT_METRICS
    ]
