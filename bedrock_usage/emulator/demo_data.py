"""Realistic synthetic Bedrock history for the demo and benchmarks.

Hourly data points with a weekday and hour-of-day rhythm, per model and region, and
the region totals AWS publishes beside them (the dimensionless series). Also the
traps a careless reader falls into: the same usage under an extra dimension and in an
`AWS/Bedrock/*` sub-namespace. Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from .server import Emulator

NAMESPACE = "AWS/Bedrock"
MANTLE_NAMESPACE = "AWS/BedrockMantle"


@dataclass(frozen=True)
class DemoModel:
    model_id: str
    invocations_per_hour: float
    input_tokens_per_call: int
    output_tokens_per_call: int
    latency_ms: float
    caches_prompts: bool = False


DEMO_ACCOUNTS = {
    "111122223333": {
        "us-east-1": (
            DemoModel("us.anthropic.claude-3-5-sonnet-20241022-v2:0", 120, 1800, 420, 2400, True),
            # Claude 3 Haiku has no prompt caching on Bedrock.
            DemoModel("anthropic.claude-3-haiku-20240307-v1:0", 300, 900, 150, 700),
            DemoModel("amazon.titan-embed-text-v2:0", 900, 350, 0, 90),
            DemoModel(
                "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/k3x9p2m1q8ab",
                60,
                2200,
                600,
                1900,
            ),
            # An application inference profile (DEMO_PROFILES): CloudWatch names its id.
            DemoModel("s3archa551st", 150, 1100, 220, 800),
        ),
        "eu-west-1": (
            DemoModel("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", 80, 2100, 500, 2900, True),
            DemoModel("eu.amazon.nova-pro-v1:0", 150, 1200, 300, 1100),
        ),
    },
    "444455556666": {
        "us-west-2": (
            DemoModel("us.meta.llama3-3-70b-instruct-v1:0", 200, 700, 260, 1300),
            DemoModel("amazon.nova-lite-v1:0", 400, 600, 180, 450),
        ),
        "us-east-1": (
            DemoModel("us.anthropic.claude-3-5-sonnet-20241022-v2:0", 40, 1600, 380, 2300, True),
        ),
    },
}


# One model, one day, 25 times its usual traffic (account, region, model, days before
# today, factor): the spend anomaly the demo's alerts find.
DEMO_SPIKE = ("444455556666", "us-east-1", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", 2, 25)


@dataclass(frozen=True)
class DemoProfile:
    """An application inference profile: its id (as CloudWatch reports it), name, the
    model it routes to in its region, and the tags its team gave it."""

    profile_id: str
    name: str
    model_id: str
    tags: dict


DEMO_PROFILES = {
    "111122223333": {
        "us-east-1": (
            DemoProfile("s3archa551st", "search-assistant",
                        "anthropic.claude-3-haiku-20240307-v1:0",
                        {"team": "search", "application": "assistant", "cost-center": "cc-1001"}),
        ),
    },
}  # fmt: skip


@dataclass(frozen=True)
class DemoMantleApp:
    """An application calling the bedrock-mantle endpoint in a project."""

    project_id: str
    model_id: str
    inferences_per_hour: float
    input_tokens_per_call: int
    output_tokens_per_call: int


DEMO_MANTLE_APPS = {
    "444455556666": {
        "us-west-2": (
            DemoMantleApp("proj_support_bot", "openai.gpt-oss-120b", 90, 1400, 350),
            DemoMantleApp("proj_batch_summaries", "openai.gpt-oss-120b", 30, 5200, 600),
        ),
    },
}


def _hourly_rhythm(hours: np.ndarray) -> np.ndarray:
    """Busier on weekdays and during the working day (UTC)."""
    moments = hours.astype("datetime64[h]")
    hour_of_day = (moments.astype(np.int64) % 24).astype(float)
    weekday = ((moments.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(int)
    daytime = 0.35 + 0.65 * np.exp(-(((hour_of_day - 14.0) / 4.5) ** 2))
    workday = np.where(weekday < 5, 1.0, 0.3)
    return daytime * workday


def seed_demo_history(
    aws: Emulator,
    days: int = 90,
    seed: int = 7,
    accounts: dict[str, dict[str, Iterable[DemoModel]]] | None = None,
    today: date | None = None,
) -> int:
    """Seed `days` days of hourly history up to the current hour; return data points."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    today = today or now.date()
    first = datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=UTC)
    hours = np.arange(int(first.timestamp()) // 3600, int(now.timestamp()) // 3600, dtype=np.int64)
    timestamps = hours * 3600 + 1800
    rhythm = _hourly_rhythm(hours)
    points = 0
    for account_id, regions in (accounts or DEMO_ACCOUNTS).items():
        for region, models in regions.items():
            totals: dict[str, np.ndarray] = {}
            for model in models:
                series = _model_series(model, rhythm, rng)
                if accounts is None and (account_id, region, model.model_id) == DEMO_SPIKE[:3]:
                    _spike(series, hours, today - timedelta(days=DEMO_SPIKE[3]), DEMO_SPIKE[4])
                for metric, values in series.items():
                    if metric == "InvocationLatency":
                        continue
                    aws.seed(
                        account_id,
                        region,
                        NAMESPACE,
                        metric,
                        {"ModelId": model.model_id},
                        timestamps,
                        values,
                    )
                    totals[metric] = totals.get(metric, 0) + values
                    points += len(values)
                latency, samples = series["InvocationLatency"], series["Invocations"]
                busy = samples > 0
                aws.seed(
                    account_id,
                    region,
                    NAMESPACE,
                    "InvocationLatency",
                    {"ModelId": model.model_id},
                    timestamps[busy],
                    latency[busy],
                    counts=samples[busy],
                )
                totals["InvocationLatency"] = totals.get("InvocationLatency", 0) + latency
                # The trap: the same calls again under another dimension set and namespace.
                aws.seed(
                    account_id,
                    region,
                    NAMESPACE,
                    "Invocations",
                    {"ModelId": model.model_id, "Operation": "InvokeModel"},
                    timestamps,
                    series["Invocations"],
                )
                aws.seed(
                    account_id,
                    region,
                    "AWS/Bedrock/Guardrails",
                    "Invocations",
                    {"ModelId": model.model_id},
                    timestamps,
                    series["Invocations"],
                )
            for metric, values in totals.items():
                if metric == "InvocationLatency":
                    busy = totals["Invocations"] > 0
                    aws.seed(
                        account_id,
                        region,
                        NAMESPACE,
                        metric,
                        None,
                        timestamps[busy],
                        values[busy],
                        counts=totals["Invocations"][busy],
                    )
                else:
                    aws.seed(account_id, region, NAMESPACE, metric, None, timestamps, values)
                points += len(values)
    for account_id, regions in (DEMO_PROFILES if accounts is None else {}).items():
        for region, profiles in regions.items():
            for profile in profiles:
                arn = f"arn:aws:bedrock:{region}::foundation-model/{profile.model_id}"
                aws.create_application_profile(
                    account_id, region, profile.name, [arn], profile.tags, profile.profile_id
                )
    for account_id, regions in (DEMO_MANTLE_APPS if accounts is None else {}).items():
        for region, apps in regions.items():
            points += _seed_mantle(aws, account_id, region, apps, timestamps, rhythm, rng)
    return points


def _seed_mantle(aws, account_id, region, apps, timestamps, rhythm, rng) -> int:
    """An application on the OpenAI-compatible endpoint: AWS/BedrockMantle at its four
    levels (Project+Model, Model, Project, Account), each repeating the same usage."""
    levels: dict[tuple, dict[str, np.ndarray]] = {}
    for app in apps:
        inferences = rng.poisson(app.inferences_per_hour * rhythm).astype(float)
        tokens = {
            "in": np.round(inferences * app.input_tokens_per_call * rng.uniform(0.8, 1.2)),
            "out": np.round(inferences * app.output_tokens_per_call * rng.uniform(0.7, 1.3)),
        }
        pair = (("Project", app.project_id), ("Model", app.model_id))
        for metric, values in (
            ("InputTokens", tokens["in"]),
            ("OutputTokens", tokens["out"]),
            ("Inferences", inferences),
        ):
            aws.seed(account_id, region, MANTLE_NAMESPACE, metric, dict(pair), timestamps, values)
        for key in ((pair[1],), (pair[0],), ()):
            level = levels.setdefault(key, {})
            for metric, values in (
                ("TotalInputTokens", tokens["in"]),
                ("TotalOutputTokens", tokens["out"]),
                ("Inferences", inferences),
            ):
                level[metric] = level.get(metric, 0) + values
    for key, metrics in levels.items():
        for metric, values in metrics.items():
            aws.seed(account_id, region, MANTLE_NAMESPACE, metric, dict(key), timestamps, values)
    return len(timestamps) * (3 * len(apps) + 3 * len(levels))


def _spike(series: dict[str, np.ndarray], hours: np.ndarray, day: date, factor: float) -> None:
    """One day of a model `factor` times as busy (a batch job gone wrong)."""
    start = int(datetime.combine(day, time(0), tzinfo=UTC).timestamp()) // 3600
    on_day = (hours >= start) & (hours < start + 24)
    for values in series.values():
        values[on_day] = np.round(values[on_day] * factor)


def _model_series(model: DemoModel, rhythm: np.ndarray, rng) -> dict[str, np.ndarray]:
    invocations = rng.poisson(model.invocations_per_hour * rhythm).astype(float)
    throttles = rng.binomial(invocations.astype(np.int64), 0.01).astype(float)
    client_errors = rng.binomial(invocations.astype(np.int64), 0.004).astype(float)
    server_errors = rng.binomial(invocations.astype(np.int64), 0.001).astype(float)
    input_tokens = np.round(
        invocations * model.input_tokens_per_call * rng.uniform(0.8, 1.2, len(rhythm))
    )
    output_tokens = np.round(
        invocations * model.output_tokens_per_call * rng.uniform(0.7, 1.3, len(rhythm))
    )
    series = {
        "Invocations": invocations,
        "InputTokenCount": input_tokens,
        "OutputTokenCount": output_tokens,
        "InvocationThrottles": throttles,
        "InvocationClientErrors": client_errors,
        "InvocationServerErrors": server_errors,
        "InvocationLatency": np.round(
            invocations * model.latency_ms * rng.uniform(0.9, 1.1, len(rhythm))
        ),
    }
    if model.caches_prompts:
        series["CacheReadInputTokenCount"] = np.round(input_tokens * 0.6)
        series["CacheWriteInputTokenCount"] = np.round(input_tokens * 0.05)
    return series
