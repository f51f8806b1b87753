"""The job queue: a Redis stream with a consumer group, job records and event streams.

At-least-once: a worker acknowledges a stream entry only after the job reached a
final state, so an entry held by a worker that died is still pending and another
worker claims it once it has been idle longer than the claim timeout. A live worker
keeps its claim fresh (`refresh`), so a long job is never taken from it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from nndl.trainer.errors import NotFoundError
from nndl.trainer.jobs import JobRecord, JobState
from nndl.trainer.keys import Keys
from nndl.trainer.spec import JobSpec

EVENTS_MAXLEN = 10_000


@dataclass(frozen=True)
class Claim:
    entry_id: str
    job_id: str


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class JobQueue:
    def __init__(self, client: redis.Redis, keys: Keys, record_ttl_s: int = 7 * 86400) -> None:
        self.client, self.keys, self.record_ttl_s = client, keys, record_ttl_s

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.keys.jobs_stream, self.keys.group, id="0",
                                      mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    # -- the submitting side

    def submit(self, spec: JobSpec) -> JobRecord:
        job = JobRecord(id=uuid.uuid4().hex[:16], state=JobState.QUEUED, spec=spec.to_dict(),
                        created_at=time.time(), preset=spec.preset)
        self.ensure_group()
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.job(job.id), mapping=job.to_hash())
        pipe.zadd(self.keys.jobs_index, {job.id: job.created_at})
        pipe.execute()
        self.emit(job.id, "queued", state=JobState.QUEUED)
        self.client.xadd(self.keys.jobs_stream, {"job": job.id})
        return job

    def get(self, job_id: str) -> JobRecord:
        h = self.client.hgetall(self.keys.job(job_id))
        if not h:
            raise NotFoundError(f"there is no job {job_id!r}")
        return JobRecord.from_hash(h)

    def list(self, limit: int = 50) -> list[JobRecord]:
        ids = self.client.zrevrange(self.keys.jobs_index, 0, max(1, limit) - 1)
        out = []
        for raw in ids:
            h = self.client.hgetall(self.keys.job(_text(raw)))
            if h:
                out.append(JobRecord.from_hash(h))
            else:  # the record expired: drop it from the index too
                self.client.zrem(self.keys.jobs_index, raw)
        return out

    def cancel(self, job_id: str) -> JobRecord:
        """Queued jobs are cancelled at once; a running one at the end of its epoch."""
        job = self.get(job_id)
        if job.state.final:
            return job
        if job.state == JobState.QUEUED:
            self.finish(job_id, JobState.CANCELLED, error="cancelled before it started")
        else:
            self.client.hset(self.keys.job(job_id), "cancel_requested", "1")
            self.emit(job_id, "cancel_requested", state=job.state)
        return self.get(job_id)

    # -- events

    def emit(self, job_id: str, kind: str, state: JobState, **data) -> None:
        event = {"kind": kind, "time": time.time(), "state": state.value, **data}
        self.client.xadd(self.keys.job_events(job_id), {"event": json.dumps(event)},
                         maxlen=EVENTS_MAXLEN, approximate=True)

    def events(self, job_id: str, from_start: bool = False, block_ms: int = 1000,
               stop_after_final: bool = True) -> Iterator[dict]:
        """Yields the job's events as they happen (and those before, with from_start)."""
        self.get(job_id)  # NotFoundError for an unknown job
        key = self.keys.job_events(job_id)
        last = "0-0" if from_start else "$"
        if last == "$":  # read the current last id so that nothing between calls is lost
            info = self.client.xrevrange(key, count=1)
            last = _text(info[0][0]) if info else "0-0"
        while True:
            for _, entries in self.client.xread({key: last}, block=block_ms, count=100) or []:
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    event = json.loads(fields[b"event"] if b"event" in fields else fields["event"])
                    yield event
                    if stop_after_final and JobState(event["state"]).final:
                        return
            if not stop_after_final:
                return
            if self.get(job_id).state.final and not self._has_after(key, last):
                return

    def _has_after(self, key: str, last: str) -> bool:
        return bool(self.client.xrange(key, min=f"({last}", count=1))

    # -- the worker side

    def claim(self, consumer: str, claim_timeout_s: float, block_ms: int) -> Claim | None:
        """A job whose worker died (idle past the timeout) first, else a new one."""
        self.ensure_group()
        k = self.keys
        _, claimed, _ = self.client.xautoclaim(
            k.jobs_stream, k.group, consumer, min_idle_time=int(claim_timeout_s * 1000),
            start_id="0-0", count=1)
        if claimed:
            entry_id, fields = claimed[0]
            return Claim(_text(entry_id), _text(fields[b"job"]))
        got = self.client.xreadgroup(k.group, consumer, {k.jobs_stream: ">"}, count=1,
                                     block=block_ms)
        for _, entries in got or []:
            for entry_id, fields in entries:
                return Claim(_text(entry_id), _text(fields[b"job"]))
        return None

    def refresh(self, claim: Claim, consumer: str) -> None:
        """Resets the entry's idle time so no other worker takes a job this one still runs."""
        self.client.xclaim(self.keys.jobs_stream, self.keys.group, consumer, 0,
                           [claim.entry_id], justid=True)

    def ack(self, claim: Claim) -> None:
        self.client.xack(self.keys.jobs_stream, self.keys.group, claim.entry_id)
        self.client.xdel(self.keys.jobs_stream, claim.entry_id)

    def start(self, job_id: str, worker: str) -> JobRecord:
        key = self.keys.job(job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(key, "attempts", 1)
        pipe.hset(key, mapping={"state": JobState.RUNNING.value, "worker": worker,
                                "started_at": str(time.time())})
        pipe.execute()
        job = self.get(job_id)
        self.emit(job_id, "started", state=JobState.RUNNING, worker=worker,
                  attempt=job.attempts)
        return job

    def progress(self, job_id: str, progress: dict) -> None:
        self.client.hset(self.keys.job(job_id), "progress", json.dumps(progress))
        self.emit(job_id, "epoch", state=JobState.RUNNING, progress=progress)

    def requeue(self, job_id: str, reason: str) -> None:
        """Marks a job handed back; its stream entry stays pending for another worker."""
        self.client.hset(self.keys.job(job_id), mapping={"state": JobState.QUEUED.value,
                                                         "worker": ""})
        self.emit(job_id, "requeued", state=JobState.QUEUED, message=reason)

    def finish(self, job_id: str, state: JobState, result: dict | None = None,
               error: str = "") -> None:
        key = self.keys.job(job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"state": state.value, "finished_at": str(time.time()),
                                "result": json.dumps(result or {}), "error": error})
        pipe.expire(key, self.record_ttl_s)
        pipe.expire(self.keys.job_events(job_id), self.record_ttl_s)
        pipe.delete(self.keys.job_checkpoint(job_id))
        pipe.execute()
        self.emit(job_id, state.value, state=state, result=result or {}, message=error)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.client.hget(self.keys.job(job_id), "cancel_requested"))

    # -- checkpoints

    def save_checkpoint(self, job_id: str, data: bytes) -> None:
        self.client.set(self.keys.job_checkpoint(job_id), data)

    def load_checkpoint(self, job_id: str) -> bytes | None:
        return self.client.get(self.keys.job_checkpoint(job_id))

    def depth(self) -> tuple[int, int]:
        """(entries waiting for a worker, entries held by workers)."""
        k = self.keys
        try:
            groups = self.client.xinfo_groups(k.jobs_stream)
        except redis.ResponseError:
            return 0, 0
        for g in groups:
            if _text(g["name"]) == k.group:
                return int(g.get("lag") or 0), int(g["pending"])
        return 0, 0
