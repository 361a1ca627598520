"""Errors the emulator returns in CloudWatch's own wire format."""

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse


class AwsError(ServiceException):
    """An AWS error code and message with its HTTP status, serialised by moto in the
    protocol the client spoke (CBOR, JSON or Query)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message)
        self.status = status


def error_response(response: BaseResponse, error: AwsError):
    """The error in the protocol the client spoke, with AWS's HTTP status (moto would use
    400 for codes its service models do not list, such as AccessDenied)."""
    status, headers, body = response.serialized(ActionResult(error))
    headers["status"] = error.status
    return error.status, headers, body
