"""Domain errors to gRPC status codes, in one table."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import grpc
import redis

from nndl.trainer.errors import NndlError

log = logging.getLogger(__name__)
ORIGIN_KEY = "nndl-origin"  # trailing metadata on errors the server itself reports

STATUS = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "aborted": grpc.StatusCode.ABORTED,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "internal": grpc.StatusCode.INTERNAL,
}


class ModelUnavailableError(NndlError):
    """A model version that exists but does not load; another version may still serve."""

    code = "failed_precondition"


class DeadlineExceededError(NndlError):
    """The caller's deadline passed before the answer was ready; the work was skipped."""

    code = "deadline_exceeded"


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
        except redis.RedisError as e:
            log.warning("%s: Redis is unreachable: %s", method.__name__, e)
            # Marks this UNAVAILABLE as the server's own answer, not a transport failure.
            context.set_trailing_metadata(((ORIGIN_KEY, "server"),))
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          "the server cannot reach Redis right now; retry shortly")
        except Exception:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper
