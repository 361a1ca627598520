"""Who spent it: the ownership map, and the views analysts group by owner.

An owner is a team, an application and a cost center (any may be missing). They come
from two places:

- **The map** the platform owner keeps (`bedrock-usage owners set|unset|list|import`):
  rules in `bedrock_owner_rules`, each matching usage by any of account, connection,
  region, model, application inference profile, mantle project and IAM principal (the
  principal only on the bill, which names it). A rule has effective dates: setting an
  owner for what already has one closes the old rule the day the new one starts, so a
  change does not rewrite the past unless asked (`--from` an earlier day).
- **Tags**: an application inference profile's tags (read by the sync) and, on the
  bill, the calling IAM principal's tags, under the keys in `bedrock_owner_tag_keys`
  (default `team`, `application`, `cost-center`; CUR 2.0 names a principal's tag
  `iamPrincipal/<key>` or, as a cost-allocation tag, `user_<key>`).

**Precedence: the most specific wins.** Each source has the rank of the most specific
thing it names: principal 7, profile 6, project 5, model 4, region 3, connection 2,
account 1 (a profile's tags rank 6, a principal's 7). The highest rank wins; at equal
rank the map beats tags, then the rule naming more things, then the newest rule. The
winner gives all three attributes; usage no source covers is `(unassigned)`, never
dropped.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path

import duckdb

from .columns import USAGE_COLUMN_DOCS

OWNER_RULES_TABLE = "bedrock_owner_rules"
TAG_KEYS_TABLE = "bedrock_owner_tag_keys"
UNASSIGNED = "(unassigned)"
# What a rule may name, most specific last; its rank is its position + 1.
CRITERIA = (
    "account_id", "connection_id", "region", "model_id", "profile", "project_id",
    "principal",
)  # fmt: skip
ATTRIBUTES = ("team", "application", "cost_center")
RANK = {criterion: rank for rank, criterion in enumerate(CRITERIA, start=1)}


@dataclass(frozen=True)
class Owner:
    team: str | None = None
    application: str | None = None
    cost_center: str | None = None


@dataclass(frozen=True)
class Match:
    """What a rule names; None matches anything."""

    account_id: str | None = None
    connection_id: str | None = None
    region: str | None = None
    model_id: str | None = None
    profile: str | None = None  # an application inference profile's id, ARN or name
    project_id: str | None = None
    principal: str | None = None  # an IAM principal's ARN, as the bill names it

    def named(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


class OwnerRuleError(ValueError):
    """A rule that cannot be stored: the message says why and what to do."""


def set_rule(
    db: duckdb.DuckDBPyConnection,
    match: Match,
    owner: Owner,
    effective_from: date | None,
    today: date,
) -> date:
    """Give what `match` names to `owner` from `effective_from`: by default from the start
    when nothing with the same match had an owner, else from `today`. An open rule of the
    same match ends that day (a rule starting on or after it is replaced). Run inside a
    transaction. Returns the day it takes effect."""
    if not match.named():
        raise OwnerRuleError(
            "A rule must name what it covers: --account, --connection, --region, --model, "
            "--profile, --project or --principal."
        )
    if not any(getattr(owner, a) for a in ATTRIBUTES):
        raise OwnerRuleError("A rule must give --team, --application or --cost-center.")
    same = _same_match(match)
    previous = db.execute(
        f"SELECT count(*) FROM {OWNER_RULES_TABLE} WHERE {same}", _values(match)
    ).fetchone()[0]
    start = effective_from or (today if previous else date(1970, 1, 1))
    _end_rules(db, match, start)
    db.execute(
        f"INSERT INTO {OWNER_RULES_TABLE} (rule_id, {', '.join(CRITERIA)}, "
        f"{', '.join(ATTRIBUTES)}, effective_from, effective_to, created_at) "
        f"VALUES ({', '.join('?' * (len(CRITERIA) + len(ATTRIBUTES) + 4))})",
        [
            uuid.uuid4().hex[:12],
            *(getattr(match, c) for c in CRITERIA),
            *(getattr(owner, a) for a in ATTRIBUTES),
            start,
            None,
            datetime.now().replace(microsecond=0),
        ],
    )
    return start


def unset_rule(
    db: duckdb.DuckDBPyConnection, match: Match, effective_from: date | None, today: date
) -> int:
    """End the rules of exactly this match from `effective_from` (default today); the
    days before keep their owner. Returns the rules ended or removed."""
    changed = _end_rules(db, match, effective_from or today)
    if not changed:
        raise OwnerRuleError(
            f"No rule in force names exactly {_describe(match)}: 'bedrock-usage owners list' "
            "shows the rules."
        )
    return changed


def _end_rules(db: duckdb.DuckDBPyConnection, match: Match, start: date) -> int:
    """Remove the rules of this match starting on or after `start`, end the one in force
    then; returns how many changed. (Counted first: DuckLake has no RETURNING.)"""
    same = _same_match(match)
    values = _values(match)
    removing = f"{same} AND effective_from >= ?"
    ending = f"{same} AND effective_from < ? AND (effective_to IS NULL OR effective_to > ?)"
    changed = db.execute(
        f"SELECT count(*) FROM {OWNER_RULES_TABLE} WHERE ({removing}) OR ({ending})",
        [*values, start, *values, start, start],
    ).fetchone()[0]
    db.execute(f"DELETE FROM {OWNER_RULES_TABLE} WHERE {removing}", [*values, start])
    db.execute(
        f"UPDATE {OWNER_RULES_TABLE} SET effective_to = ? WHERE {ending}",
        [start, *values, start, start],
    )
    return changed


def _same_match(match: Match) -> str:
    return " AND ".join(f"{c} IS NOT DISTINCT FROM ?" for c in CRITERIA)


def _values(match: Match) -> list[str | None]:
    return [getattr(match, c) for c in CRITERIA]


def _describe(match: Match) -> str:
    return ", ".join(f"{k}={v}" for k, v in match.named().items()) or "nothing"


def list_rules(db: duckdb.DuckDBPyConnection) -> list[dict]:
    cursor = db.execute(
        f"SELECT rule_id, {', '.join(CRITERIA)}, {', '.join(ATTRIBUTES)}, effective_from, "
        f"effective_to, created_at FROM {OWNER_RULES_TABLE} "
        f"ORDER BY {', '.join(f'{c} NULLS FIRST' for c in CRITERIA)}, effective_from"
    )
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


IMPORT_COLUMNS = (*ATTRIBUTES, *CRITERIA, "effective_from")


def read_rules_csv(path: Path) -> list[tuple[Match, Owner, date | None]]:
    """Rules from a CSV file with a header naming some of IMPORT_COLUMNS (empty cells
    match anything). Every row is checked before any is stored."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        unknown = set(reader.fieldnames or ()) - set(IMPORT_COLUMNS)
        if unknown:
            raise OwnerRuleError(
                f"{path}: unknown column(s) {', '.join(sorted(unknown))}; the columns are "
                f"{', '.join(IMPORT_COLUMNS)}. Nothing was imported."
            )
        rules = []
        for line, row in enumerate(reader, start=2):
            values = {k: (v or "").strip() or None for k, v in row.items()}
            try:
                start = (
                    date.fromisoformat(values["effective_from"])
                    if values.get("effective_from")
                    else None
                )
            except ValueError:
                raise OwnerRuleError(
                    f"{path}:{line}: effective_from {values['effective_from']!r} is not a "
                    "date (YYYY-MM-DD). Nothing was imported."
                ) from None
            match = Match(**{c: values.get(c) for c in CRITERIA})
            owner = Owner(**{a: values.get(a) for a in ATTRIBUTES})
            if not match.named() or not any(getattr(owner, a) for a in ATTRIBUTES):
                raise OwnerRuleError(
                    f"{path}:{line}: a rule needs an owner (team, application or "
                    "cost_center) and something it covers. Nothing was imported."
                )
            rules.append((match, owner, start))
    return rules


def set_tag_keys(db: duckdb.DuckDBPyConnection, keys: dict[str, str]) -> None:
    """Change the tag keys owners are read from ({attribute: key}, attributes of
    ATTRIBUTES)."""
    if keys:
        db.execute(
            f"UPDATE {TAG_KEYS_TABLE} SET {', '.join(f'{a}_key = ?' for a in keys)}",
            list(keys.values()),
        )


def tag_keys(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    row = db.execute(
        f"SELECT {', '.join(f'{a}_key' for a in ATTRIBUTES)} FROM {TAG_KEYS_TABLE}"
    ).fetchone()
    return dict(zip(ATTRIBUTES, row, strict=True))


OWNER_SCHEMA = f"""
CREATE TABLE {OWNER_RULES_TABLE} (
    rule_id VARCHAR NOT NULL,
    account_id VARCHAR, connection_id VARCHAR, region VARCHAR, model_id VARCHAR,
    profile VARCHAR, project_id VARCHAR, principal VARCHAR,
    team VARCHAR, application VARCHAR, cost_center VARCHAR,
    effective_from DATE NOT NULL,
    effective_to DATE,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE {TAG_KEYS_TABLE} (
    team_key VARCHAR NOT NULL, application_key VARCHAR NOT NULL,
    cost_center_key VARCHAR NOT NULL
);
INSERT INTO {TAG_KEYS_TABLE} VALUES ('team', 'application', 'cost-center');
"""

_RULE_MATCHES = """
    (r.account_id IS NULL OR r.account_id = g.account_id)
    AND (r.connection_id IS NULL OR r.connection_id = g.connection_id)
    AND (r.region IS NULL OR r.region = g.region)
    AND (r.model_id IS NULL OR r.model_id IN (g.base_model_id, g.model_id))
    AND (r.profile IS NULL OR r.profile IN (g.profile_id, g.profile_arn, g.profile_name))
    AND (r.project_id IS NULL OR r.project_id = g.project_id)
    AND (r.principal IS NULL OR r.principal = g.principal)
    AND g.usage_date >= r.effective_from
    AND (r.effective_to IS NULL OR g.usage_date < r.effective_to)
"""
_RULE_RANK = " + ".join(
    f"CASE WHEN r.{c} IS NOT NULL THEN {1 << (rank + 2)} ELSE 0 END" for c, rank in RANK.items()
)
_RULE_COUNT = " + ".join(f"(r.{c} IS NOT NULL)::INT" for c in CRITERIA)


def _owner_view(name: str, grain_sql: str, columns: str, tag_rank: int, tag) -> str:
    """Each grain row with its winning owner: the map's rules and the row's tags compete
    by rank (bit weights: the most specific criterion decides; at equal rank the map
    wins, then more criteria, then newer). `tag(key)` is the SQL of the row's tag `key`
    (a column of the tag keys)."""
    return f"CREATE OR REPLACE VIEW {{prefix}}{name} AS " + _owner_select(
        grain_sql, columns, tag_rank, tag
    )


def _owner_select(grain_sql: str, columns: str, tag_rank: int, tag) -> str:
    return f"""
WITH grain AS ({grain_sql}),
numbered AS MATERIALIZED (
    SELECT row_number() OVER (ORDER BY {columns}) AS row_key, * FROM grain
),
keys AS (SELECT * FROM {TAG_KEYS_TABLE} LIMIT 1),
candidates AS (
    SELECT g.row_key, r.team, r.application, r.cost_center, 'map' AS owner_source,
        ({_RULE_RANK}) * 2 + 1 AS priority, {_RULE_COUNT} AS criteria, r.created_at
    FROM numbered g JOIN {OWNER_RULES_TABLE} r ON {_RULE_MATCHES}
    UNION ALL
    SELECT g.row_key, {tag("k.team_key")}, {tag("k.application_key")},
        {tag("k.cost_center_key")}, 'tags', {1 << (tag_rank + 2)} * 2, 1, NULL
    FROM numbered g, keys k
    WHERE g.tags IS NOT NULL
        AND coalesce({tag("k.team_key")}, {tag("k.application_key")},
                     {tag("k.cost_center_key")}) IS NOT NULL
),
winners AS (
    SELECT * FROM candidates
    QUALIFY row_number() OVER (
        PARTITION BY row_key ORDER BY priority DESC, criteria DESC, created_at DESC NULLS LAST
    ) = 1
)
SELECT {columns},
    coalesce(w.team, '{UNASSIGNED}') AS team,
    coalesce(w.application, '{UNASSIGNED}') AS application,
    coalesce(w.cost_center, '{UNASSIGNED}') AS cost_center,
    coalesce(w.owner_source, 'none') AS owner_source
FROM numbered g LEFT JOIN winners w USING (row_key)
"""


_USAGE_GRAIN = """
    SELECT c.usage_date, c.connection_id, c.account_id, c.region, c.api_endpoint, c.model_id,
        c.base_model_id, NULL::VARCHAR AS project_id, NULL::VARCHAR AS principal,
        ip.profile_id, ip.profile_arn, ip.profile_name, ip.tags,
        c.input_tokens, c.output_tokens, c.cache_read_input_tokens,
        c.cache_write_input_tokens, c.invocations, c.estimated_cost_usd
    FROM {costs} c
    LEFT JOIN bedrock_inference_profiles ip
        ON ip.connection_id = c.connection_id AND ip.region = c.region
        AND c.model_id IN (ip.profile_id, ip.profile_arn)
    WHERE c.api_endpoint <> 'bedrock-mantle'
    UNION ALL
    -- The mantle endpoint's usage, by project: each project's tokens at the row's rates,
    -- and what no project accounts for as a row of its own, so the sums stay the table's.
    (WITH mantle AS (
        SELECT * FROM {costs} m WHERE api_endpoint = 'bedrock-mantle'
    ),
    projects AS (
        SELECT m.usage_date, m.connection_id, m.account_id, m.region, m.api_endpoint,
            m.model_id, m.base_model_id, p.project_id, p.input_tokens, p.output_tokens,
            p.inferences AS invocations,
            CASE WHEN m.estimated_cost_usd IS NOT NULL THEN CAST((
                CAST(p.input_tokens AS DECIMAL(38,0)) * m.input_usd_per_million
                + CAST(p.output_tokens AS DECIMAL(38,0)) * coalesce(m.output_usd_per_million, 0)
            ) * 0.000001::DECIMAL(7,6) AS DECIMAL(18,6)) END AS estimated_cost_usd
        FROM mantle m
        JOIN bedrock_usage_daily_by_project p
            USING (usage_date, connection_id, region, model_id)
    ),
    covered AS (
        SELECT usage_date, connection_id, region, model_id,
            sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
            sum(invocations) AS invocations, sum(estimated_cost_usd) AS estimated_cost_usd
        FROM projects GROUP BY ALL
    )
    SELECT usage_date, connection_id, account_id, region, api_endpoint, model_id,
        base_model_id, project_id, NULL, NULL, NULL, NULL, NULL, input_tokens, output_tokens,
        0, 0, invocations, estimated_cost_usd
    FROM projects
    UNION ALL
    SELECT m.usage_date, m.connection_id, m.account_id, m.region, m.api_endpoint, m.model_id,
        m.base_model_id, NULL, NULL, NULL, NULL, NULL, NULL,
        m.input_tokens - coalesce(c.input_tokens, 0),
        m.output_tokens - coalesce(c.output_tokens, 0),
        m.cache_read_input_tokens, m.cache_write_input_tokens,
        m.invocations - coalesce(c.invocations, 0),
        CAST(m.estimated_cost_usd - coalesce(c.estimated_cost_usd, 0) AS DECIMAL(18,6))
    FROM mantle m LEFT JOIN covered c USING (usage_date, connection_id, region, model_id)
    WHERE c.usage_date IS NULL OR m.input_tokens <> c.input_tokens
        OR m.output_tokens <> c.output_tokens OR m.invocations <> c.invocations
        OR m.cache_read_input_tokens + m.cache_write_input_tokens > 0
        OR m.estimated_cost_usd IS DISTINCT FROM c.estimated_cost_usd)
"""


def _usage_grain(costs: str) -> str:
    """The usage grain over `costs` (the cost view, or a window of it)."""
    return _USAGE_GRAIN.replace("{costs}", costs)


USAGE_OWNER_COLUMNS = (
    "usage_date, connection_id, account_id, region, api_endpoint, model_id, base_model_id, "
    "project_id, profile_id, profile_name, input_tokens, output_tokens, "
    "cache_read_input_tokens, cache_write_input_tokens, invocations, estimated_cost_usd"
)
_BILL_GRAIN = """
    SELECT b.usage_date, a.connection_id, b.account_id, b.region, b.model_id,
        b.model_id AS base_model_id, NULL::VARCHAR AS project_id, b.iam_principal AS principal,
        NULL::VARCHAR AS profile_id, NULL::VARCHAR AS profile_arn,
        NULL::VARCHAR AS profile_name, b.tags, b.billing_source, b.line_item_type, b.token_type,
        b.tokens, b.unblended_cost_usd, b.net_unblended_cost_usd
    FROM bedrock_billed_daily b
    -- One connection per account: a rule naming the connection covers its bill too.
    LEFT JOIN (SELECT DISTINCT account_id, connection_id FROM bedrock_usage_daily) a
        USING (account_id)
"""
BILL_OWNER_COLUMNS = (
    "usage_date, billing_source, connection_id, account_id, region, model_id, principal, "
    "line_item_type, token_type, tokens, unblended_cost_usd, net_unblended_cost_usd"
)


def _usage_tag(key: str) -> str:
    return f"(g.tags::JSON ->> {key})"


def _bill_tag(key: str) -> str:
    # CUR 2.0: a principal's tag as iamPrincipal/<key>, a cost-allocation tag as user_<key>.
    return (
        f"coalesce(g.tags::JSON ->> ('iamPrincipal/' || {key}), "
        f"g.tags::JSON ->> ('user_' || {key}))"
    )


MONTHLY_OWNER_VIEW = """
CREATE OR REPLACE VIEW {prefix}bedrock_cost_monthly_by_owner AS
WITH usage AS (
    SELECT date_trunc('month', usage_date)::DATE AS month, team, application, cost_center,
        sum(input_tokens + output_tokens + cache_read_input_tokens
            + cache_write_input_tokens)::BIGINT AS tokens,
        sum(invocations)::BIGINT AS invocations,
        CAST(sum(estimated_cost_usd) AS DECIMAL(18,6)) AS estimated_cost_usd,
        sum(CASE WHEN estimated_cost_usd IS NULL THEN input_tokens + output_tokens
            + cache_read_input_tokens + cache_write_input_tokens ELSE 0 END)::BIGINT
            AS unpriced_tokens
    FROM bedrock_usage_daily_by_owner GROUP BY ALL
),
bill AS (
    SELECT date_trunc('month', usage_date)::DATE AS month, team, application, cost_center,
        CAST(sum(unblended_cost_usd) AS DECIMAL(18,6)) AS billed_unblended_usd,
        CAST(sum(net_unblended_cost_usd) AS DECIMAL(18,6)) AS billed_net_usd
    FROM bedrock_billed_daily_by_owner GROUP BY ALL
),
-- A month the bill covers is the bill's, owner by owner (as its principals and tags
-- attribute it): summing cost_usd never counts a dollar twice.
billed_months AS (SELECT DISTINCT month FROM bill)
SELECT month, team, application, cost_center, coalesce(u.tokens, 0) AS tokens,
    coalesce(u.invocations, 0) AS invocations, u.estimated_cost_usd,
    coalesce(u.unpriced_tokens, 0) AS unpriced_tokens, b.billed_unblended_usd,
    b.billed_net_usd,
    CASE WHEN month IN (SELECT month FROM billed_months)
        THEN coalesce(b.billed_net_usd, 0) ELSE u.estimated_cost_usd END AS cost_usd,
    CASE WHEN month IN (SELECT month FROM billed_months) THEN 'billed' ELSE 'estimated' END
        AS cost_basis
FROM usage u FULL OUTER JOIN bill b USING (month, team, application, cost_center)
"""

OWNER_COMMENTS = {
    "team": f"The owner's team: from the ownership map or tags; {UNASSIGNED} when none.",
    "application": f"The owner's application; {UNASSIGNED} when none.",
    "cost_center": f"The owner's cost center; {UNASSIGNED} when none.",
    "owner_source": "map (bedrock_owner_rules), tags (a profile's or an IAM principal's), or none.",
    "project_id": "The mantle endpoint's project, where the usage is by project; else NULL.",
    "profile_id": "The application inference profile the usage went through; else NULL.",
    "profile_name": "That profile's name.",
}
USAGE_OWNER_COMMENTS = {
    **{name: text for name, _, text in USAGE_COLUMN_DOCS},
    "estimated_cost_usd": "Estimated USD (bedrock_cost_daily.estimated_cost_usd; a mantle "
    "project's share at its row's rates); NULL without a list price.",
    "invocations": "Requests (a mantle project's inferences).",
    **OWNER_COMMENTS,
}
BILL_OWNER_COMMENTS = {
    "usage_date": "UTC day of the billed usage.",
    "billing_source": "The billing source the line was read from.",
    "connection_id": "The connection of the line's usage account, where one is connected.",
    "account_id": "The usage account.",
    "region": "The AWS region billed.",
    "model_id": "The base model id (NULL where this version cannot name it).",
    "principal": "The IAM principal that called Bedrock, as the bill names it.",
    "line_item_type": "Usage, Discount, Credit, Refund, ... (bedrock_billed_daily).",
    "token_type": "input, output, cache_read, cache_write; NULL on other lines.",
    "tokens": "Tokens billed on the line.",
    "unblended_cost_usd": "The line's unblended cost.",
    "net_unblended_cost_usd": "The line's net unblended cost.",
    **OWNER_COMMENTS,
}
MONTHLY_OWNER_COMMENTS = {
    **OWNER_COMMENTS,
    "month": "First day of the UTC month.",
    "tokens": "Input, output and cache tokens CloudWatch counted for the owner.",
    "invocations": "Requests CloudWatch counted for the owner.",
    "estimated_cost_usd": "The estimate (list prices); unpriced usage left out.",
    "unpriced_tokens": "Tokens without a list price: not in estimated_cost_usd.",
    "billed_unblended_usd": "What the bill charged the owner before discounts and credits "
    "(billing sources only); NULL without a bill.",
    "billed_net_usd": "What the bill charged the owner, net of discounts and credits.",
    "cost_usd": "In a month the bill covers, what the bill charged the owner (0 where it "
    "attributes nothing to them: the bill knows IAM principals and their tags, not mantle "
    "projects or profiles' tags); else the estimate. One column to sum.",
    "cost_basis": "billed or estimated: which figure cost_usd is.",
}


def create_owner_views(db: duckdb.DuckDBPyConnection, prefix: str = "") -> dict[str, dict]:
    """(Re)create the views by owner; returns their column comments."""
    usage = _owner_view(
        "bedrock_usage_daily_by_owner", _usage_grain("bedrock_cost_daily"), USAGE_OWNER_COLUMNS,
        RANK["profile"],
        _usage_tag,
    )  # fmt: skip
    bill = _owner_view(
        "bedrock_billed_daily_by_owner", _BILL_GRAIN, BILL_OWNER_COLUMNS, RANK["principal"],
        _bill_tag,
    )  # fmt: skip
    for view in (usage, bill, MONTHLY_OWNER_VIEW):
        # Names inside a view resolve in the view's own database (the analysts' copy).
        db.execute(view.replace("{prefix}", prefix))
    return {
        "bedrock_usage_daily_by_owner": USAGE_OWNER_COMMENTS,
        "bedrock_billed_daily_by_owner": BILL_OWNER_COMMENTS,
        "bedrock_cost_monthly_by_owner": MONTHLY_OWNER_COMMENTS,
    }


@dataclass(frozen=True)
class OwnerCoverage:
    """How much of a window's estimated spend has an owner."""

    configured: bool  # any rule, or any profile tagged with an owner key
    total_usd: float
    unassigned_usd: float
    largest_unassigned: list[dict]

    @property
    def unassigned_share(self) -> float:
        return self.unassigned_usd / self.total_usd if self.total_usd else 0.0


def owned_usage(where: str, params: list) -> tuple[str, list]:
    """bedrock_usage_daily_by_owner's rows that `where` selects, as a query and its
    parameters: the rows are selected before their owners are found (the view would
    find every day's owner first)."""
    grain = _usage_grain(f"(SELECT * FROM bedrock_cost_daily WHERE {where})")
    owned = _owner_select(grain, USAGE_OWNER_COLUMNS, RANK["profile"], _usage_tag)
    return owned, params * grain.count(where)


def owner_coverage(db: duckdb.DuckDBPyConnection, where: str, params: list, limit: int = 5):
    """The estimated spend without an owner in the rows `where` selects, and its largest
    sources, each with the command that would assign it."""
    owned, params = owned_usage(where, params)
    total, unassigned = db.execute(
        f"""WITH owned AS ({owned})
        SELECT coalesce(sum(estimated_cost_usd), 0)::DOUBLE,
            coalesce(sum(estimated_cost_usd) FILTER (team = '{UNASSIGNED}'
                AND application = '{UNASSIGNED}' AND cost_center = '{UNASSIGNED}'), 0)::DOUBLE
        FROM owned""",
        params,
    ).fetchone()
    sources = db.execute(
        f"""WITH owned AS ({owned})
        SELECT connection_id, region, model_id, project_id, profile_name,
            sum(estimated_cost_usd)::DOUBLE AS usd,
            sum(input_tokens + output_tokens + cache_read_input_tokens
                + cache_write_input_tokens)::BIGINT AS tokens
        FROM owned WHERE owner_source = 'none'
        GROUP BY ALL ORDER BY usd DESC NULLS LAST, tokens DESC LIMIT {int(limit)}""",
        params,
    ).fetchall()
    configured = db.execute(
        f"""SELECT (SELECT count(*) FROM {OWNER_RULES_TABLE})
            + (SELECT count(*) FROM bedrock_inference_profiles p, {TAG_KEYS_TABLE} k
               WHERE coalesce(p.tags::JSON ->> k.team_key, p.tags::JSON ->> k.application_key,
                              p.tags::JSON ->> k.cost_center_key) IS NOT NULL)"""
    ).fetchone()[0]
    largest = [
        {
            "connection_id": connection_id, "region": region, "model_id": model_id,
            "project_id": project_id, "profile_name": profile_name,
            "estimated_cost_usd": None if usd is None else round(usd, 6), "tokens": tokens,
            "assign_with": _assign_command(connection_id, region, model_id, project_id,
                                           profile_name),
        }
        for connection_id, region, model_id, project_id, profile_name, usd, tokens in sources
    ]  # fmt: skip
    return OwnerCoverage(bool(configured), total, unassigned, largest)


def _assign_command(connection_id, region, model_id, project_id, profile_name) -> str:
    if project_id:
        covers = f"--project {project_id}"
    elif profile_name:
        covers = f"--profile {profile_name}"
    else:
        covers = f"--connection {connection_id} --region {region} --model {model_id}"
    return f"bedrock-usage owners set --team TEAM {covers}"
