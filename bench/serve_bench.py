"""Serving benchmark: the server in its own process, load from separate processes.

Measures single-image Classify requests/s with p50/p99 latency at 1, 8 and 64
concurrent callers for a [784, 100, 10] network, and ClassifyBatch images/s for batches
of 1,000 raw uint8 images for that network and for the book's chapter 6 networks
(ch6-conv2 and ch6-dropout). Prints a Markdown table.

    python bench/serve_bench.py --seconds 5
    python bench/serve_bench.py --batch-max-images 1   # batching off, for comparison
    python bench/serve_bench.py --ceiling              # a do-nothing servicer: gRPC's own cost

Redis: REDIS_URL when set, else a private redis-server. Models are published into a
temporary folder under a private key prefix, so nothing else is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import HealthServicer

from nndl.trainer.keys import Keys
from nndl.trainer.local_redis import LocalRedis, free_port
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network
from nndl.trainer.presets import resolve
from nndl.trainer.registry import DirectoryStore, Registry
from nndl.trainer.training import build_network
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc

BATCH = 1000


CONV_MODELS = ("ch6-conv2", "ch6-dropout")


def publish_models(redis_url: str, prefix: str, folder: str) -> None:
    """Untrained networks (speed does not depend on the weights): "mlp" and CONV_MODELS."""
    import redis

    mlp = Network([Dense(784, 100), Dense(100, 10)], "cross_entropy", xp=np)
    mlp.init_params(seed=1)
    nets = {"mlp": mlp, **{name: build_network(resolve(name), np, 0) for name in CONV_MODELS}}
    client = redis.Redis.from_url(redis_url)
    registry = Registry(client, Keys(prefix), DirectoryStore(folder))
    for name, net in nets.items():
        registry.publish(name, [(net.config(), [dict(p) for p in net.parameters()])], {})
    client.close()


def _request(kind: str, model: str) -> tuple[str, object]:
    rng = np.random.default_rng(0)
    if kind == "single":
        image = pb.Image(pixels_u8=rng.integers(0, 256, 784, dtype=np.uint8).tobytes())
        return "Classify", pb.ClassifyRequest(model=model, image=image)
    x = rng.integers(0, 256, (BATCH, 784), dtype=np.uint8)
    return "ClassifyBatch", pb.ClassifyBatchRequest(
        model=model, packed_response=kind == "batch-packed",
        packed=pb.PackedImages(format=pb.PIXEL_FORMAT_U8, count=BATCH, data=x.tobytes()))


def load(address: str, kind: str, model: str, callers: int, warmup_s: float, seconds: float,
         out: mp.Queue) -> None:
    """One load process: `callers` concurrent callers on one asyncio channel."""

    async def run() -> list[float]:
        options = [("grpc.max_receive_message_length", 64 << 20)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            method, request = _request(kind, model)
            call = getattr(rpc.ClassifierStub(channel), method)
            latencies: list[float] = []
            start = time.perf_counter()
            measure_from, end = start + warmup_s, start + warmup_s + seconds

            calls = 0

            async def caller() -> None:
                nonlocal calls
                while (t := time.perf_counter()) < end:
                    await call(request, timeout=30)
                    calls += 1
                    if t >= measure_from:
                        latencies.append(time.perf_counter() - t)

            await asyncio.gather(*(caller() for _ in range(callers)))
            return latencies, calls

    out.put(asyncio.run(run()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(address: str, kind: str, callers: int, processes: int, warmup_s: float,
            seconds: float, server_pid: int, model: str = "mlp"
            ) -> tuple[float, float, float, float]:
    """(calls/s, p50 ms, p99 ms, server CPU µs per call) over `seconds`, load split over
    `processes`; the CPU figure covers the warm-up too, divided by every call made."""
    out: mp.Queue = mp.Queue()
    shares = [callers // processes + (i < callers % processes) for i in range(processes)]
    procs = [mp.Process(target=load, args=(address, kind, model, n, warmup_s, seconds, out))
             for n in shares if n]
    cpu_before = cpu_seconds(server_pid)
    for p in procs:
        p.start()
    # A load process that dies never reports: give up on it rather than wait forever.
    results = [out.get(timeout=warmup_s + seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    cpu_per_call = (cpu_seconds(server_pid) - cpu_before) / sum(n for _, n in results) * 1e6
    latencies = np.array([t for times, _ in results for t in times])
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return len(latencies) / seconds, p50, p99, cpu_per_call


class NullClassifier(rpc.ClassifierServicer):
    """Answers without looking at the image: what the gRPC stack alone allows here."""

    answer = pb.ClassifyResponse(prediction=pb.Prediction(digit=0, confidence=0.1,
                                                          probabilities=[0.1] * 10))

    def Classify(self, request, context):
        return self.answer


def serve_null(port: int, threads: int) -> None:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    rpc.add_ClassifierServicer_to_server(NullClassifier(), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def wait_healthy(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30,
                                                  wait_for_ready=True)


def start_server(redis_url: str, prefix: str, folder: str, args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "nndl.server.app", "--port", str(port), "--metrics-port", "0",
           "--redis-url", redis_url, "--prefix", prefix, "--registry-dir", folder,
           "--default-model", "mlp", "--threads", str(args.threads),
           "--batch-max-images", str(args.batch_max_images),
           "--batch-max-wait-ms", str(args.batch_max_wait_ms), "--log-level", "WARNING"]
    server = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    address = f"127.0.0.1:{port}"
    wait_healthy(address)
    return server, address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=64, help="server gRPC threads")
    parser.add_argument("--batch-max-images", type=int, default=64)
    parser.add_argument("--batch-max-wait-ms", type=float, default=0.0)
    parser.add_argument("--ceiling", action="store_true",
                        help="single-image calls against a do-nothing servicer instead")
    args = parser.parse_args()
    if args.ceiling:
        return ceiling(args)

    local = None if os.environ.get("REDIS_URL") else LocalRedis()
    redis_url = os.environ.get("REDIS_URL") or local.url
    prefix = f"nndl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="nndl-bench-") as folder:
        publish_models(redis_url, prefix, folder)
        server, address = start_server(redis_url, prefix, folder, args)
        try:
            print(f"batch_max_images={args.batch_max_images} "
                  f"batch_max_wait_ms={args.batch_max_wait_ms} threads={args.threads} "
                  f"cpus={os.cpu_count()}\n")
            print("| call | callers | calls/s | images/s | p50 ms | p99 ms | server CPU µs/call |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            runs = [("single", 1, "mlp"), ("single", 8, "mlp"), ("single", 64, "mlp"),
                    ("batch-packed", 2, "mlp"), ("batch-messages", 2, "mlp"),
                    *(("batch-packed", 2, name) for name in CONV_MODELS)]
            for kind, callers, model in runs:
                processes = min(callers, args.load_processes)
                rate, p50, p99, cpu = measure(address, kind, callers, processes, args.warmup,
                                              args.seconds, server.pid, model)
                images = rate * (1 if kind == "single" else BATCH)
                label = {"single": "Classify (1 image)",
                         "batch-packed": "ClassifyBatch 1,000 u8, packed answer",
                         "batch-messages": "ClassifyBatch 1,000 u8, Prediction messages"}[kind]
                print(f"| {label}, {model} | {callers} | {rate:,.0f} | {images:,.0f} | "
                      f"{p50:.2f} | {p99:.2f} | {cpu:,.0f} |", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
            if local is not None:
                local.stop()
    return 0


def ceiling(args) -> int:
    port = free_port()
    server = mp.Process(target=serve_null, args=(port, args.threads), daemon=True)
    server.start()
    address = f"127.0.0.1:{port}"
    wait_healthy(address)
    print("| do-nothing servicer | callers | calls/s | p50 ms | p99 ms | server CPU µs/call |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for callers in (1, 8, 64):
        rate, p50, p99, cpu = measure(address, "single", callers,
                                      min(callers, args.load_processes), args.warmup,
                                      args.seconds, server.pid)
        print(f"| Classify | {callers} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:,.0f} |",
              flush=True)
    server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
