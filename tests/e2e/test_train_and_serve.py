"""The whole path: a job over gRPC, a real worker, the published version served."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from nndl.client import ClientError, DigitsClient
from nndl.client.client import STATE_NAMES

pytestmark = pytest.mark.timeout(240)


def test_job_is_trained_published_and_served(server, worker, mnist) -> None:
    _, address = server
    with DigitsClient(address) as c:
        job = c.submit("ch3", epochs=3, train_size=10_000, init="scaled", model="e2e")
        events = [e.kind for e in c.watch(job.id)]
        final = c.job(job.id)
        assert STATE_NAMES[final.state] == "succeeded", final.error
        assert events[0] == "queued" and events[-1] == "succeeded"
        assert events.count("epoch") == 3
        assert final.result.model == "e2e" and final.result.version == 1
        assert final.result.book_accuracy == pytest.approx(0.9549)

        x, y = mnist.test
        results = c.classify_batch((x[:2000] * 255).round().astype(np.uint8), model="e2e")
        accuracy = np.mean([r.digit == t for r, t in zip(results, y[:2000], strict=True)])
        assert accuracy >= 0.90
        assert {(r.model, r.version) for r in results} == {("e2e", 1)}
        assert all(abs(sum(r.probabilities) - 1.0) < 1e-4 for r in results[:10])

        one = c.classify(x[0].reshape(28, 28), model="e2e@1")
        assert one.digit == results[0].digit and one.version == 1


def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(server, worker) -> None:
    _, address = server
    with DigitsClient(address) as c:
        with pytest.raises(ClientError, match="unknown preset 'ch99'") as e:
            c.submit("ch99")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT

        with pytest.raises(ClientError, match="eta must be between") as e:
            c.submit("ch1", eta=-0.5)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT

        with pytest.raises(ClientError, match="784") as e:
            c.classify(np.zeros((27, 28), dtype=np.uint8))

        with pytest.raises(ClientError, match="no model named 'nosuchmodel'") as e:
            c.classify(np.zeros((28, 28), dtype=np.uint8), model="nosuchmodel")
        assert e.value.code == grpc.StatusCode.NOT_FOUND

        assert c.jobs(5) == []  # still answering, and nothing bad was queued
