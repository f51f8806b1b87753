"""Prometheus reads the configuration and rules, and scrapes a real server and trainer.

Needs the `prometheus` Debian package (promtool and the server); skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import MNIST_PATH
from tests.deploy.stack import DEPLOY, binary_or_skip, prometheus_config


def _promtool(*args: str) -> subprocess.CompletedProcess:
    tool = binary_or_skip("promtool")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60,
                          cwd=DEPLOY / "prometheus", check=False)


def test_promtool_accepts_the_configuration_and_its_rules() -> None:
    done = _promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    done = _promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def _wait_for(what: str, probe, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout_s:.0f} s; last: {last}")


def _loopback_config(ports: dict[str, int], rules: Path) -> dict:
    """The real configuration, with DNS discovery swapped for the loopback targets."""
    config = prometheus_config()
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in ports:
            del job["dns_sd_configs"]
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


@pytest.fixture
def prometheus_binary() -> str:
    """Prometheus itself; asked for first, so that no trainer starts where the test skips."""
    return binary_or_skip("prometheus")


@pytest.fixture
def trainer_metrics_port(prometheus_binary: str, redis_url: str, prefix: str, tmp_path: Path):
    """A real `nndl-trainer` process with its metrics endpoint on a free port.

    It loads MNIST before it serves metrics, from the tests' copy: a fresh machine has
    no cache, and a worker that cannot load MNIST exits.
    """
    from nndl.trainer.local_redis import free_port

    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST not found at {MNIST_PATH}; set NNDL_MNIST_PATH")
    port = free_port()
    env = {**os.environ, "NNDL_REDIS_URL": redis_url, "NNDL_PREFIX": prefix,
           "NNDL_METRICS_PORT": str(port), "NNDL_REGISTRY_DIR": str(tmp_path / "models"),
           "NNDL_BLOCK_MS": "200", "NNDL_MNIST_PATH": str(MNIST_PATH)}
    process = subprocess.Popen([sys.executable, "-m", "nndl.trainer.worker_main"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield port
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err.decode()[-2000:]


def test_prometheus_scrapes_a_server_and_a_trainer(server, prometheus_binary: str,
                                                  trainer_metrics_port: int,
                                                  tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    binary = prometheus_binary
    from prometheus_client import start_http_server

    from nndl.trainer.local_redis import free_port

    running, _address = server
    server_metrics_port = free_port()
    httpd, _thread = start_http_server(server_metrics_port, addr="127.0.0.1",
                                       registry=running.metrics.registry)
    web_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_loopback_config(
        {"nndl-server": server_metrics_port, "nndl-trainer": trainer_metrics_port},
        DEPLOY / "prometheus" / "alerts.yml")))
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    api = f"http://127.0.0.1:{web_port}/api/v1"
    try:
        def both_up():
            targets = _get(f"{api}/targets")["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            return health if health == {"nndl-server": "up", "nndl-trainer": "up"} else None

        _wait_for("both targets up", both_up)
        for metric in ("nndl_server_in_flight_requests", "nndl_trainer_running_jobs"):
            _wait_for(f"{metric} stored",
                      lambda m=metric: _get(f"{api}/query?query={m}")["data"]["result"])
        rules = _get(f"{api}/rules")["data"]["groups"]
        assert {g["name"] for g in rules} == {"nndl-server", "nndl-trainer"}
        assert all(r["health"] == "ok" for g in rules for r in g["rules"])
    finally:
        prometheus.terminate()
        _, err = prometheus.communicate(timeout=30)
        httpd.shutdown()
        httpd.server_close()
    assert prometheus.returncode == 0, err.decode()[-2000:]
