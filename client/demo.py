"""`nndl-demo`: the whole product on one machine, end to end.

Starts Redis (a private one unless REDIS_URL is set), a trainer worker and the
server; submits a real training job on MNIST; waits for the published version;
sends the 10,000 test images through ClassifyBatch; prints the accuracy; stops
everything it started.
"""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack

from nndl.client.client import STATE_NAMES, DigitsClient
from nndl.client.progress import follow_job
from nndl.trainer.data import load_mnist
from nndl.trainer.local_redis import LocalRedis, free_port

DEFAULT_PRESET = "ch3-100"
# The default run: the book's ch3-100 network with the scaled initialisation of chapter 3,
# shortened to 10 epochs so that it ends in about a minute on two cores.
DEFAULT_OVERRIDES = {"init": "scaled", "epochs": 10}


def _start(ctx: ExitStack, args: list[str], env: dict, log_path: str) -> subprocess.Popen:
    log = ctx.enter_context(open(log_path, "w"))  # noqa: SIM115 (closed by the stack)
    proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log, stderr=log)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    ctx.callback(stop)
    return proc


def _abort_if_it_dies(proc: subprocess.Popen, name: str, log_path: str,
                      done: threading.Event) -> None:
    """Interrupts the demo when a process it needs exits early, instead of waiting forever."""

    def watch() -> None:
        proc.wait()
        if not done.is_set():
            print(f"\nthe {name} exited with code {proc.returncode}; see {log_path}",
                  file=sys.stderr)
            _thread.interrupt_main()

    threading.Thread(target=watch, daemon=True).start()


def _wait_for_server(client: DigitsClient, proc: subprocess.Popen, log_path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited; see {log_path}")
        try:
            client.jobs(1)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"the server did not start within 60 s; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default=DEFAULT_PRESET, help="the book preset to train")
    ap.add_argument("--epochs", type=int, default=None,
                    help=f"default: 10 for {DEFAULT_PRESET}, else the preset's")
    ap.add_argument("--mnist", default=os.environ.get("NNDL_MNIST_PATH", ""))
    ap.add_argument("--workdir", default="", help="logs and models (default: a temp folder)")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops what the demo started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    try:
        return _run(args)
    except KeyboardInterrupt:
        return 1


def _run(args: argparse.Namespace) -> int:
    workdir = args.workdir or tempfile.mkdtemp(prefix="nndl-demo-")
    print("loading MNIST (downloaded and verified on first use) ...", flush=True)
    mnist = load_mnist(args.mnist or None)  # fills the cache the trainer then reads
    done = threading.Event()  # set before the ExitStack stops the processes on purpose
    with ExitStack() as ctx:
        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            redis_url = ctx.enter_context(LocalRedis()).url
            print(f"started a private Redis at {redis_url}")
        port = free_port()
        # One BLAS thread each: the trainer and the server share the cores, and at
        # mini-batch 10 extra BLAS threads only spin.
        env = {"OPENBLAS_NUM_THREADS": "1", **os.environ, "NNDL_REDIS_URL": redis_url,
               "NNDL_PREFIX": f"nndl-demo-{os.getpid()}",
               "NNDL_REGISTRY_DIR": os.path.join(workdir, "models"),
               "NNDL_PORT": str(port), "NNDL_METRICS_PORT": "0",
               "NNDL_MNIST_PATH": args.mnist}
        trainer_log, server_log = (os.path.join(workdir, n) for n in ("trainer.log",
                                                                       "server.log"))
        trainer = _start(ctx, ["nndl.trainer.worker_main"], env, trainer_log)
        server = _start(ctx, ["nndl.server.app"], env, server_log)
        _abort_if_it_dies(trainer, "trainer", trainer_log, done)
        _abort_if_it_dies(server, "server", server_log, done)
        ctx.callback(done.set)  # runs first on the way out: callbacks run last-in, first-out
        print(f"trainer and server started (logs in {workdir})")
        client = ctx.enter_context(DigitsClient(f"127.0.0.1:{port}"))
        _wait_for_server(client, server, server_log)

        spec = dict(DEFAULT_OVERRIDES) if args.preset == DEFAULT_PRESET else {}
        if args.epochs is not None:
            spec["epochs"] = args.epochs
        started = time.monotonic()
        job = client.submit(args.preset, **spec)
        print(f"submitted job {job.id}: preset {args.preset}, {spec}")
        final = follow_job(client, job.id, out=sys.stdout)
        if STATE_NAMES[final.state] != "succeeded":
            print(f"the job {STATE_NAMES[final.state]}: {final.error}")
            return 1
        print(f"trained and published in {time.monotonic() - started:.0f} s")

        x, y = mnist.test
        results = client.classify_batch(x)  # float32, as the trainer tested: same accuracy
        right = sum(int(r.digit == t) for r, t in zip(results, y, strict=True))
        print(f"classified the {len(y)} MNIST test images through gRPC with "
              f"{results[0].model} version {results[0].version}")
        print(f"test accuracy: {100 * right / len(y):.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
