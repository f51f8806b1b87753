"""Domain errors to gRPC status codes, in one table."""

from __future__ import annotations

import functools
import inspect
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


# Redis errors that pass: it is down, restarting, loading its data, or read-only or
# without a master during a failover. Any other Redis error (a bad command, a wrong type)
# is a bug: INTERNAL.
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
              redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)


def status_of(error: NndlError) -> grpc.StatusCode:
    return STATUS.get(error.code, grpc.StatusCode.INTERNAL)


def abort_with(method_name: str, error: Exception, context: grpc.ServicerContext) -> None:
    """Ends the call with the status and message that error deserves (raises)."""
    if isinstance(error, NndlError):
        context.abort(status_of(error), str(error))
    if isinstance(error, REDIS_AWAY):
        log.warning("%s: Redis is unreachable: %s", method_name, error)
        # Marks this UNAVAILABLE as the server's own answer, not a transport failure.
        context.set_trailing_metadata(((ORIGIN_KEY, "server"),))
        context.abort(grpc.StatusCode.UNAVAILABLE,
                      "the server cannot reach Redis right now; retry shortly")
    log.error("%s failed", method_name, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def grpc_errors(method: Callable) -> Callable:
    """Turns errors raised by a servicer method, unary or streaming, into a status and message."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self, request, context: grpc.ServicerContext):
            try:
                yield from method(self, request, context)
            except Exception as e:
                abort_with(method.__name__, e, context)

        return stream

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except Exception as e:
            abort_with(method.__name__, e, context)

    return wrapper
