"""Shaping: exact integers, the unattributed row, no double count, no negative row."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from bedrock_usage.shaping.daily import USAGE_COLUMNS, shape_daily_usage
from bedrock_usage.shaping.model_ids import UNATTRIBUTED

DAY = date(2026, 11, 20)
SYNCED = datetime(2026, 11, 21, 1, 0)


def _points(*rows):
    return pd.DataFrame(
        rows, columns=["usage_date", "model_id", "metric_name", "statistic", "value"]
    )


def _shape(points):
    return shape_daily_usage(points, "acme", "111122223333", "us-east-1", SYNCED)


def test_the_total_above_the_models_becomes_one_unattributed_row():
    usage = _shape(
        _points(
            (DAY, "a.model-v1", "InputTokenCount", "Sum", 100.0),
            (DAY, "b.model-v1", "InputTokenCount", "Sum", 50.0),
            (DAY, None, "InputTokenCount", "Sum", 175.0),
            (DAY, "a.model-v1", "Invocations", "Sum", 4.0),
            (DAY, None, "Invocations", "Sum", 4.0),
        )
    )
    assert list(usage.columns) == USAGE_COLUMNS
    assert usage.input_tokens.sum() == 175
    assert usage.invocations.sum() == 4
    unattributed = usage[usage.model_id == UNATTRIBUTED].iloc[0]
    assert unattributed.input_tokens == 25 and unattributed.invocations == 0
    assert unattributed.inference_scope == "unattributed"


def test_a_total_below_the_models_writes_no_negative_row():
    usage = _shape(
        _points(
            (DAY, "a.model-v1", "InputTokenCount", "Sum", 100.0),
            (DAY, None, "InputTokenCount", "Sum", 90.0),
        )
    )
    assert list(usage.model_id) == ["a.model-v1"]
    assert (usage.select_dtypes("number") >= 0).all().all()


def test_counts_up_to_10_to_the_15_stay_exact():
    big = 999_999_999_999_999
    usage = _shape(
        _points(
            (DAY, "a.model-v1", "OutputTokenCount", "Sum", float(big)),
            (DAY, "b.model-v1", "OutputTokenCount", "Sum", float(big - 1)),
            (DAY, None, "OutputTokenCount", "Sum", float(2 * big)),
        )
    )
    assert usage.output_tokens.dtype == "int64"
    assert usage.set_index("model_id").output_tokens.to_dict() == {
        "a.model-v1": big,
        "b.model-v1": big - 1,
        UNATTRIBUTED: 1,
    }


def test_latency_is_kept_as_sum_and_samples():
    usage = _shape(
        _points(
            (DAY, "a.model-v1", "InvocationLatency", "Sum", 1500.0),
            (DAY, "a.model-v1", "InvocationLatency", "SampleCount", 3.0),
        )
    )
    row = usage.iloc[0]
    assert row.latency_ms_sum == 1500.0 and row.latency_samples == 3


def test_no_points_give_no_rows():
    assert _shape(_points()).empty


def test_a_fractional_value_is_rounded_once_half_to_even():
    usage = _shape(
        _points(
            (DAY, "a.model-v1", "InputTokenCount", "Sum", 2.5),
            (DAY, "b.model-v1", "InputTokenCount", "Sum", 3.5),
            (DAY, None, "InputTokenCount", "Sum", 7.5),
        )
    )
    assert usage.set_index("model_id").input_tokens.to_dict() == {
        "a.model-v1": 2,
        "b.model-v1": 4,
        UNATTRIBUTED: 2,  # 8 - (2 + 4)
    }
