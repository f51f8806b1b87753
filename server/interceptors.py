"""Cross-cutting request handling: metrics and the bearer token."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc

from nndl.server.errors import abort_with
from nndl.server.metrics import ServerMetrics
from nndl.trainer.errors import UnauthenticatedError

# Calls that change state: they need the token whenever one is configured.
GUARDED = {
    "/nndl.v1.Training/SubmitJob",
    "/nndl.v1.Training/CancelJob",
    "/nndl.v1.Models/SetAlias",
    "/nndl.v1.Models/DeleteAlias",
    "/nndl.v1.Models/ImportModel",
}
CLASSIFY = {"/nndl.v1.Classifier/Classify", "/nndl.v1.Classifier/ClassifyBatch"}


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


def _wrap(handler: grpc.RpcMethodHandler, wrap: Callable) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour passed through `wrap`."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary), handler.request_deserializer,
            handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream), handler.request_deserializer,
            handler.response_serializer)
    return handler


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every call, streams included, by method and status code.

    It is the outermost interceptor, so calls that the token check refuses are counted
    too. Calls past `max_in_flight` never get here: gRPC refuses them itself.
    """

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        method = _short(details.method)
        observe = self._observe_stream if handler.unary_stream else self._observe
        return _wrap(handler, lambda behaviour: observe(method, behaviour))

    @contextmanager
    def _recording(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        self.metrics.in_flight.inc()
        started, code = time.perf_counter(), "OK"
        try:
            yield
            if not context.is_active():  # the caller gave up: nobody got the answer
                left = context.time_remaining()
                code = "DEADLINE_EXCEEDED" if left is not None and left <= 0 else "CANCELLED"
        except GeneratorExit:  # a stream closed by gRPC when its caller left
            code = "CANCELLED"
            raise
        except Exception:
            code = (context.code() or grpc.StatusCode.UNKNOWN).name
            raise
        finally:
            self.metrics.latency.labels(method).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, code).inc()
            self.metrics.in_flight.dec()

    def _observe(self, method: str, behaviour: Callable) -> Callable:
        def run(request, context: grpc.ServicerContext):
            with self._recording(method, context):
                return behaviour(request, context)

        return run

    def _observe_stream(self, method: str, behaviour: Callable) -> Callable:
        def run(request, context: grpc.ServicerContext):
            with self._recording(method, context):  # a stream runs as it is iterated
                yield from behaviour(request, context)

        return run


class TokenInterceptor(grpc.ServerInterceptor):
    """Checks `authorization: Bearer <token>` on guarded methods."""

    def __init__(self, token: str, guard_classify: bool) -> None:
        self.token = token.encode()
        self.guarded = GUARDED | (CLASSIFY if guard_classify else set())

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method not in self.guarded:
            return handler
        metadata = dict(details.invocation_metadata or ())
        given = str(metadata.get("authorization", ""))
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), self.token):
            return handler

        def deny(request, context: grpc.ServicerContext):
            abort_with(_short(details.method), UnauthenticatedError(
                "this call needs a valid bearer token (authorization: Bearer ...)"), context)

        return _wrap(handler, lambda _behaviour: deny)
