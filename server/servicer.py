"""The Classifier and Models services: convert the message, call the core, convert back."""

from __future__ import annotations

import json
import time

import numpy as np

from nndl.server.convert import image_to_array, packed_to_array, prediction
from nndl.server.errors import grpc_errors
from nndl.server.images import ImageLimits
from nndl.server.metrics import ServerMetrics
from nndl.server.models import ModelCache
from nndl.server.settings import ServerSettings
from nndl.trainer import model_format
from nndl.trainer.errors import InvalidArgumentError, NotFoundError
from nndl.trainer.registry import Registry, parse_ref
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc


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


class ClassifierServicer(rpc.ClassifierServicer):
    def __init__(self, cache: ModelCache, registry: Registry, settings: ServerSettings,
                 metrics: ServerMetrics) -> None:
        self.cache, self.registry, self.settings, self.metrics = cache, registry, settings, metrics
        self.limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)

    def _classify(self, ref: str, x: np.ndarray):
        model = self.cache.get(ref or self.settings.default_model)
        probs = model.probabilities(x)  # (N, 10)
        self.metrics.batch_size.observe(x.shape[0])
        self.metrics.predictions(model.name, model.version, probs)
        return model, probs

    @grpc_errors
    def Classify(self, request: pb.ClassifyRequest, context) -> pb.ClassifyResponse:
        x = image_to_array(request.image, self.limits)[None, :]
        model, probs = self._classify(request.model, x)
        return pb.ClassifyResponse(prediction=prediction(probs[0]), model=model.name,
                                   version=model.version)

    @grpc_errors
    def ClassifyBatch(self, request: pb.ClassifyBatchRequest, context) -> pb.ClassifyBatchResponse:
        limit = self.settings.max_batch_images
        if request.images and request.HasField("packed"):
            raise InvalidArgumentError("send images or packed, not both")
        if request.HasField("packed"):
            x = packed_to_array(request.packed, limit)
        else:
            if len(request.images) > limit:
                raise InvalidArgumentError(
                    f"{len(request.images)} images is over the {limit} limit of one batch")
            x = np.stack([image_to_array(im, self.limits, f"images[{i}]")
                          for i, im in enumerate(request.images)]) if request.images else None
        if x is None or x.shape[0] == 0:
            raise InvalidArgumentError("the batch holds no images")
        model, probs = self._classify(request.model, x)
        return pb.ClassifyBatchResponse(predictions=[prediction(p) for p in probs],
                                        model=model.name, version=model.version)

    @grpc_errors
    def ListModels(self, request: pb.ListModelsRequest, context) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[model_info(self.registry, self.cache, n) for n in self.registry.names()])

    @grpc_errors
    def GetModel(self, request: pb.GetModelRequest, context) -> pb.ModelInfo:
        name, version = self.registry.resolve(request.model or self.settings.default_model)
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
        return model_info(self.registry, self.cache, request.name)

    @grpc_errors
    def ImportModel(self, request: pb.ImportModelRequest, context) -> pb.ModelVersionInfo:
        name, _ = parse_ref(request.name)
        networks = model_format.from_book_json(request.book_json)
        version = self.registry.publish(
            name, networks, {"imported_from": "network2.py JSON", "imported_at": time.time()})
        return next(_version_info(s) for s in self.registry.versions(name)
                    if s.version == version)
