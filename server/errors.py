"""Domain errors to gRPC status codes, in one table."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import grpc

from nndl.trainer.errors import NndlError

log = logging.getLogger(__name__)

STATUS = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "aborted": grpc.StatusCode.ABORTED,
    "internal": grpc.StatusCode.INTERNAL,
}


def status_of(error: NndlError) -> grpc.StatusCode:
    return STATUS.get(error.code, grpc.StatusCode.INTERNAL)


def grpc_errors(method: Callable) -> Callable:
    """Turns domain errors raised by a servicer method into the right status and message."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except NndlError as e:
            context.abort(status_of(e), str(e))
        except Exception:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper
