"""Cross-cutting request handling: metrics, load shedding and the bearer token."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable

import grpc

from nndl.server.metrics import ServerMetrics

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
    """Counts and times every call; refuses new ones past `max_in_flight`."""

    def __init__(self, metrics: ServerMetrics, max_in_flight: int) -> None:
        self.metrics, self.max_in_flight = metrics, max_in_flight
        self._in_flight = 0
        self._lock = threading.Lock()

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        method = _short(details.method)
        return _wrap(handler, lambda behaviour: self._observe(method, behaviour))

    def _observe(self, method: str, behaviour: Callable) -> Callable:
        def run(request, context: grpc.ServicerContext):
            with self._lock:
                if self._in_flight >= self.max_in_flight:
                    self.metrics.requests.labels(method, "RESOURCE_EXHAUSTED").inc()
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"the server is busy ({self.max_in_flight} requests in "
                                  "flight); retry later")
                self._in_flight += 1
            self.metrics.in_flight.inc()
            started = time.perf_counter()
            code = "OK"
            try:
                result = behaviour(request, context)
                return result
            except Exception:
                code = (context.code() or grpc.StatusCode.UNKNOWN).name
                raise
            finally:
                self.metrics.latency.labels(method).observe(time.perf_counter() - started)
                self.metrics.requests.labels(method, code).inc()
                self.metrics.in_flight.dec()
                with self._lock:
                    self._in_flight -= 1

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
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "this call needs a valid bearer token (authorization: Bearer ...)")

        return _wrap(handler, lambda _behaviour: deny)
