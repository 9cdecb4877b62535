"""Errors: every failed call raises :class:`RostraError` carrying the gRPC status."""

from __future__ import annotations

import grpc


class RostraError(Exception):
    """A call the server refused or could not answer.

    ``code`` is the gRPC status code (``grpc.StatusCode.INVALID_ARGUMENT`` for bad
    input, ``NOT_FOUND``, ``UNAVAILABLE`` when no server answers, ...) and ``details``
    the server's message.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class LockLost(RostraError):
    """A held lock was lost (its session ended, or the stream to the server broke)."""


def from_rpc(e: grpc.RpcError) -> RostraError:
    """The :class:`RostraError` for a failed gRPC call."""
    # Sync errors are `grpc.Call`s, asyncio ones (`grpc.aio.AioRpcError`) are not, but
    # both carry code() and details().
    code_of = getattr(e, "code", None)
    details_of = getattr(e, "details", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details = (details_of() if callable(details_of) else None) or str(e)
    return RostraError(code, details)


# A watch reopens after these (the server went away, restarted, or is busy); any other
# code is the caller's to see.
RETRIABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
