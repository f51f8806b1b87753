from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_U8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_F32_LE: _ClassVar[PixelFormat]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_U8: PixelFormat
PIXEL_FORMAT_F32_LE: PixelFormat
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class Image(_message.Message):
    __slots__ = ("pixels_u8", "pixels_f32", "encoded")
    PIXELS_U8_FIELD_NUMBER: _ClassVar[int]
    PIXELS_F32_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    pixels_u8: bytes
    pixels_f32: FloatPixels
    encoded: bytes
    def __init__(self, pixels_u8: _Optional[bytes] = ..., pixels_f32: _Optional[_Union[FloatPixels, _Mapping]] = ..., encoded: _Optional[bytes] = ...) -> None: ...

class FloatPixels(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class PackedImages(_message.Message):
    __slots__ = ("format", "count", "data")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    format: PixelFormat
    count: int
    data: bytes
    def __init__(self, format: _Optional[_Union[PixelFormat, str]] = ..., count: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("digit", "confidence", "probabilities")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    digit: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, digit: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("model", "image")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("prediction", "model", "version")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    prediction: Prediction
    model: str
    version: int
    def __init__(self, prediction: _Optional[_Union[Prediction, _Mapping]] = ..., model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ClassifyBatchRequest(_message.Message):
    __slots__ = ("model", "images", "packed", "packed_response")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    PACKED_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    model: str
    images: _containers.RepeatedCompositeFieldContainer[Image]
    packed: PackedImages
    packed_response: bool
    def __init__(self, model: _Optional[str] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., packed: _Optional[_Union[PackedImages, _Mapping]] = ..., packed_response: _Optional[bool] = ...) -> None: ...

class PackedPredictions(_message.Message):
    __slots__ = ("count", "digits", "probabilities")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    count: int
    digits: bytes
    probabilities: bytes
    def __init__(self, count: _Optional[int] = ..., digits: _Optional[bytes] = ..., probabilities: _Optional[bytes] = ...) -> None: ...

class ClassifyBatchResponse(_message.Message):
    __slots__ = ("predictions", "model", "version", "packed")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    model: str
    version: int
    packed: PackedPredictions
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., packed: _Optional[_Union[PackedPredictions, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelVersionInfo(_message.Message):
    __slots__ = ("version", "created_at", "validation_accuracy", "test_accuracy", "job_id", "preset", "networks")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    version: int
    created_at: float
    validation_accuracy: float
    test_accuracy: float
    job_id: str
    preset: str
    networks: int
    def __init__(self, version: _Optional[int] = ..., created_at: _Optional[float] = ..., validation_accuracy: _Optional[float] = ..., test_accuracy: _Optional[float] = ..., job_id: _Optional[str] = ..., preset: _Optional[str] = ..., networks: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "versions", "aliases", "loaded_version", "lineage_json")
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    LOADED_VERSION_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionInfo]
    aliases: _containers.ScalarMap[str, int]
    loaded_version: int
    lineage_json: str
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionInfo, _Mapping]]] = ..., aliases: _Optional[_Mapping[str, int]] = ..., loaded_version: _Optional[int] = ..., lineage_json: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("name", "alias", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias: str
    version: int
    def __init__(self, name: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("name", "alias")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias: str
    def __init__(self, name: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class ImportModelRequest(_message.Message):
    __slots__ = ("name", "book_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BOOK_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    book_json: bytes
    def __init__(self, name: _Optional[str] = ..., book_json: _Optional[bytes] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("preset", "spec_json")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    preset: str
    spec_json: str
    def __init__(self, preset: _Optional[str] = ..., spec_json: _Optional[str] = ...) -> None: ...

class EpochProgress(_message.Message):
    __slots__ = ("epoch", "epochs", "validation_accuracy", "training_cost", "eta_learning_rate", "epoch_seconds", "eta_seconds", "training_accuracy", "validation_cost")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TRAINING_COST_FIELD_NUMBER: _ClassVar[int]
    ETA_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_COST_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    epochs: int
    validation_accuracy: float
    training_cost: float
    eta_learning_rate: float
    epoch_seconds: float
    eta_seconds: float
    training_accuracy: float
    validation_cost: float
    def __init__(self, epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., validation_accuracy: _Optional[float] = ..., training_cost: _Optional[float] = ..., eta_learning_rate: _Optional[float] = ..., epoch_seconds: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., training_accuracy: _Optional[float] = ..., validation_cost: _Optional[float] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("model", "version", "validation_accuracy", "test_accuracy", "book_accuracy", "duration_seconds", "promote", "promoted")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    BOOK_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    validation_accuracy: float
    test_accuracy: float
    book_accuracy: float
    duration_seconds: float
    promote: str
    promoted: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., validation_accuracy: _Optional[float] = ..., test_accuracy: _Optional[float] = ..., book_accuracy: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., promote: _Optional[str] = ..., promoted: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "spec_json", "preset", "attempts", "worker", "created_at", "started_at", "finished_at", "progress", "result", "error", "cancel_requested")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    spec_json: str
    preset: str
    attempts: int
    worker: str
    created_at: float
    started_at: float
    finished_at: float
    progress: EpochProgress
    result: JobResult
    error: str
    cancel_requested: bool
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., spec_json: _Optional[str] = ..., preset: _Optional[str] = ..., attempts: _Optional[int] = ..., worker: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., progress: _Optional[_Union[EpochProgress, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., error: _Optional[str] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "kind", "time", "state", "progress", "result", "message", "id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    time: float
    state: JobState
    progress: EpochProgress
    result: JobResult
    message: str
    id: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., time: _Optional[float] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[EpochProgress, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., message: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id", "from_start", "after_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    from_start: bool
    after_id: str
    def __init__(self, id: _Optional[str] = ..., from_start: _Optional[bool] = ..., after_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...
