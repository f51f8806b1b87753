"""The Training service: validates specs and talks to the job queue, nothing more."""

from __future__ import annotations

import json
import threading

from nndl.server.errors import grpc_errors
from nndl.trainer.errors import OverloadedError
from nndl.trainer.jobs import JobRecord
from nndl.trainer.presets import resolve
from nndl.trainer.queue import JobQueue
from nndl.trainer.spec import spec_fields
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc

STATES = {
    "queued": pb.JOB_STATE_QUEUED,
    "running": pb.JOB_STATE_RUNNING,
    "succeeded": pb.JOB_STATE_SUCCEEDED,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
}
_PROGRESS = ("epoch", "epochs", "validation_accuracy", "training_cost", "eta_learning_rate",
             "epoch_seconds", "eta_seconds", "training_accuracy", "validation_cost")
_RESULT = ("model", "version", "validation_accuracy", "test_accuracy", "book_accuracy",
           "duration_seconds", "promote", "promoted")


def _finite(d: dict, names: tuple[str, ...]) -> dict:
    """Proto fields from a dict, leaving out NaN (not measured) values."""
    return {k: d[k] for k in names if k in d and d[k] == d[k]}


def job_message(job: JobRecord) -> pb.Job:
    return pb.Job(
        id=job.id, state=STATES[job.state.value], spec_json=json.dumps(job.spec, sort_keys=True),
        preset=job.preset, attempts=job.attempts, worker=job.worker,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        progress=pb.EpochProgress(**_finite(job.progress, _PROGRESS)),
        result=pb.JobResult(**_finite(job.result, _RESULT)), error=job.error,
        cancel_requested=job.cancel_requested,
    )


def event_message(job_id: str, event: dict) -> pb.JobEvent:
    return pb.JobEvent(
        job_id=job_id, kind=event["kind"], time=event["time"], state=STATES[event["state"]],
        progress=pb.EpochProgress(**_finite(event.get("progress", {}), _PROGRESS)),
        result=pb.JobResult(**_finite(event.get("result", {}), _RESULT)),
        message=event.get("message", ""), id=event.get("id", ""),
    )


class TrainingServicer(rpc.TrainingServicer):
    """Job submission and watching. A WatchJob stream holds a request thread for as long
    as it lasts, so at most `max_watchers` run at once: the other threads stay free for
    classification."""

    def __init__(self, queue: JobQueue, max_watchers: int) -> None:
        self.queue = queue
        self.max_watchers = max_watchers
        self._watchers = threading.BoundedSemaphore(max_watchers)

    @grpc_errors
    def SubmitJob(self, request: pb.SubmitJobRequest, context) -> pb.Job:
        spec = resolve(request.preset, spec_fields(request.spec_json))
        return job_message(self.queue.submit(spec))

    @grpc_errors
    def GetJob(self, request: pb.GetJobRequest, context) -> pb.Job:
        return job_message(self.queue.get(request.id))

    @grpc_errors
    def CancelJob(self, request: pb.CancelJobRequest, context) -> pb.Job:
        return job_message(self.queue.cancel(request.id))

    @grpc_errors
    def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        limit = min(request.limit or 50, 1000)
        return pb.ListJobsResponse(jobs=[job_message(j) for j in self.queue.list(limit)])

    @grpc_errors
    def WatchJob(self, request: pb.WatchJobRequest, context):
        events = self.queue.events(request.id, from_start=request.from_start,
                                   after_id=request.after_id, alive=context.is_active)
        if not self._watchers.acquire(blocking=False):
            raise OverloadedError(f"{self.max_watchers} jobs are being watched on this server "
                                  "already; retry later, or poll GetJob")
        try:
            for event in events:  # they end once the caller has gone (alive above)
                yield event_message(request.id, event)
        finally:
            self._watchers.release()
