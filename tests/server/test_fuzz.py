"""Property-based fuzzing of every request field: only documented codes, the server lives.

Documented codes: OK, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION (a version that
does not load), RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED. INTERNAL or UNKNOWN would mean a
request found a bug.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc
from tests.server.conftest import publish

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
           grpc.StatusCode.DEADLINE_EXCEEDED}
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

models = st.one_of(st.sampled_from(["", "fz", "fz@1", "fz@2", "fz@0", "fz@stable", "fz@latest",
                                    "fz@99999999999999999999", "fz@²", "fz@-1", " fz ",
                                    "fz@@", "@", "nosuch@1"]),
                   st.text(max_size=80))
lengths = st.one_of(st.just(784), st.integers(0, 2000))
u8_images = lengths.flatmap(lambda n: st.binary(min_size=n, max_size=n))
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
f32_images = lengths.flatmap(lambda n: st.lists(floats, min_size=n, max_size=n))
encoded = st.one_of(st.binary(max_size=2000),
                    st.binary(max_size=500).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
                    st.binary(max_size=500).map(lambda b: b"GIF89a" + b))
images = st.one_of(st.just(pb.Image()),
                   u8_images.map(lambda b: pb.Image(pixels_u8=b)),
                   f32_images.map(lambda v: pb.Image(pixels_f32=pb.FloatPixels(values=v))),
                   encoded.map(lambda b: pb.Image(encoded=b)))
packed = st.builds(pb.PackedImages, format=st.integers(-3, 5), count=st.integers(0, 2**32 - 1),
                   data=st.one_of(st.binary(max_size=4000),
                                  st.integers(0, 3).map(lambda n: bytes(784 * n))))
timeouts = st.one_of(st.just(10.0), st.floats(0.0001, 0.01))


def _code(call, request, timeout: float) -> grpc.StatusCode:
    try:
        call(request, timeout=timeout)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


@pytest.fixture
def stubs(server, registry, channel):
    publish(registry, "fz", seed=1)
    publish(registry, "fz", seed=2)
    registry.set_alias("fz", "stable", 1)
    yield rpc.ClassifierStub(channel), rpc.ModelsStub(channel), rpc.TrainingStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING


@FUZZ
@given(model=models, image=images, timeout=timeouts)
def test_classify(stubs, model, image, timeout) -> None:
    classifier, _, _ = stubs
    assert _code(classifier.Classify, pb.ClassifyRequest(model=model, image=image),
                 timeout) in ALLOWED


@FUZZ
@given(model=models, many=st.lists(images, max_size=6), packed=st.none() | packed,
       packed_response=st.booleans(), timeout=timeouts)
def test_classify_batch(stubs, model, many, packed, packed_response, timeout) -> None:
    classifier, _, _ = stubs
    request = pb.ClassifyBatchRequest(model=model, images=many, packed=packed,
                                      packed_response=packed_response)
    assert _code(classifier.ClassifyBatch, request, timeout) in ALLOWED


@FUZZ
@given(model=models, name=st.text(max_size=70), alias=st.text(max_size=70),
       version=st.integers(-2**63, 2**63 - 1), book_json=st.binary(max_size=300))
def test_metadata_and_admin(stubs, model, name, alias, version, book_json) -> None:
    classifier, admin, _ = stubs
    assert _code(classifier.GetModel, pb.GetModelRequest(model=model), 10) in ALLOWED
    assert _code(classifier.ListModels, pb.ListModelsRequest(), 10) in ALLOWED
    assert _code(admin.SetAlias, pb.SetAliasRequest(name=name, alias=alias, version=version),
                 10) in ALLOWED
    assert _code(admin.DeleteAlias, pb.DeleteAliasRequest(name=name, alias=alias), 10) in ALLOWED
    assert _code(admin.ImportModel, pb.ImportModelRequest(name=name, book_json=book_json),
                 10) in ALLOWED


@FUZZ
@given(job_id=st.text(max_size=80), preset=st.text(max_size=20) | st.sampled_from(["ch1", "ch3"]),
       spec_json=st.text(max_size=200) | st.sampled_from(['{"epochs": -1}', "[]", "{}"]),
       limit=st.integers(-2**31, 2**31 - 1), from_start=st.booleans())
def test_training(stubs, job_id, preset, spec_json, limit, from_start) -> None:
    _, _, training = stubs
    assert _code(training.GetJob, pb.GetJobRequest(id=job_id), 10) in ALLOWED
    assert _code(training.CancelJob, pb.CancelJobRequest(id=job_id), 10) in ALLOWED
    assert _code(training.ListJobs, pb.ListJobsRequest(limit=limit), 10) in ALLOWED
    assert _code(training.SubmitJob, pb.SubmitJobRequest(preset=preset, spec_json=spec_json),
                 10) in ALLOWED
    watch = training.WatchJob(pb.WatchJobRequest(id=job_id, from_start=from_start), timeout=0.2)
    assert _code(lambda r, timeout: list(watch), None, 0.2) in ALLOWED
