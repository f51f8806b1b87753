"""`nndl-server`: the gRPC server, its health and reflection services and metrics."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nndl.server.interceptors import MetricsInterceptor, TokenInterceptor
from nndl.server.metrics import ServerMetrics
from nndl.server.models import ModelCache
from nndl.server.servicer import ClassifierServicer, ModelsServicer
from nndl.server.settings import ServerSettings
from nndl.server.training_servicer import TrainingServicer
from nndl.trainer.metrics import serve_metrics
from nndl.trainer.settings import from_env_and_args
from nndl.v1 import nndl_pb2, nndl_pb2_grpc

log = logging.getLogger(__name__)
SERVICES = ("nndl.v1.Classifier", "nndl.v1.Models", "nndl.v1.Training")


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    cache: ModelCache
    health: health.HealthServicer
    metrics: ServerMetrics
    classifier: ClassifierServicer

    def stop(self, grace_s: float) -> None:
        """Stops accepting, lets requests in flight finish within grace_s, then closes."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()  # requests in flight may still need the batcher
        if self.classifier.batcher is not None:
            self.classifier.batcher.stop()
        self.cache.stop()
        self.cache.registry.client.close()


def _credentials(s: ServerSettings) -> grpc.ServerCredentials | None:
    if not s.tls_cert:
        return None
    key, cert = Path(s.tls_key).read_bytes(), Path(s.tls_cert).read_bytes()
    ca = Path(s.tls_client_ca).read_bytes() if s.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=ca is not None)


def build(s: ServerSettings, metrics: ServerMetrics | None = None) -> RunningServer:
    """Creates and starts the server on s.host:s.port (port 0 picks a free one)."""
    metrics = metrics or ServerMetrics()
    client = s.redis()
    registry = s.registry(client)
    cache = ModelCache(registry, refresh_s=s.refresh_s, on_load=metrics.model_loaded,
                       on_unload=metrics.model_unloaded)
    # Metrics outermost, so that the calls the token check refuses are counted too.
    interceptors: list[grpc.ServerInterceptor] = [MetricsInterceptor(metrics)]
    if s.token:
        interceptors.append(TokenInterceptor(s.token, s.token_for_classify))
    options = [("grpc.max_receive_message_length", s.max_message_bytes),
               ("grpc.max_send_message_length", s.max_message_bytes),
               # Without this a second server on the same port starts too, and the
               # kernel splits the calls between the two.
               ("grpc.so_reuseport", 0)]
    # Calls beyond max_in_flight (running, or waiting for one of the threads) are refused
    # by gRPC at once with RESOURCE_EXHAUSTED, instead of queueing without bound.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=s.threads),
                         interceptors=interceptors, options=options,
                         maximum_concurrent_rpcs=s.max_in_flight)
    classifier = ClassifierServicer(cache, registry, s, metrics)
    nndl_pb2_grpc.add_ClassifierServicer_to_server(classifier, server)
    nndl_pb2_grpc.add_ModelsServicer_to_server(ModelsServicer(cache, registry), server)
    nndl_pb2_grpc.add_TrainingServicer_to_server(
        TrainingServicer(s.queue(client), s.max_watchers), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [nndl_pb2.DESCRIPTOR.services_by_name[n.split(".")[-1]].full_name for n in SERVICES]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME,
                                         reflection.SERVICE_NAME], server)
    address = f"{s.host}:{s.port}"
    creds = _credentials(s)
    try:
        port = (server.add_secure_port(address, creds) if creds
                else server.add_insecure_port(address))
    except RuntimeError as e:  # grpc raises a bare RuntimeError when it cannot bind
        raise OSError(f"cannot listen on {address}: {e}; is another server running there?"
                      ) from e
    if classifier.batcher is not None:
        classifier.batcher.start()
    server.start()
    cache.start()
    for name in ("", *SERVICES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving on %s:%d", s.host, port)
    return RunningServer(server, port, cache, health_servicer, metrics, classifier)


def main(argv: list[str] | None = None) -> int:
    s: ServerSettings = from_env_and_args(
        ServerSettings, argv, "Serves nndl models and the job API over gRPC.")
    logging.basicConfig(level=s.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s server %(message)s")
    metrics = ServerMetrics()
    try:
        if s.metrics_port:
            serve_metrics(s.metrics_port, metrics.registry)
        running = build(s, metrics)
    except (OSError, ValueError) as e:  # a port in use, a bad Redis URL or store: one line
        log.error("the server cannot start: %s", e)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down: draining requests for up to %.0f s", s.grace_s)
    running.stop(s.grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
