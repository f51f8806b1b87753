"""The Classifier and Models services: convert the message, call the core, convert back."""

from __future__ import annotations

import json
import time

import numpy as np

from nndl.server.batching import Batcher
from nndl.server.convert import (
    PIXELS,
    image_to_array,
    packed_predictions,
    packed_to_array,
    prediction,
    predictions,
)
from nndl.server.errors import DeadlineExceededError, grpc_errors
from nndl.server.images import ImageLimits
from nndl.server.metrics import ServerMetrics
from nndl.server.models import LoadedModel, ModelCache
from nndl.server.settings import ServerSettings
from nndl.trainer import model_format
from nndl.trainer.errors import InvalidArgumentError, NotFoundError
from nndl.trainer.registry import Registry, parse_ref
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc

NO_DEADLINE_S = 1e6  # grpc reports "no deadline" as a deadline centuries away


def _version_info(s) -> pb.ModelVersionInfo:
    return pb.ModelVersionInfo(
        version=s.version, created_at=s.created_at, validation_accuracy=s.validation_accuracy,
        test_accuracy=s.test_accuracy, job_id=s.job_id, preset=s.preset, networks=s.networks)


def model_info(registry: Registry, cache: ModelCache, name: str) -> pb.ModelInfo:
    versions = registry.versions(name)
    if not versions:
        raise NotFoundError(f"there is no model named {name!r}")
    return pb.ModelInfo(
        name=name, versions=[_version_info(v) for v in versions],
        aliases=registry.aliases(name), loaded_version=cache.loaded().get(name, 0))


def _time_left(context) -> float | None:
    """Seconds until the caller's deadline, None without one; raises once it has passed."""
    remaining = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE_S:
        return None
    if remaining <= 0:
        raise DeadlineExceededError("the deadline passed before the work started")
    return remaining


class ClassifierServicer(rpc.ClassifierServicer):
    def __init__(self, cache: ModelCache, registry: Registry, settings: ServerSettings,
                 metrics: ServerMetrics) -> None:
        self.cache, self.registry, self.settings, self.metrics = cache, registry, settings, metrics
        self.batcher: Batcher | None = None  # None: each request runs its own forward pass
        if settings.batch_max_images > 1:
            self.batcher = Batcher(self.forward, settings.batch_max_images,
                                   settings.batch_max_wait_ms / 1000, settings.max_queued_images)
            metrics.watch_queue(self.batcher.queued)
        self.limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)

    def _model(self, ref: str) -> LoadedModel:
        return self.cache.get(ref or self.settings.default_model)

    def forward(self, model: LoadedModel, x: np.ndarray) -> np.ndarray:
        """(N, 784) -> (N, 10) on the calling thread, counted in the metrics."""
        started = time.perf_counter()
        probs = model.probabilities(x)
        self.metrics.forward_pass(model.name, model.version, probs, time.perf_counter() - started)
        return probs

    @grpc_errors
    def Classify(self, request: pb.ClassifyRequest, context) -> pb.ClassifyResponse:
        _time_left(context)
        x = image_to_array(request.image, self.limits)  # (784,)
        model = self._model(request.model)
        if self.batcher is None:
            probs = self.forward(model, x[None, :])[0]
        else:
            probs = self.batcher.classify(model, x, _time_left(context))
        return pb.ClassifyResponse(prediction=prediction(probs), model=model.name,
                                   version=model.version)

    @grpc_errors
    def ClassifyBatch(self, request: pb.ClassifyBatchRequest, context) -> pb.ClassifyBatchResponse:
        _time_left(context)
        model = self._model(request.model)
        x = self._batch_array(request, context)  # (N, 784)
        _time_left(context)
        probs = self.forward(model, x)
        response = pb.ClassifyBatchResponse(model=model.name, version=model.version)
        if request.packed_response:
            response.packed.CopyFrom(packed_predictions(probs))
        else:
            response.predictions.extend(predictions(probs))
        return response

    def _batch_array(self, request: pb.ClassifyBatchRequest, context) -> np.ndarray:
        limit = self.settings.max_batch_images
        if request.images and request.HasField("packed"):
            raise InvalidArgumentError("send images or packed, not both")
        if request.HasField("packed"):
            x = packed_to_array(request.packed, limit)
        else:
            if len(request.images) > limit:
                raise InvalidArgumentError(
                    f"images holds {len(request.images)} images; the limit of one batch is "
                    f"{limit}")
            x = np.empty((len(request.images), PIXELS), dtype=np.float32)
            for i, image in enumerate(request.images):
                if image.WhichOneof("data") == "encoded":
                    _time_left(context)  # decoding costs: stop once nobody waits
                x[i] = image_to_array(image, self.limits, f"images[{i}]")
        if x.shape[0] == 0:
            raise InvalidArgumentError("the batch holds no images: set images or packed")
        return x

    @grpc_errors
    def ListModels(self, request: pb.ListModelsRequest, context) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[model_info(self.registry, self.cache, n) for n in self.registry.names()])

    @grpc_errors
    def GetModel(self, request: pb.GetModelRequest, context) -> pb.ModelInfo:
        ref = request.model or self.settings.default_model
        name, version = self.registry.resolve(ref)
        info = model_info(self.registry, self.cache, name)
        info.lineage_json = json.dumps(self.registry.load(name, version).lineage)
        return info


class ModelsServicer(rpc.ModelsServicer):
    def __init__(self, cache: ModelCache, registry: Registry) -> None:
        self.cache, self.registry = cache, registry

    @grpc_errors
    def SetAlias(self, request: pb.SetAliasRequest, context) -> pb.ModelInfo:
        self.registry.set_alias(request.name, request.alias, request.version)
        self.cache.refresh()
        return model_info(self.registry, self.cache, request.name)

    @grpc_errors
    def DeleteAlias(self, request: pb.DeleteAliasRequest, context) -> pb.ModelInfo:
        self.registry.delete_alias(request.name, request.alias)
        self.cache.refresh()  # this replica stops serving it now, the others on notification
        return model_info(self.registry, self.cache, request.name)

    @grpc_errors
    def ImportModel(self, request: pb.ImportModelRequest, context) -> pb.ModelVersionInfo:
        name, _ = parse_ref(request.name)
        networks = model_format.from_book_json(request.book_json)
        version = self.registry.publish(
            name, networks, {"imported_from": "network2.py JSON", "imported_at": time.time()})
        return next(_version_info(s) for s in self.registry.versions(name)
                    if s.version == version)
