"""Bearer token, TLS and mutual TLS, each through a real server."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from nndl.server.app import build
from nndl.trainer.jobs import JobState
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc
from tests.server.conftest import publish

TOKEN = "s3cret-token"
IMAGE = pb.Image(pixels_u8=bytes(784))


@pytest.fixture
def serve(settings):
    """Starts servers with changed settings; stops them after the test."""
    running = []

    def start(**changes):
        r = build(dataclasses.replace(settings, **changes))
        running.append(r)
        return r.port

    yield start
    for r in running:
        r.stop(0.5)


def _code(call, *args, **kwargs) -> grpc.StatusCode:
    try:
        call(*args, timeout=10, **kwargs)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("guard_classify", [False, True])
def test_the_token_guards_jobs_admin_and_optionally_classification(
        serve, registry, guard_classify) -> None:
    publish(registry, "digits", seed=1)
    port = serve(token=TOKEN, token_for_classify=guard_classify)
    good = [("authorization", f"Bearer {TOKEN}")]
    bad = [("authorization", "Bearer wrong")]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        training, models, classifier = rpc.TrainingStub(ch), rpc.ModelsStub(ch), \
            rpc.ClassifierStub(ch)
        submit = pb.SubmitJobRequest(preset="ch99")  # passes the token, then fails validation
        for metadata in (None, bad):
            assert _code(training.SubmitJob, submit, metadata=metadata) == \
                grpc.StatusCode.UNAUTHENTICATED
            assert _code(training.CancelJob, pb.CancelJobRequest(id="x"), metadata=metadata) \
                == grpc.StatusCode.UNAUTHENTICATED
            assert _code(models.SetAlias, pb.SetAliasRequest(name="digits", alias="a",
                                                             version=1), metadata=metadata) \
                == grpc.StatusCode.UNAUTHENTICATED
        assert _code(training.SubmitJob, submit, metadata=good) == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert _code(training.CancelJob, pb.CancelJobRequest(id="x"), metadata=good) == \
            grpc.StatusCode.NOT_FOUND
        assert _code(training.ListJobs, pb.ListJobsRequest()) == grpc.StatusCode.OK

        classify = pb.ClassifyRequest(model="digits", image=IMAGE)
        expected = grpc.StatusCode.UNAUTHENTICATED if guard_classify else grpc.StatusCode.OK
        assert _code(classifier.Classify, classify) == expected
        assert _code(classifier.ClassifyBatch, pb.ClassifyBatchRequest(
            model="digits", images=[IMAGE])) == expected
        assert _code(classifier.Classify, classify, metadata=good) == grpc.StatusCode.OK


def test_refused_calls_are_counted_and_streams_are_timed_to_their_end(
        settings, registry) -> None:
    from nndl.trainer.presets import resolve

    running = build(dataclasses.replace(settings, token=TOKEN))
    try:
        queue = settings.queue(registry.client)
        job = queue.submit(resolve("ch1", {"epochs": 1}))
        queue.start(job.id, "w")
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            training = rpc.TrainingStub(ch)
            assert _code(training.CancelJob, pb.CancelJobRequest(id=job.id)) == \
                grpc.StatusCode.UNAUTHENTICATED
            stream = training.WatchJob(pb.WatchJobRequest(id=job.id, from_start=True),
                                       timeout=10)
            assert [next(stream).kind for _ in range(2)] == ["queued", "started"]
            time.sleep(0.3)
            queue.finish(job.id, JobState.FAILED, error="boom")
            assert [e.kind for e in stream] == ["failed"]
        sample = running.metrics.registry.get_sample_value
        assert sample("nndl_server_requests_total",
                      {"method": "CancelJob", "code": "UNAUTHENTICATED"}) == 1.0
        assert sample("nndl_server_requests_total", {"method": "WatchJob", "code": "OK"}) == 1.0
        # The stream's duration is its whole length, not the moment it was set up.
        assert sample("nndl_server_request_duration_seconds_sum", {"method": "WatchJob"}) > 0.3
    finally:
        running.stop(0.5)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                     ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                 "-keyout", f"{who}.key", "-out", f"{who}.csr", cwd=d)
        (d / f"{who}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "1", "-extfile", f"{who}.ext",
                 "-out", f"{who}.pem", cwd=d)
    return d


def _classify_code(port: int, creds: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    address = f"127.0.0.1:{port}"
    with (grpc.secure_channel(address, creds) if creds else grpc.insecure_channel(address)) as ch:
        return _code(rpc.ClassifierStub(ch).Classify,
                     pb.ClassifyRequest(model="digits", image=IMAGE))


def test_tls_and_mutual_tls(serve, registry, certs) -> None:
    publish(registry, "digits", seed=1)
    ca = (certs / "ca.pem").read_bytes()
    client_key, client_cert = (certs / "client.key").read_bytes(), \
        (certs / "client.pem").read_bytes()
    tls = serve(tls_cert=str(certs / "server.pem"), tls_key=str(certs / "server.key"))
    assert _classify_code(tls, grpc.ssl_channel_credentials(ca)) == grpc.StatusCode.OK
    assert _classify_code(tls, None) == grpc.StatusCode.UNAVAILABLE  # plaintext is refused

    mtls = serve(tls_cert=str(certs / "server.pem"), tls_key=str(certs / "server.key"),
                 tls_client_ca=str(certs / "ca.pem"))
    assert _classify_code(mtls, grpc.ssl_channel_credentials(ca)) == grpc.StatusCode.UNAVAILABLE
    with_cert = grpc.ssl_channel_credentials(ca, client_key, client_cert)
    assert _classify_code(mtls, with_cert) == grpc.StatusCode.OK
