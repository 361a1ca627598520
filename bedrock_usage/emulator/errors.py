"""Errors the emulator returns in CloudWatch's own wire format."""

from moto.core.exceptions import ServiceException


class AwsError(ServiceException):
    """An AWS error code and message with its HTTP status, serialised by moto in the
    protocol the client spoke (CBOR, JSON or Query)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message)
        self.status = status
