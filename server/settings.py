"""Settings of the gRPC server: built once from the environment and flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    # Calls accepted at once, running or waiting for a thread; gRPC refuses more with
    # RESOURCE_EXHAUSTED before any interceptor sees them (so requests_total omits them).
    max_in_flight: int = 256
    # WatchJob streams at once: each holds one of `threads` for its whole length, so this
    # stays below threads to keep threads free for classification. More: RESOURCE_EXHAUSTED.
    max_watchers: int = 8
    # Concurrent single-image requests share forward passes of up to this many images;
    # 1 turns batching off (each request runs its own pass on its own thread).
    batch_max_images: int = 64
    batch_max_wait_ms: float = 0.0  # 0: take what is queued, never wait for more
    max_queued_images: int = 2048  # single images waiting for a pass; more: RESOURCE_EXHAUSTED
    refresh_s: float = 5.0  # re-check aliases and latest versions even without notifications
    token: str = ""  # bearer token guarding job submission, cancellation and registry admin
    token_for_classify: bool = False  # also require the token for classification
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""  # set for mutual TLS
    grace_s: float = 10.0  # how long shutdown waits for requests in flight
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        """Raises ValueError naming the flag of a setting the server cannot run with."""
        if self.threads < 2:
            raise ValueError(f"--threads must be at least 2, not {self.threads}")
        if not 1 <= self.max_watchers < self.threads:
            raise ValueError(f"--max-watchers must be at least 1 and below --threads "
                             f"({self.threads}), not {self.max_watchers}: each watcher holds "
                             "a thread")
        if self.max_in_flight < self.threads:
            raise ValueError(f"--max-in-flight ({self.max_in_flight}) must be at least "
                             f"--threads ({self.threads})")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        for flag, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key),
                           ("--tls-client-ca", self.tls_client_ca)):
            if path and not Path(path).is_file():
                raise ValueError(f"{flag} {path}: no such file")
