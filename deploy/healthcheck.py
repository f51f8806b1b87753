"""Container health checks: exit 0 when healthy, 1 otherwise, with one line saying why.

    python healthcheck.py grpc 127.0.0.1:50051 [--service nndl.v1.Classifier] [--tls-ca CA]
    python healthcheck.py http http://127.0.0.1:9101/metrics

`grpc` asks the server's standard health service (grpc.health.v1) and is healthy on
SERVING, and on RESOURCE_EXHAUSTED for up to --busy-for-s seconds in a row: a server at
its --max-in-flight limit refuses every call, this one too, and is busy, not broken
(restarting it would drop its work); one that stays full that long is stuck. `http`
is healthy on a 200 answer (the trainer has no gRPC port, so its metrics endpoint stands
for it). Needs only what the nndl image already has.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _busy_since(target: str) -> Path:
    """Where the time of the first RESOURCE_EXHAUSTED in a row is kept between checks."""
    return Path(tempfile.gettempdir()) / f"nndl-busy-{re.sub(r'[^A-Za-z0-9]', '_', target)}"


def check_grpc(target: str, service: str, tls_ca: str, timeout_s: float,
               busy_for_s: float) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if tls_ca:
        creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    marker = _busy_since(target)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                marker.unlink(missing_ok=True)
                return f"{target}: {e.code().name} {e.details()}"
            if not marker.exists():
                marker.write_text(str(time.time()))
            busy_s = time.time() - float(marker.read_text() or 0)
            if busy_s > busy_for_s:
                return f"{target} has refused calls as busy for {busy_s:.0f} s: stuck"
            print(f"busy: {target} is at its limit of calls in flight ({e.details()})",
                  file=sys.stderr)
            return None
    marker.unlink(missing_ok=True)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return None if status == "SERVING" else f"{target} {service or '(server)'}: {status}"


def check_http(url: str, timeout_s: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 (local URL)
            return None if answer.status == 200 else f"{url}: HTTP {answer.status}"
    except OSError as e:
        return f"{url}: {e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    g = kinds.add_parser("grpc", help="ask grpc.health.v1 at HOST:PORT")
    g.add_argument("target")
    g.add_argument("--service", default="", help="a service name; default: the whole server")
    g.add_argument("--tls-ca", default="", help="CA certificate when the server uses TLS")
    g.add_argument("--busy-for-s", type=float, default=300.0,
                   help="how long RESOURCE_EXHAUSTED in a row counts as busy (default 300)")
    h = kinds.add_parser("http", help="GET a URL")
    h.add_argument("url")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.kind == "grpc":
        problem = check_grpc(args.target, args.service, args.tls_ca, args.timeout,
                             args.busy_for_s)
    else:
        problem = check_http(args.url, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
