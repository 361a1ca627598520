"""How a connection authenticates: a stored key pair, a role to assume, or a profile."""

from __future__ import annotations

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


def stored_auth(connection: Connection) -> AuthSpec:
    secret = secrets.decrypt(connection.secret_ciphertext) if connection.secret_ciphertext else None
    return AuthSpec(
        access_key_id=connection.access_key_id,
        secret_access_key=secret,
        role_arn=connection.role_arn,
        external_id=connection.external_id,
        profile=connection.profile,
    )
