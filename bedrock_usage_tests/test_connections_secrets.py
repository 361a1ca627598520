"""Encryption at rest: the key file, the environment key, and a changed key."""

import pytest
from cryptography.fernet import Fernet

from bedrock_usage.connections import secrets
from bedrock_usage.connections.secrets import SecretKeyError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(tmp_path))
    monkeypatch.delenv("BEDROCK_USAGE_SECRET_KEY", raising=False)
    return tmp_path


def test_a_key_file_is_created_with_mode_0600_and_reused(home):
    token = secrets.encrypt("s3cr3t")
    assert "s3cr3t" not in token
    key_file = home / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert secrets.decrypt(token) == "s3cr3t"


def test_the_environment_key_wins_and_no_file_is_written(home, monkeypatch):
    monkeypatch.setenv("BEDROCK_USAGE_SECRET_KEY", Fernet.generate_key().decode())
    assert secrets.decrypt(secrets.encrypt("s3cr3t")) == "s3cr3t"
    assert not (home / "secret.key").exists()


def test_a_malformed_key_says_how_to_make_one(home, monkeypatch):
    monkeypatch.setenv("BEDROCK_USAGE_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretKeyError, match="Fernet.generate_key"):
        secrets.encrypt("s3cr3t")


def test_a_changed_key_names_the_fix_without_the_secret(home, monkeypatch):
    token = secrets.encrypt("s3cr3t")
    monkeypatch.setenv("BEDROCK_USAGE_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError, match="rotate") as raised:
        secrets.decrypt(token)
    assert "s3cr3t" not in str(raised.value)


def test_a_shared_state_store_takes_the_key_from_the_environment_only(home, monkeypatch):
    monkeypatch.setenv("BEDROCK_USAGE_STATE_URL", "postgresql://bedrock@db.internal/state")
    with pytest.raises(SecretKeyError, match="BEDROCK_USAGE_SECRET_KEY"):
        secrets.encrypt("s3cr3t")
    assert not (home / "secret.key").exists()
    monkeypatch.setenv("BEDROCK_USAGE_SECRET_KEY", Fernet.generate_key().decode())
    assert secrets.decrypt(secrets.encrypt("s3cr3t")) == "s3cr3t"
