"""Settings of the gRPC server: built once from the environment and flags."""

from __future__ import annotations

from dataclasses import dataclass

from nndl.trainer.settings import RegistrySettings


@dataclass(frozen=True)
class ServerSettings(RegistrySettings):
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_port: int = 9100  # 0: no metrics endpoint
    threads: int = 16
    default_model: str = "mnist"  # used when a request names no model
    max_batch_images: int = 100_000
    max_message_bytes: int = 128 * 1024 * 1024
    max_image_bytes: int = 4 * 1024 * 1024
    max_image_pixels: int = 16_000_000
    max_in_flight: int = 256  # requests being served at once; more get RESOURCE_EXHAUSTED
    refresh_s: float = 5.0  # re-check aliases and latest versions even without notifications
    token: str = ""  # bearer token guarding job submission, cancellation and registry admin
    token_for_classify: bool = False  # also require the token for classification
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""  # set for mutual TLS
    grace_s: float = 10.0  # how long shutdown waits for requests in flight
    log_level: str = "INFO"
