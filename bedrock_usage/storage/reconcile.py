"""The estimate beside the bill: `bedrock_cost_vs_bill` per day, usage account, region,
model and token type, and `bedrock_cost_vs_bill_monthly`.

CloudWatch's tokens and their estimate (`bedrock_cost_daily`, token type by token type)
are joined with the billed tokens and dollars (`bedrock_billed_daily`); a row exists
where either side has one. The bill's usage lines give the billed tokens and unblended
dollars; every line of the day (discounts, credits, refunds too) gives the net dollars,
what is paid. One-hour cache writes join the cache writes, as CloudWatch counts them.
A model the bill names but this version cannot map is `(unmapped) <usage type>`.

`cost_usd` is the one column to sum: the billed net dollars where the bill has the row,
the estimate otherwise, said by `cost_basis` ('billed' or 'estimated').
`probable_cause` names the likeliest reason for a gap.
"""

from __future__ import annotations

RECONCILE_VIEW = """
CREATE OR REPLACE VIEW {prefix}bedrock_cost_vs_bill AS
WITH cloudwatch AS (
    SELECT usage_date, account_id, region, base_model_id AS model_id, token_type,
        sum(tokens)::BIGINT AS cloudwatch_tokens,
        CAST(sum(cost) AS DECIMAL(18,6)) AS estimated_usd,
        bool_or(cost IS NULL AND tokens > 0) AS unpriced
    FROM (
        SELECT usage_date, account_id, region, base_model_id, 'input' AS token_type,
            input_tokens AS tokens, input_cost_usd AS cost FROM bedrock_cost_daily
        UNION ALL
        SELECT usage_date, account_id, region, base_model_id, 'output',
            output_tokens, output_cost_usd FROM bedrock_cost_daily
        UNION ALL
        SELECT usage_date, account_id, region, base_model_id, 'cache_read',
            cache_read_input_tokens, cache_read_cost_usd FROM bedrock_cost_daily
        UNION ALL
        SELECT usage_date, account_id, region, base_model_id, 'cache_write',
            cache_write_input_tokens, cache_write_cost_usd FROM bedrock_cost_daily
    )
    GROUP BY ALL
    HAVING sum(tokens) > 0
),
bill AS (
    SELECT usage_date, account_id, region,
        coalesce(model_id, '(unmapped) ' || usage_type) AS model_id,
        CASE WHEN token_type = 'cache_write_1h' THEN 'cache_write' ELSE token_type END
            AS token_type,
        coalesce(sum(tokens) FILTER (line_item_type = 'Usage'), 0)::BIGINT AS billed_tokens,
        CAST(coalesce(sum(unblended_cost_usd) FILTER (line_item_type = 'Usage'), 0)
            AS DECIMAL(18,6)) AS billed_unblended_usd,
        CAST(sum(net_unblended_cost_usd) AS DECIMAL(18,6)) AS billed_net_usd,
        string_agg(DISTINCT service_tier, ',' ORDER BY service_tier)
            FILTER (service_tier <> 'standard') AS billed_tiers,
        bool_or(line_item_type <> 'Usage') AS adjusted,
        bool_or(model_id IS NULL) AS unmapped
    FROM bedrock_billed_daily
    WHERE token_type IS NOT NULL
    GROUP BY ALL
)
SELECT usage_date, account_id, region, model_id, token_type,
    c.cloudwatch_tokens, c.estimated_usd,
    b.billed_tokens, b.billed_unblended_usd, b.billed_net_usd,
    b.billed_tokens - c.cloudwatch_tokens AS token_difference,
    b.billed_unblended_usd - c.estimated_usd AS usd_difference,
    CASE WHEN c.estimated_usd > 0
        THEN CAST(b.billed_unblended_usd / c.estimated_usd AS DECIMAL(18,6)) END
        AS billed_to_estimated,
    coalesce(b.billed_net_usd, c.estimated_usd) AS cost_usd,
    CASE WHEN b.billed_net_usd IS NOT NULL THEN 'billed' ELSE 'estimated' END AS cost_basis,
    CASE
        WHEN b.model_id IS NULL THEN 'not billed (yet): the bill lags a day, or no billing '
            || 'source covers this account'
        WHEN c.model_id IS NULL AND b.unmapped THEN 'a model this version cannot name: add '
            || 'its name to pricing/price_list_names.json'
        WHEN c.model_id IS NULL THEN 'billed usage CloudWatch did not count: a region or '
            || 'account not connected, or batch'
        WHEN b.billed_tiers IS NOT NULL THEN 'service tier: ' || b.billed_tiers
        WHEN c.unpriced THEN 'missing price: the estimate has none for these tokens'
        WHEN b.billed_tokens <> c.cloudwatch_tokens THEN 'token counts differ: late '
            || 'CloudWatch data (sync again) or usage CloudWatch does not attribute'
        WHEN b.billed_unblended_usd <> c.estimated_usd THEN 'price: the list price differs '
            || 'from the billed rate (a price change, or a stale price: prices refresh)'
        WHEN b.adjusted THEN 'discount or credit'
    END AS probable_cause
FROM cloudwatch c
FULL OUTER JOIN bill b USING (usage_date, account_id, region, model_id, token_type)
"""

MONTHLY_RECONCILE_VIEW = """
CREATE OR REPLACE VIEW {prefix}bedrock_cost_vs_bill_monthly AS
SELECT date_trunc('month', usage_date)::DATE AS month, account_id, model_id, token_type,
    sum(cloudwatch_tokens)::BIGINT AS cloudwatch_tokens,
    CAST(sum(estimated_usd) AS DECIMAL(18,6)) AS estimated_usd,
    sum(billed_tokens)::BIGINT AS billed_tokens,
    CAST(sum(billed_unblended_usd) AS DECIMAL(18,6)) AS billed_unblended_usd,
    CAST(sum(billed_net_usd) AS DECIMAL(18,6)) AS billed_net_usd,
    CAST(sum(cost_usd) AS DECIMAL(18,6)) AS cost_usd
FROM bedrock_cost_vs_bill
GROUP BY ALL
"""

RECONCILE_COMMENTS = {
    "usage_date": "UTC day.",
    "account_id": "The usage account.",
    "region": "The AWS region.",
    "model_id": "The base model id, as bedrock_cost_daily.base_model_id; "
    "'(unmapped) <usage type>' for a billed model this version cannot name.",
    "token_type": "input, output, cache_read or cache_write (one-hour writes included).",
    "cloudwatch_tokens": "Tokens CloudWatch counted (bedrock_usage_daily).",
    "estimated_usd": "The estimate of those tokens (bedrock_cost_daily).",
    "billed_tokens": "Tokens on the bill's usage lines (bedrock_billed_daily).",
    "billed_unblended_usd": "Billed USD of the usage lines, before discounts and credits.",
    "billed_net_usd": "Net billed USD of every line: usage, discounts, credits, refunds.",
    "token_difference": "billed_tokens - cloudwatch_tokens.",
    "usd_difference": "billed_unblended_usd - estimated_usd.",
    "billed_to_estimated": "billed_unblended_usd / estimated_usd.",
    "cost_usd": "The one figure to sum: billed_net_usd where billed, else estimated_usd.",
    "cost_basis": "'billed' or 'estimated': where cost_usd comes from.",
    "probable_cause": "The likeliest reason for a gap, NULL where the two agree.",
    "month": "First day of the UTC month.",
}


def create_bill_views(db, prefix: str = "") -> dict[str, dict[str, str]]:
    """(Re)create the reconciliation views; returns their column comments."""
    db.execute(RECONCILE_VIEW.format(prefix=prefix))
    db.execute(MONTHLY_RECONCILE_VIEW.format(prefix=prefix))
    return {
        "bedrock_cost_vs_bill": RECONCILE_COMMENTS,
        "bedrock_cost_vs_bill_monthly": RECONCILE_COMMENTS,
    }


def bill_gaps(db, periods: list[str], tolerance: float, limit: int = 5) -> list[dict]:
    """The worst gaps of billing periods `periods` (YYYY-MM), each up to its bill's newest
    day (later days are not billed yet): tokens that differ by more than `tolerance` of the
    larger count, or dollars by more than `tolerance` of the estimate (and at least a
    cent), largest dollar gap first."""
    return (
        db.execute(
            """
            WITH period AS (
                SELECT billing_period, max(usage_date) AS newest FROM bedrock_billed_daily
                WHERE billing_period IN (SELECT unnest($periods)) GROUP BY billing_period
            )
            SELECT usage_date::VARCHAR AS usage_date, account_id, region, model_id,
                token_type, cloudwatch_tokens, billed_tokens,
                estimated_usd::VARCHAR AS estimated_usd,
                billed_unblended_usd::VARCHAR AS billed_unblended_usd, probable_cause
            FROM bedrock_cost_vs_bill, period
            WHERE strftime(usage_date, '%Y-%m') = period.billing_period
                AND usage_date <= period.newest
                AND (
                    abs(coalesce(billed_tokens, 0) - coalesce(cloudwatch_tokens, 0))
                        > $tolerance * greatest(coalesce(billed_tokens, 0),
                                                coalesce(cloudwatch_tokens, 0))
                    OR abs(coalesce(billed_unblended_usd, 0) - coalesce(estimated_usd, 0))
                        > greatest(0.01, $tolerance * coalesce(estimated_usd, 0))
                )
            ORDER BY abs(coalesce(billed_unblended_usd, 0) - coalesce(estimated_usd, 0)) DESC,
                usage_date, account_id, region, model_id, token_type
            LIMIT $limit
            """,
            {"periods": periods, "tolerance": tolerance, "limit": limit},
        )
        .df()
        .astype(object)
        .where(lambda frame: frame.notna(), None)
        .to_dict("records")
    )
