"""`DigitsClient`: the Python library for classifying digits and running jobs.

>>> from nndl.client import DigitsClient                   # doctest: +SKIP
>>> c = DigitsClient("127.0.0.1:50051")                    # doctest: +SKIP
>>> c.classify("seven.png").digit                          # doctest: +SKIP
7
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc

FINAL_STATES = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
STATE_NAMES = {v: k.removeprefix("JOB_STATE_").lower() for k, v in pb.JobState.items()}


class ClientError(Exception):
    """A failed call, as one sentence for people; `code` is the gRPC status code."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is the server running at {address}? (set --server or "
                                 "NNDL_SERVER)",
    grpc.StatusCode.UNAUTHENTICATED: "pass the server's token with --token or NNDL_TOKEN",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the server did not answer in time; try a longer "
                                       "--timeout",
}


@dataclass(frozen=True)
class Classification:
    digit: int
    confidence: float
    probabilities: list[float]
    model: str
    version: int


ImageLike = str | Path | bytes | np.ndarray | Any  # Any: a PIL image


def image_message(image: ImageLike) -> pb.Image:
    """Files and bytes go as encoded images; arrays as raw 28×28 pixels."""
    if isinstance(image, str | Path):
        return pb.Image(encoded=Path(image).read_bytes())
    if isinstance(image, bytes):
        return pb.Image(encoded=image)
    if isinstance(image, np.ndarray):
        flat = image.reshape(-1)
        if flat.size != 784:
            raise ClientError(f"an array image must hold 28×28 = 784 pixels, not {flat.size}")
        if flat.dtype == np.uint8:
            return pb.Image(pixels_u8=flat.tobytes())
        return pb.Image(pixels_f32=pb.FloatPixels(values=flat.astype(np.float32).tolist()))
    if hasattr(image, "save"):  # a PIL image: send it losslessly as PNG
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return pb.Image(encoded=buf.getvalue())
    raise ClientError(f"cannot classify a {type(image).__name__}: pass a path, bytes, an "
                      "array or a PIL image")


class DigitsClient:
    """Talks to one nndl server. Calls raise ClientError with a sentence for people."""

    def __init__(self, address: str = "127.0.0.1:50051", token: str = "",
                 tls_ca: str = "", timeout: float = 30.0, retries: int = 3) -> None:
        self.address, self.timeout, self.retries = address, timeout, retries
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.max_send_message_length", 256 * 1024 * 1024)]
        if tls_ca:
            creds = grpc.ssl_channel_credentials(Path(tls_ca).read_bytes())
            self.channel = grpc.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.classifier = rpc.ClassifierStub(self.channel)
        self.models_admin = rpc.ModelsStub(self.channel)
        self.training = rpc.TrainingStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> DigitsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, idempotent: bool = True, timeout: float | None = None):
        attempts = self.retries if idempotent else 1
        for attempt in range(attempts):
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise self._error(e) from None
        raise AssertionError("unreachable")

    def _error(self, e: grpc.RpcError) -> ClientError:
        code = e.code()
        message = e.details() or code.name.lower()
        hint = _HINTS.get(code)
        if hint:
            message = f"{message}; {hint.format(address=self.address)}"
        return ClientError(message, code)

    # -- classification

    def classify(self, image: ImageLike, model: str = "") -> Classification:
        r = self._call(self.classifier.Classify,
                       pb.ClassifyRequest(model=model, image=image_message(image)))
        return _classification(r.prediction, r.model, r.version)

    def classify_batch(self, images: np.ndarray | list[ImageLike], model: str = "",
                       ) -> list[Classification]:
        """An (N, 784) or (N, 28, 28) array goes packed; a list goes image by image."""
        if isinstance(images, np.ndarray):
            x = images.reshape(images.shape[0], -1)
            if x.shape[1] != 784:
                raise ClientError(f"each image must hold 784 pixels, not {x.shape[1]}")
            if x.dtype == np.uint8:
                packed = pb.PackedImages(format=pb.PIXEL_FORMAT_U8, count=x.shape[0],
                                         data=x.tobytes())
            else:
                packed = pb.PackedImages(format=pb.PIXEL_FORMAT_F32_LE, count=x.shape[0],
                                         data=x.astype("<f4").tobytes())
            request = pb.ClassifyBatchRequest(model=model, packed=packed)
        else:
            request = pb.ClassifyBatchRequest(model=model,
                                              images=[image_message(i) for i in images])
        r = self._call(self.classifier.ClassifyBatch, request)
        return [_classification(p, r.model, r.version) for p in r.predictions]

    # -- models

    def models(self) -> list[pb.ModelInfo]:
        return list(self._call(self.classifier.ListModels, pb.ListModelsRequest()).models)

    def model(self, ref: str) -> pb.ModelInfo:
        return self._call(self.classifier.GetModel, pb.GetModelRequest(model=ref))

    def set_alias(self, name: str, alias: str, version: int) -> pb.ModelInfo:
        return self._call(self.models_admin.SetAlias,
                          pb.SetAliasRequest(name=name, alias=alias, version=version))

    def delete_alias(self, name: str, alias: str) -> pb.ModelInfo:
        return self._call(self.models_admin.DeleteAlias,
                          pb.DeleteAliasRequest(name=name, alias=alias))

    def import_book_model(self, name: str, path: str | Path) -> pb.ModelVersionInfo:
        return self._call(self.models_admin.ImportModel,
                          pb.ImportModelRequest(name=name, book_json=Path(path).read_bytes()),
                          idempotent=False)

    # -- jobs

    def submit(self, preset: str = "", **spec: Any) -> pb.Job:
        """Queues a job: a preset, fields of your own, or a preset with some fields changed."""
        return self._call(self.training.SubmitJob,
                          pb.SubmitJobRequest(preset=preset, spec_json=json.dumps(spec)),
                          idempotent=False)

    def job(self, job_id: str) -> pb.Job:
        return self._call(self.training.GetJob, pb.GetJobRequest(id=job_id))

    def jobs(self, limit: int = 50) -> list[pb.Job]:
        return list(self._call(self.training.ListJobs, pb.ListJobsRequest(limit=limit)).jobs)

    def cancel(self, job_id: str) -> pb.Job:
        return self._call(self.training.CancelJob, pb.CancelJobRequest(id=job_id))

    def watch(self, job_id: str, from_start: bool = True) -> Iterator[pb.JobEvent]:
        """The job's events as they happen, ending after its final one."""
        stream = self.training.WatchJob(pb.WatchJobRequest(id=job_id, from_start=from_start),
                                        metadata=self.metadata)
        try:
            yield from stream
        except grpc.RpcError as e:
            raise self._error(e) from None

    def wait(self, job_id: str, timeout: float | None = None) -> pb.Job:
        """Blocks until the job is final and returns it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for _ in self.watch(job_id, from_start=False):
                pass
            job = self.job(job_id)
            if job.state in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"job {job_id} did not finish within {timeout:.0f} s")


def _classification(p: pb.Prediction, model: str, version: int) -> Classification:
    return Classification(digit=p.digit, confidence=p.confidence,
                          probabilities=list(p.probabilities), model=model, version=version)
