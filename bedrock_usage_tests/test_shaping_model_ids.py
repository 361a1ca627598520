"""Provider, base model and inference scope derived from the raw ModelId."""

import pytest

from bedrock_usage.shaping.model_ids import describe_model_id


@pytest.mark.parametrize(
    ("model_id", "provider", "base", "scope"),
    [
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "in_region",
        ),
        (
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "anthropic",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "us",
        ),
        ("eu.amazon.nova-lite-v1:0", "amazon", "amazon.nova-lite-v1:0", "eu"),
        ("apac.meta.llama3-1-8b-instruct-v1:0", "meta", "meta.llama3-1-8b-instruct-v1:0", "apac"),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global",
        ),
        (
            "us-gov.anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "us-gov",
        ),
        ("abc123def456", "unknown", "abc123def456", "application_profile"),
        (
            "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/xyz",
            "unknown",
            "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/xyz",
            "provisioned",
        ),
        (
            "arn:aws:bedrock:us-east-1:111122223333:custom-model/m/abc",
            "unknown",
            "arn:aws:bedrock:us-east-1:111122223333:custom-model/m/abc",
            "custom",
        ),
        (
            "arn:aws:bedrock:us-east-1:111122223333:imported-model/abc",
            "unknown",
            "arn:aws:bedrock:us-east-1:111122223333:imported-model/abc",
            "imported",
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1",
            "amazon",
            "amazon.titan-text-express-v1",
            "in_region",
        ),
        (
            "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.amazon.nova-pro-v1:0",
            "amazon",
            "amazon.nova-pro-v1:0",
            "us",
        ),
        (
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123def456",
            "unknown",
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123def456",
            "application_profile",
        ),
        ("Something Odd", "unknown", "Something Odd", "unknown"),
        ("(unattributed)", "(unattributed)", "(unattributed)", "unattributed"),
    ],
)
def test_model_ids_are_described(model_id, provider, base, scope):
    described = describe_model_id(model_id)
    assert (described.model_provider, described.base_model_id, described.inference_scope) == (
        provider,
        base,
        scope,
    )
