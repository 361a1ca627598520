"""How a connection authenticates: a stored key pair, a role to assume, or a profile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import boto3

from ..extraction.aws import AwsKeys, make_session, sts_client
from . import secrets
from .store import Connection


@dataclass(frozen=True)
class AuthSpec:
    """Keys (`access_key_id` + `secret_access_key`), optionally a role assumed with them
    or with the ambient credentials, or a named profile (nothing secret stored)."""

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = None
    profile: str | None = None

    @property
    def method(self) -> str:
        if self.role_arn:
            return "role"
        if self.profile:
            return "profile"
        return "keys"


def session_for(auth: AuthSpec) -> boto3.Session:
    if auth.access_key_id and auth.secret_access_key:
        base = make_session(AwsKeys(auth.access_key_id, auth.secret_access_key))
    else:
        base = make_session(profile=auth.profile)
    if not auth.role_arn:
        return base
    kwargs = {"RoleArn": auth.role_arn, "RoleSessionName": "bedrock-usage"}
    if auth.external_id:
        kwargs["ExternalId"] = auth.external_id
    assumed = sts_client(base).assume_role(**kwargs)["Credentials"]
    return make_session(
        AwsKeys(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
    )


def stored_credentials(auth: AuthSpec) -> dict[str, str | None]:
    """How `auth` is kept in the state store (a connection's row, a billing source's):
    the secret only as ciphertext."""
    return {
        "auth_method": auth.method,
        "access_key_id": auth.access_key_id,
        "secret_ciphertext": secrets.encrypt(auth.secret_access_key)
        if auth.secret_access_key
        else None,
        "role_arn": auth.role_arn,
        "external_id": auth.external_id,
        "profile": auth.profile,
    }


def auth_from_stored(stored: Mapping[str, str | None]) -> AuthSpec:
    """The AuthSpec that `stored_credentials` wrote, the secret decrypted."""
    ciphertext = stored["secret_ciphertext"]
    return AuthSpec(
        access_key_id=stored["access_key_id"],
        secret_access_key=secrets.decrypt(ciphertext) if ciphertext else None,
        role_arn=stored["role_arn"],
        external_id=stored["external_id"],
        profile=stored["profile"],
    )


def stored_auth(connection: Connection) -> AuthSpec:
    return auth_from_stored(vars(connection))
