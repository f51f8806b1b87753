"""The metrics exposition: the documented names are there and promtool finds no fault."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest
from prometheus_client import generate_latest

from nndl.v1 import nndl_pb2 as pb
from tests.server.conftest import publish

NAMES = (
    "nndl_server_requests_total", "nndl_server_request_duration_seconds",
    "nndl_server_in_flight_requests", "nndl_server_batch_size_images",
    "nndl_server_forward_pass_duration_seconds", "nndl_server_batch_queue_images",
    "nndl_server_images_classified_total", "nndl_server_prediction_confidence_ratio",
    "nndl_server_model_loads_total", "nndl_server_model_version_info",
)


@pytest.fixture
def exposition(server, classifier, registry) -> str:
    running, _ = server
    publish(registry, "digits", seed=1)
    image = pb.Image(pixels_u8=bytes(784))
    classifier.Classify(pb.ClassifyRequest(model="digits", image=image))
    classifier.ClassifyBatch(pb.ClassifyBatchRequest(model="digits", images=[image] * 5))
    with pytest.raises(grpc.RpcError):
        classifier.Classify(pb.ClassifyRequest(model="nosuch", image=image))
    return generate_latest(running.metrics.registry).decode()


def test_the_documented_series_are_exported(server, exposition) -> None:
    for name in NAMES:
        assert f"# TYPE {name} " in exposition, name
    running, _ = server
    value = running.metrics.registry.get_sample_value
    assert value("nndl_server_requests_total", {"method": "Classify", "code": "OK"}) == 1
    assert value("nndl_server_requests_total",
                 {"method": "Classify", "code": "NOT_FOUND"}) == 1
    assert value("nndl_server_model_version_info", {"model": "digits", "version": "1"}) == 1
    images = sum(value("nndl_server_images_classified_total",
                       {"model": "digits", "version": "1", "digit": str(d)}) or 0
                 for d in range(10))
    assert images == 6


def test_promtool_finds_no_lint_problem(exposition) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, text=True,
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
