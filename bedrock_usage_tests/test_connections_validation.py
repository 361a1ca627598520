"""Input checks: each refusal says what is wrong and what to write."""

import pytest

from bedrock_usage.connections.validation import (
    InvalidInput,
    check_access_key_id,
    check_account_id,
    check_connection_id,
    check_regions,
    check_role_arn,
)


@pytest.mark.parametrize("name", ["prod", "acme-prod_2", "A1"])
def test_slugs_are_accepted(name):
    assert check_connection_id(name) == name


@pytest.mark.parametrize("name", ["a|b", "a,b", "a[1]", "", "-lead", "x" * 64, "with space"])
def test_names_that_break_partition_keys_are_refused(name):
    with pytest.raises(InvalidInput, match="partition key"):
        check_connection_id(name)


def test_account_ids_are_twelve_digits():
    assert check_account_id("123456789012") == "123456789012"
    for bad in ("12345678901", "1234567890123", "12345678901a"):
        with pytest.raises(InvalidInput, match="12 digits"):
            check_account_id(bad)


def test_access_key_ids_look_like_aws_ones():
    assert check_access_key_id("AKIAIOSFODNN7EXAMPLE")
    assert check_access_key_id("ASIAIOSFODNN7EXAMPLE")
    with pytest.raises(InvalidInput, match="AKIA"):
        check_access_key_id("akiaiosfodnn7example")


def test_regions_are_checked_deduplicated_and_suggested():
    assert check_regions("us-east-1, eu-west-1,us-east-1") == ("us-east-1", "eu-west-1")
    with pytest.raises(InvalidInput, match="did you mean ap-southeast-2"):
        check_regions("ap-southeast2")
    with pytest.raises(InvalidInput, match=r"did you mean us-east-1\?"):
        check_regions("us-east-l")  # an l for the 1, not us-east-2
    with pytest.raises(InvalidInput, match="at least one region"):
        check_regions(" , ")


def test_role_arns_are_checked():
    arn = "arn:aws:iam::123456789012:role/bedrock-read"
    assert check_role_arn(arn) == arn
    with pytest.raises(InvalidInput, match="role ARN"):
        check_role_arn("arn:aws:iam::123456789012:user/someone")


@pytest.mark.parametrize("name", ["prod\n", "prod\r\n", "pröd"])
def test_a_name_with_a_trailing_newline_or_foreign_letters_is_refused(name):
    with pytest.raises(InvalidInput, match="partition key"):
        check_connection_id(name)


@pytest.mark.parametrize(
    "account_id", ["123456789012\n", "١٢٣٤٥٦٧٨٩٠١٢", "１２３４５６７８９０１２"]
)
def test_an_account_id_with_a_newline_or_non_ascii_digits_is_refused(account_id):
    with pytest.raises(InvalidInput, match="12 digits"):
        check_account_id(account_id)
