"""`DigitsClient`: the Python library for classifying digits, running jobs and managing models.

>>> from nndl.client import DigitsClient                   # doctest: +SKIP
>>> with DigitsClient("127.0.0.1:50051") as c:             # doctest: +SKIP
...     job = c.submit("ch3", epochs=5)
...     c.wait(job.id).result.test_accuracy
...     c.classify("seven.png").digit
0.9412
7
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from PIL import Image as PILImage

from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc

FINAL_STATES = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
STATE_NAMES = {v: k.removeprefix("JOB_STATE_").lower() for k, v in pb.JobState.items()}
DEFAULT_ADDRESS = "127.0.0.1:50051"

# A path or bytes (an encoded PNG, JPEG, BMP or GIF), a 28×28 or 784-pixel array (MNIST
# convention: white ink on black, uint8 0..255 or float 0..1) or a PIL image.
ImageLike = str | Path | bytes | np.ndarray | PILImage.Image
T = TypeVar("T")


class ClientError(Exception):
    """A failed call, as one sentence for people; `code` is the gRPC status code, if any."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Classification:
    digit: int
    confidence: float  # probabilities[digit]
    probabilities: list[float]  # ten values summing to 1
    model: str  # the model and version that answered
    version: int


def image_message(image: ImageLike) -> pb.Image:
    """Files, bytes and PIL images go encoded (the server crops and centres them the way
    MNIST was made); arrays are taken as already-prepared 28×28 MNIST pixels."""
    if isinstance(image, str | Path):
        try:
            return pb.Image(encoded=Path(image).read_bytes())
        except OSError as e:
            raise ClientError(f"cannot read {image}: {e.strerror or e}") from e
    if isinstance(image, bytes):
        return pb.Image(encoded=image)
    if isinstance(image, np.ndarray):
        flat = _pixels(image[None])[0]
        if flat.dtype == np.uint8:
            return pb.Image(pixels_u8=flat.tobytes())
        return pb.Image(pixels_f32=pb.FloatPixels(values=flat.tolist()))
    if isinstance(image, PILImage.Image):  # lossless, whatever its mode
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return pb.Image(encoded=buf.getvalue())
    raise ClientError(f"cannot classify a {type(image).__name__}: pass a path, bytes, an "
                      "array or a PIL image")


def _pixels(images: np.ndarray) -> np.ndarray:
    """(N, ...) array -> (N, 784) uint8 or float32, checked here so that mistakes get a fix,
    not a server error."""
    if images.ndim == 0 or images.shape[0] == 0:
        raise ClientError("the batch holds no images")
    x = images.reshape(images.shape[0], -1)
    if x.shape[1] != 784:
        raise ClientError(f"an array image must hold 28×28 = 784 pixels, not {x.shape[1]}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise ClientError(f"an array image of {x.dtype} is neither uint8 (0..255) nor float "
                          "(0..1); convert it with .astype(np.uint8) or divide by 255")
    if x.min() < 0 or x.max() > 1:
        raise ClientError("float pixels must lie in [0, 1]; divide 0..255 values by 255 or "
                          "pass a uint8 array")
    return x.astype(np.float32)


class DigitsClient:
    """Talks to one nndl server; every failure is a ClientError whose message says the fix.

    `timeout` bounds each call in seconds; calls that are safe to repeat are tried up to
    `retries` times while the server is UNAVAILABLE, with backoff: the default rides out
    a server restart (about 30 s of waiting in all). Until the server has answered once,
    3 tries at most, so a wrong address is reported within two seconds.
    `token` is sent as a bearer token; `tls` (or a `tls_ca` certificate file) uses TLS.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, token: str = "",
                 tls: bool = False, tls_ca: str | Path = "", timeout: float = 30.0,
                 retries: int = 10) -> None:
        self.address, self.timeout, self.retries = address, timeout, max(1, retries)
        self._reached = False  # whether the server has answered yet
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.max_send_message_length", 256 * 1024 * 1024)]
        if tls or tls_ca:
            try:
                root = Path(tls_ca).read_bytes() if tls_ca else None
            except OSError as e:
                raise ClientError(f"cannot read the TLS CA certificate {tls_ca}: "
                                  f"{e.strerror or e}; check --tls-ca or NNDL_TLS_CA") from e
            creds = grpc.ssl_channel_credentials(root)
            self.channel = grpc.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._classifier = rpc.ClassifierStub(self.channel)
        self._models = rpc.ModelsStub(self.channel)
        self._training = rpc.TrainingStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> DigitsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls and errors

    def _call(self, method: Callable[..., T], request: Any, idempotent: bool = True) -> T:
        attempts = (self.retries if self._reached else min(3, self.retries)) if idempotent else 1
        for attempt in range(attempts):
            try:
                answer = method(request, timeout=self.timeout, metadata=self.metadata)
                self._reached = True
                return answer
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                    time.sleep(_backoff(attempt))
                    continue
                raise self._error(e, type(request).__name__) from None
        raise AssertionError("the loop returns or raises")

    def _error(self, e: grpc.RpcError, request: str) -> ClientError:
        code, details = e.code(), e.details() or e.code().name.lower()
        from_server = any(k == "nndl-origin" for k, _ in (e.trailing_metadata() or ()))
        if code == grpc.StatusCode.UNAVAILABLE and from_server:
            message = details  # the server answered: something behind it is away
        elif code == grpc.StatusCode.UNAVAILABLE and "handshake failed" in details.lower():
            message = (f"the TLS handshake with {self.address} failed: the server there may "
                       "not use TLS (then leave out --tls and --tls-ca), or its certificate is "
                       "not signed by the CA you trust (--tls-ca)")
        elif code == grpc.StatusCode.UNAVAILABLE:
            message = (f"cannot reach the nndl server at {self.address}; start nndl-server "
                       "there or point --server (NNDL_SERVER) at it")
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = (f"the server at {self.address} did not answer within "
                       f"{self.timeout:g} s; try a longer --timeout")
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            message = f"{details}; pass the server's token with --token or NNDL_TOKEN"
        elif code == grpc.StatusCode.NOT_FOUND and "Job" in request:
            message = f"{details}; 'nndl jobs list' shows the jobs there are"
        elif code == grpc.StatusCode.NOT_FOUND:
            message = f"{details}; 'nndl models list' shows the models there are"
        else:
            message = details
        return ClientError(message, code)

    # -- classification

    def classify(self, image: ImageLike, model: str = "") -> Classification:
        """One image; `model` is "name", "name@VERSION" or "name@ALIAS" ("" = the default).

        >>> c.classify("seven.png", model="mnist@production").digit   # doctest: +SKIP
        7
        """
        r = self._call(self._classifier.Classify,
                       pb.ClassifyRequest(model=model, image=image_message(image)))
        return _classification(r.prediction, r.model, r.version)

    def classify_batch(self, images: np.ndarray | Sequence[ImageLike], model: str = "",
                       ) -> list[Classification]:
        """Many images in one forward pass: an (N, 28, 28) or (N, 784) array goes packed,
        a list (of paths, bytes, arrays or PIL images) image by image. The answer always
        comes packed: one message per image would cost more than the forward pass."""
        if isinstance(images, np.ndarray):
            x = _pixels(images)
            fmt, data = ((pb.PIXEL_FORMAT_U8, x.tobytes()) if x.dtype == np.uint8 else
                         (pb.PIXEL_FORMAT_F32_LE, x.astype("<f4").tobytes()))
            request = pb.ClassifyBatchRequest(
                model=model, packed=pb.PackedImages(format=fmt, count=x.shape[0], data=data),
                packed_response=True)
        else:
            request = pb.ClassifyBatchRequest(model=model, packed_response=True,
                                              images=[image_message(i) for i in images])
        r = self._call(self._classifier.ClassifyBatch, request)
        digits = np.frombuffer(r.packed.digits, dtype=np.uint8)
        probs = np.frombuffer(r.packed.probabilities, dtype="<f4").reshape(-1, 10)  # (N, 10)
        return [Classification(digit=int(d), confidence=float(p[d]), probabilities=p.tolist(),
                               model=r.model, version=r.version)
                for d, p in zip(digits, probs, strict=True)]

    # -- models

    def models(self) -> list[pb.ModelInfo]:
        """Every model with its versions (newest last) and aliases."""
        return list(self._call(self._classifier.ListModels, pb.ListModelsRequest()).models)

    def model(self, ref: str) -> pb.ModelInfo:
        """One model; `lineage_json` describes the version `ref` names (how it was made)."""
        return self._call(self._classifier.GetModel, pb.GetModelRequest(model=ref))

    def resolve(self, ref: str) -> tuple[str, int]:
        """("name", version) for "name", "name@VERSION" or "name@ALIAS"."""
        name, _, tag = ref.partition("@")
        info = self.model(ref)
        if tag.isdigit():
            return name, int(tag)
        if tag and tag != "latest":
            return name, info.aliases[tag]
        return name, info.versions[-1].version

    def set_alias(self, name: str, alias: str, version: int) -> pb.ModelInfo:
        """Points `name@alias` at `version`; servers switch to it within seconds."""
        return self._call(self._models.SetAlias,
                          pb.SetAliasRequest(name=name, alias=alias, version=version))

    def delete_alias(self, name: str, alias: str) -> pb.ModelInfo:
        return self._call(self._models.DeleteAlias, pb.DeleteAliasRequest(name=name, alias=alias))

    def import_book_model(self, name: str, path: str | Path) -> pb.ModelVersionInfo:
        """Publishes a network saved by the book's network2.py as a new version of `name`."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ClientError(f"cannot read {path}: {e.strerror or e}") from e
        return self._call(self._models.ImportModel,
                          pb.ImportModelRequest(name=name, book_json=data), idempotent=False)

    # -- jobs

    def submit(self, preset: str = "", spec: dict[str, Any] | None = None,
               **fields: Any) -> pb.Job:
        """Queues a training job: a preset, a full spec, or a preset with fields changed.

        >>> c.submit("ch3-l2", epochs=10)                                  # doctest: +SKIP
        >>> c.submit(spec={"layers": [784, 100, 10], "eta": 0.5})          # doctest: +SKIP
        """
        body = {**(spec or {}), **fields}
        return self._call(self._training.SubmitJob,
                          pb.SubmitJobRequest(preset=preset, spec_json=json.dumps(body)),
                          idempotent=False)

    def job(self, job_id: str) -> pb.Job:
        return self._call(self._training.GetJob, pb.GetJobRequest(id=job_id))

    def jobs(self, limit: int = 50) -> list[pb.Job]:
        """The newest jobs first."""
        return list(self._call(self._training.ListJobs, pb.ListJobsRequest(limit=limit)).jobs)

    def cancel(self, job_id: str) -> pb.Job:
        """Asks the job to stop; a running job stops at the end of its current epoch."""
        return self._call(self._training.CancelJob, pb.CancelJobRequest(id=job_id))

    def watch(self, job_id: str, from_start: bool = True,
              timeout: float | None = None) -> Iterator[pb.JobEvent]:
        """The job's events as they happen, ending after its final one.

        If the server goes away mid-stream the watch reconnects (up to `retries` times)
        and carries on without repeating events. `timeout` bounds the whole watch.

        >>> for event in c.watch(job.id):                                  # doctest: +SKIP
        ...     print(event.kind, event.progress.validation_accuracy)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_id = ""  # of the last event yielded; a reconnect asks for the events after it
        failures = 0
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stream = self._training.WatchJob(
                pb.WatchJobRequest(id=job_id, from_start=from_start, after_id=last_id),
                timeout=left, metadata=self.metadata)
            try:
                for event in stream:
                    self._reached = True
                    failures = 0  # the retries bound failures in a row, not in a whole watch
                    last_id = event.id
                    yield event
                return
            except grpc.RpcError as e:
                failures += 1
                if e.code() != grpc.StatusCode.UNAVAILABLE or failures >= self.retries:
                    raise self._error(e, "WatchJob") from None
                time.sleep(_backoff(failures - 1))
            finally:
                stream.cancel()

    def wait(self, job_id: str, timeout: float | None = None) -> pb.Job:
        """Blocks until the job is final and returns it (whether it succeeded or not)."""
        try:
            for _ in self.watch(job_id, from_start=False, timeout=timeout):
                pass
        except ClientError as e:
            if e.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                within = f" within {timeout:g} s" if timeout is not None else ""
                raise ClientError(f"job {job_id} did not finish{within}", e.code) from None
            raise
        return self.job(job_id)

    def history(self, job_id: str) -> list[list[pb.EpochProgress]]:
        """The job's learning curves so far: per network (one unless an ensemble), per epoch.

        A finished job's come from its events, or from the lineage of the version it
        published once its events have expired; a running job's are the epochs done so far.
        """
        job = self.job(job_id)
        epochs: list[pb.EpochProgress] = []
        try:
            # A finished job's stream ends by itself; a running one's is cut after a pause.
            drain = None if job.state in FINAL_STATES else 2.0
            epochs = [e.progress for e in self.watch(job_id, timeout=drain) if e.kind == "epoch"]
        except ClientError as e:
            if e.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        if epochs:
            return _split_members(epochs)
        if job.result.version:
            lineage = json.loads(self.model(f"{job.result.model}@{job.result.version}")
                                 .lineage_json or "{}")
            return [[_epoch(d) for d in member] for member in lineage.get("history", [])]
        return []


def _split_members(epochs: list[pb.EpochProgress]) -> list[list[pb.EpochProgress]]:
    """An ensemble's networks train one after another; each starts again at epoch 1."""
    members: list[list[pb.EpochProgress]] = []
    for p in epochs:
        if not members or p.epoch <= members[-1][-1].epoch:
            members.append([])
        members[-1].append(p)
    return members


def _epoch(d: dict[str, float]) -> pb.EpochProgress:
    """A lineage history entry as the proto's EpochProgress (NaN, not measured, as 0)."""

    def v(key: str) -> float:
        x = d.get(key, 0.0)
        return 0.0 if x is None or math.isnan(x) else float(x)

    return pb.EpochProgress(
        epoch=int(v("epoch")), epochs=int(v("epochs")), eta_learning_rate=v("eta"),
        epoch_seconds=v("seconds"), training_cost=v("training_cost"),
        validation_accuracy=v("validation_accuracy"), validation_cost=v("validation_cost"),
        training_accuracy=v("training_accuracy"))


def _backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (0-based): 0.25, 0.5, 1, 2, 4, then 5 each."""
    return min(0.25 * 2**attempt, 5.0)


def _classification(p: pb.Prediction, model: str, version: int) -> Classification:
    return Classification(digit=p.digit, confidence=p.confidence,
                          probabilities=list(p.probabilities), model=model, version=version)
