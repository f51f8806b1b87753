"""The `DigitsClient` library against a real server: inputs, jobs, retries, token, TLS."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from PIL import Image

from nndl.client import ClientError, DigitsClient
from nndl.client.cli import EXIT_OK, EXIT_REFUSED, main
from nndl.client.client import STATE_NAMES
from nndl.trainer.local_redis import free_port
from tests.client.conftest import TINY_JOB

pytestmark = pytest.mark.timeout(120)


def test_paths_bytes_and_pil_images_are_the_same_picture(live, digit_files) -> None:
    folder, _ = digit_files
    path = folder / "digit-2.png"
    with DigitsClient(live.address) as c, Image.open(path) as pil:
        answers = [c.classify(path), c.classify(str(path)), c.classify(path.read_bytes()),
                   c.classify(pil)]
        many = c.classify_batch([path, path.read_bytes(), pil])
    assert len({tuple(a.probabilities) for a in answers}) == 1
    # In a batch the same picture may differ in the last float bits (BLAS blocking).
    assert np.allclose([m.probabilities for m in many], [answers[0].probabilities] * 3,
                       atol=1e-5)
    assert answers[0].model == "mnist" and answers[0].version == 1


def test_arrays_one_or_many_in_either_pixel_format(live, mnist) -> None:
    x = mnist.test[0][:5]  # (5, 784) floats in 0..1
    u8 = (x * 255).round().astype(np.uint8)
    with DigitsClient(live.address) as c:
        batch_f32 = c.classify_batch(x.reshape(5, 28, 28))
        batch_u8 = c.classify_batch(u8)
        one = c.classify(u8[3].reshape(28, 28))
    assert [r.digit for r in batch_f32] == [r.digit for r in batch_u8]
    assert np.allclose(one.probabilities, batch_u8[3].probabilities, atol=1e-5)
    assert abs(sum(one.probabilities) - 1) < 1e-4 and one.confidence == max(one.probabilities)


def test_bad_arrays_are_caught_before_they_are_sent(live) -> None:
    with DigitsClient(live.address) as c:
        with pytest.raises(ClientError, match="divide 0..255 values by 255"):
            c.classify(np.full((28, 28), 200.0))
        with pytest.raises(ClientError, match="784 pixels, not 729"):
            c.classify_batch(np.zeros((2, 27, 27), dtype=np.uint8))
        with pytest.raises(ClientError, match="cannot classify a dict"):
            c.classify({"pixels": []})  # type: ignore[arg-type]
        with pytest.raises(ClientError, match="the batch holds no images"):
            c.classify_batch(np.zeros((0, 28, 28), dtype=np.uint8))
        with pytest.raises(ClientError, match="of int64 is neither uint8"):
            c.classify_batch(np.full((1, 28, 28), 7, dtype=np.int64))
        with pytest.raises(ClientError, match="cannot read .*nowhere.png"):
            c.classify("nowhere.png")


def test_submit_watch_wait_and_history(live) -> None:
    with DigitsClient(live.address) as c:
        job = c.submit(spec={**TINY_JOB, "layers": [784, 20, 10], "model": "lib-spec"})
        kinds = [e.kind for e in c.watch(job.id)]
        final = c.wait(job.id, timeout=60)
        assert kinds[0] == "queued" and kinds[-1] == "succeeded" and kinds.count("epoch") == 2
        assert STATE_NAMES[final.state] == "succeeded" and final.result.model == "lib-spec"
        from_events = c.history(job.id)

        # Once the job's events have expired the curves come from the model's lineage.
        redis.Redis.from_url(live.settings.redis_url).delete(
            live.settings.keys().job_events(job.id))
        from_lineage = c.history(job.id)
    assert [len(m) for m in from_events] == [len(m) for m in from_lineage] == [2]
    for a, b in zip(from_events[0], from_lineage[0], strict=True):
        assert a.epoch == b.epoch
        assert a.validation_accuracy == pytest.approx(b.validation_accuracy)
        assert a.training_cost == pytest.approx(b.training_cost, rel=1e-6)


def test_aliases_and_model_listing(live) -> None:
    with DigitsClient(live.address) as c:
        info = c.set_alias("mnist", "lib-alias", 1)
        assert info.aliases["lib-alias"] == 1
        assert c.resolve("mnist@lib-alias") == ("mnist", 1) == c.resolve("mnist")
        assert c.classify(np.zeros(784, np.uint8), model="mnist@lib-alias").version == 1
        assert "lib-alias" not in c.delete_alias("mnist", "lib-alias").aliases
        assert "mnist" in {m.name for m in c.models()}


def test_idempotent_calls_ride_out_a_server_restart(settings) -> None:
    from nndl.server.app import build

    port = free_port()
    same_port = dataclasses.replace(settings, port=port)
    first = build(same_port)
    started: list = []
    with DigitsClient(f"127.0.0.1:{port}", timeout=5) as c:
        assert c.jobs(5) == []  # reached once: from now on it waits for a restart
        first.stop(0.1)
        timer = threading.Timer(1.5, lambda: started.append(build(same_port)))
        timer.start()
        try:
            begun = time.monotonic()
            assert c.jobs(5) == []  # answered by the restarted server
            assert time.monotonic() - begun >= 1.0
        finally:
            timer.join()
            for running in started:
                running.stop(1.0)


def test_a_wrong_address_is_reported_within_seconds() -> None:
    with DigitsClient(f"127.0.0.1:{free_port()}", timeout=5) as c:
        begun = time.monotonic()
        with pytest.raises(ClientError, match="cannot reach"):
            c.jobs(5)
        assert time.monotonic() - begun < 5


def test_a_job_submission_is_not_retried(capsys) -> None:
    with DigitsClient("127.0.0.1:9", retries=5, timeout=2) as c:
        begun = time.monotonic()
        with pytest.raises(ClientError, match="cannot reach") as e:
            c.submit("ch1")
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - begun < 0.5  # no backoff: it might have been queued


def test_the_token_guards_changes_and_comes_from_the_environment(settings, monkeypatch,
                                                                 capsys) -> None:
    from nndl.server.app import build

    running = build(dataclasses.replace(settings, token="s3cret"))
    address = f"127.0.0.1:{running.port}"
    try:
        code = main(["--server", address, "train", "--preset", "ch1", "--detach"])
        err = capsys.readouterr().err
        assert code == EXIT_REFUSED and "--token or NNDL_TOKEN" in err
        monkeypatch.setenv("NNDL_TOKEN", "s3cret")
        code = main(["--server", address, "train", "--preset", "ch1", "--detach"])
        job_id = capsys.readouterr().out.strip()
        assert code == EXIT_OK
        with DigitsClient(address, token="s3cret") as c:
            # Nobody trains on this server: the job waits, and so would we.
            with pytest.raises(ClientError, match=f"job {job_id} did not finish within 1 s"):
                c.wait(job_id, timeout=1)
            assert STATE_NAMES[c.cancel(job_id).state] == "cancelled"
    finally:
        running.stop(1.0)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl for a certificate")
def test_tls_with_a_private_ca(settings, live, tmp_path: Path) -> None:
    from nndl.server.app import build

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    running = build(dataclasses.replace(settings, tls_cert=str(cert), tls_key=str(key)))
    address = f"127.0.0.1:{running.port}"
    try:
        with DigitsClient(address, tls_ca=cert) as c:
            assert c.jobs(1) == []
        with DigitsClient(address, retries=1, timeout=3) as c, pytest.raises(ClientError):
            c.jobs(1)  # plain text to a TLS server
        with (DigitsClient(live.address, tls_ca=cert, retries=1, timeout=3) as c,
              pytest.raises(ClientError, match="TLS handshake .* failed: the server there may "
                                               "not use TLS")):
            c.jobs(1)  # TLS to a plain-text server
        with pytest.raises(ClientError, match="cannot read the TLS CA certificate"):
            DigitsClient(address, tls_ca=tmp_path / "missing.pem")
    finally:
        running.stop(1.0)


def test_a_pil_image_in_any_mode(live) -> None:
    rgba = Image.new("RGBA", (60, 80), (255, 255, 255, 255))
    rgba.paste((0, 0, 0, 255), (25, 10, 35, 70))  # a thick vertical stroke: a one
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    with DigitsClient(live.address) as c:
        assert c.classify(rgba).probabilities == c.classify(buf.getvalue()).probabilities
