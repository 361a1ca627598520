"""What each column of the usage table means: the Dagster UI's column schema, and the
column comments analysts see on the table and on every view built from it."""

# What each column means, for the Dagster UI's column schema and the analysts.
USAGE_COLUMN_DOCS: tuple[tuple[str, str, str], ...] = (
    ("usage_date", "DATE", "The UTC day."),
    ("connection_id", "VARCHAR", "The connection (one per AWS account)."),
    ("account_id", "VARCHAR", "The AWS account id."),
    ("region", "VARCHAR", "The AWS region where the usage was recorded."),
    (
        "api_endpoint",
        "VARCHAR",
        "bedrock-runtime (AWS/Bedrock: Converse, InvokeModel) or "
        "bedrock-mantle (AWS/BedrockMantle: the OpenAI-compatible endpoint).",
    ),  # fmt: skip
    (
        "model_id",
        "VARCHAR",
        "CloudWatch's ModelId, raw; '(unattributed)' for usage in the "
        "region total that no model series explains.",
    ),  # fmt: skip
    ("model_provider", "VARCHAR", "anthropic, amazon, meta, ... ('unknown' for ARNs)."),
    ("base_model_id", "VARCHAR", "The foundation model behind an inference profile."),
    (
        "inference_scope",
        "VARCHAR",
        "in_region; us/eu/apac/global/... for geographic "
        "profiles; application_profile, provisioned, custom, imported, unknown, unattributed.",
    ),  # fmt: skip
    ("input_tokens", "BIGINT", "Input tokens (Sum of InputTokenCount)."),
    ("output_tokens", "BIGINT", "Output tokens (Sum of OutputTokenCount)."),
    ("invocations", "BIGINT", "Requests accepted (Sum of Invocations)."),
    ("cache_read_input_tokens", "BIGINT", "Input tokens read from the prompt cache."),
    ("cache_write_input_tokens", "BIGINT", "Input tokens written to the prompt cache."),
    ("client_errors", "BIGINT", "Requests failed with a client error."),
    ("server_errors", "BIGINT", "Requests failed with a server error."),
    ("throttles", "BIGINT", "Throttled requests (in neither invocations nor errors)."),
    (
        "latency_ms_sum",
        "DOUBLE",
        "Sum of InvocationLatency in ms: average = sum(latency_ms_sum) / sum(latency_samples).",
    ),  # fmt: skip
    ("latency_samples", "BIGINT", "SampleCount of InvocationLatency."),
    ("synced_at", "TIMESTAMP", "When the region's data points were fetched (UTC)."),
)
