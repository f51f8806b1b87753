"""The Classifier API end to end over a real server: answers, references, metadata, errors."""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nndl.server.app import build
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc
from tests.server.conftest import expected, publish


def _u8(x: np.ndarray) -> np.ndarray:
    return (x * 255).round().astype(np.uint8)


def test_classify_and_batch_agree_with_the_network(classifier, registry) -> None:
    version, net = publish(registry, "digits", seed=1)
    x = _u8(np.random.default_rng(0).random((50, 784), dtype=np.float32))
    want = expected(net, x.astype(np.float32) / 255)

    one = classifier.Classify(pb.ClassifyRequest(model="digits",
                                                 image=pb.Image(pixels_u8=x[0].tobytes())))
    assert (one.model, one.version) == ("digits", version)
    np.testing.assert_allclose(one.prediction.probabilities, want[0], rtol=1e-5, atol=1e-6)
    assert one.prediction.digit == want[0].argmax()

    listed = classifier.ClassifyBatch(pb.ClassifyBatchRequest(
        model="digits", images=[pb.Image(pixels_u8=row.tobytes()) for row in x]))
    packed = classifier.ClassifyBatch(pb.ClassifyBatchRequest(
        model="digits", packed=pb.PackedImages(format=pb.PIXEL_FORMAT_U8, count=50,
                                               data=x.tobytes()), packed_response=True))
    assert [p.digit for p in listed.predictions] == want.argmax(axis=1).tolist()
    assert packed.packed.count == 50 and packed.version == version
    assert list(packed.packed.digits) == want.argmax(axis=1).tolist()
    probs = np.frombuffer(packed.packed.probabilities, "<f4").reshape(50, 10)
    np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)

    f32 = classifier.Classify(pb.ClassifyRequest(model="digits", image=pb.Image(
        pixels_f32=pb.FloatPixels(values=(x[0] / 255).tolist()))))
    assert f32.prediction.digit == one.prediction.digit


def test_references_by_name_version_and_alias(classifier, registry, channel) -> None:
    v1, _ = publish(registry, "refs", seed=1)
    v2, _ = publish(registry, "refs", seed=2)
    registry.set_alias("refs", "stable", v1)
    image = pb.Image(pixels_u8=bytes(784))
    for ref, version in [("refs", v2), ("refs@1", v1), ("refs@2", v2), ("refs@stable", v1)]:
        assert classifier.Classify(pb.ClassifyRequest(model=ref, image=image)).version == version

    info = classifier.GetModel(pb.GetModelRequest(model="refs@stable"))
    assert [v.version for v in info.versions] == [v1, v2]
    assert dict(info.aliases) == {"stable": v1} and info.loaded_version == v2
    assert '"seed": 1' in info.lineage_json
    names = [m.name for m in classifier.ListModels(pb.ListModelsRequest()).models]
    assert names == ["refs"]


@pytest.mark.parametrize(("request_", "code", "words"), [
    (pb.ClassifyRequest(model="refs", image=pb.Image(pixels_u8=b"\0" * 783)),
     grpc.StatusCode.INVALID_ARGUMENT, "image.pixels_u8 has 783 bytes"),
    (pb.ClassifyRequest(model="refs"), grpc.StatusCode.INVALID_ARGUMENT, "image is empty"),
    (pb.ClassifyRequest(model="refs", image=pb.Image(encoded=b"GIF89a nonsense")),
     grpc.StatusCode.INVALID_ARGUMENT, "image"),
    (pb.ClassifyRequest(model="Bad Name!", image=pb.Image(pixels_u8=bytes(784))),
     grpc.StatusCode.INVALID_ARGUMENT, "model name"),
    (pb.ClassifyRequest(model="refs@²", image=pb.Image(pixels_u8=bytes(784))),
     grpc.StatusCode.INVALID_ARGUMENT, "neither a version number nor an alias"),
    (pb.ClassifyRequest(model="nosuch", image=pb.Image(pixels_u8=bytes(784))),
     grpc.StatusCode.NOT_FOUND, "no model named 'nosuch'"),
    (pb.ClassifyRequest(model="refs@7", image=pb.Image(pixels_u8=bytes(784))),
     grpc.StatusCode.NOT_FOUND, "has no version 7"),
    (pb.ClassifyRequest(model="refs@beta", image=pb.Image(pixels_u8=bytes(784))),
     grpc.StatusCode.NOT_FOUND, "has no alias 'beta'"),
])
def test_classify_errors_name_what_is_wrong(classifier, registry, request_, code, words) -> None:
    publish(registry, "refs", seed=1)
    with pytest.raises(grpc.RpcError) as e:
        classifier.Classify(request_, timeout=10)
    assert e.value.code() == code
    assert words in e.value.details()


def test_batch_errors_name_the_image_index_and_limits(classifier, registry, settings) -> None:
    publish(registry, "refs", seed=1)
    images = [pb.Image(pixels_u8=bytes(784))] * 3 + [pb.Image(pixels_f32=pb.FloatPixels(
        values=[float("nan")] * 784))]
    cases = [
        (pb.ClassifyBatchRequest(model="refs", images=images), "images[3].pixels_f32"),
        (pb.ClassifyBatchRequest(model="refs"), "no images"),
        (pb.ClassifyBatchRequest(model="refs", packed=pb.PackedImages(
            format=pb.PIXEL_FORMAT_U8, count=2, data=bytes(784))), "packed.data has 784 bytes"),
        (pb.ClassifyBatchRequest(model="refs", packed=pb.PackedImages(
            count=1, data=bytes(784))), "packed.format"),
        (pb.ClassifyBatchRequest(model="refs", packed=pb.PackedImages(
            format=pb.PIXEL_FORMAT_U8, count=settings.max_batch_images + 1)), "limit"),
    ]
    for request, words in cases:
        with pytest.raises(grpc.RpcError) as e:
            classifier.ClassifyBatch(request, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert words in e.value.details()


def test_a_deadline_already_passed_does_no_work(classifier, registry, server) -> None:
    running, _ = server
    publish(registry, "refs", seed=1)
    request = pb.ClassifyBatchRequest(model="refs", packed=pb.PackedImages(
        format=pb.PIXEL_FORMAT_U8, count=20_000, data=bytes(784 * 20_000)))
    with pytest.raises(grpc.RpcError) as e:
        classifier.ClassifyBatch(request, timeout=0.001)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert running.metrics.batch_size._sum.get() == 0  # no forward pass ran


def test_health_per_service_and_reflection(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "nndl.v1.Classifier", "nndl.v1.Models", "nndl.v1.Training"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        health.Check(health_pb2.HealthCheckRequest(service="nndl.v1.Nothing"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(reflect.ServerReflectionInfo(iter([
        reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in answer.list_services_response.service}
    assert {"nndl.v1.Classifier", "nndl.v1.Models", "nndl.v1.Training",
            "grpc.health.v1.Health"} <= names


def test_message_and_batch_limits_are_configurable(settings, registry) -> None:
    publish(registry, "refs", seed=1)
    running = build(dataclasses.replace(settings, max_message_bytes=100_000,
                                        max_batch_images=50))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = rpc.ClassifierStub(channel)
            for count, code in ((200, grpc.StatusCode.RESOURCE_EXHAUSTED),  # 157 kB message
                                (60, grpc.StatusCode.INVALID_ARGUMENT),  # over 50 images
                                (50, grpc.StatusCode.OK)):
                request = pb.ClassifyBatchRequest(model="refs", packed=pb.PackedImages(
                    format=pb.PIXEL_FORMAT_U8, count=count, data=bytes(784 * count)))
                try:
                    stub.ClassifyBatch(request, timeout=10)
                    got = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    got = e.code()
                assert got == code, count
    finally:
        running.stop(0.5)
