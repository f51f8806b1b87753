"""deploy/healthcheck.py: healthy on SERVING and on HTTP 200, unhealthy otherwise."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.deploy.stack import DEPLOY

SCRIPT = DEPLOY / "healthcheck.py"


@pytest.fixture(scope="module")
def healthcheck():
    spec = importlib.util.spec_from_file_location("healthcheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_serving_server_is_healthy_as_a_script(server) -> None:
    _running, address = server
    done = subprocess.run([sys.executable, str(SCRIPT), "grpc", address], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_a_server_that_is_not_serving_is_unhealthy(server, healthcheck, capsys) -> None:
    from grpc_health.v1 import health_pb2

    running, address = server
    assert healthcheck.main(["grpc", address, "--service", "nndl.v1.Classifier"]) == 0
    running.health.set("nndl.v1.Classifier", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.main(["grpc", address, "--service", "nndl.v1.Classifier"]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err
    assert healthcheck.main(["grpc", address, "--service", "no.such.Service"]) == 1


def test_nothing_listening_is_unhealthy(healthcheck, capsys) -> None:
    from nndl.trainer.local_redis import free_port

    port = free_port()
    assert healthcheck.main(["--timeout", "1", "grpc", f"127.0.0.1:{port}"]) == 1
    assert healthcheck.main(["http", f"http://127.0.0.1:{port}/metrics"]) == 1
    assert capsys.readouterr().err.count("unhealthy") == 2


def test_a_metrics_endpoint_is_healthy(healthcheck) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from nndl.trainer.local_redis import free_port

    port = free_port()
    httpd, _ = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        assert healthcheck.main(["http", f"http://127.0.0.1:{port}/metrics"]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
