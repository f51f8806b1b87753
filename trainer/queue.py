"""The job queue: a Redis stream with a consumer group, job records and event streams.

At-least-once: a worker acknowledges a stream entry only after the job reached a
final state (for a success: after its version was published), so an entry held by
a worker that died is still pending, and another worker claims it once it has been
idle longer than the claim timeout. A live worker keeps its claim fresh (`refresh`),
so a long job is never taken from it.

Every change of a job's state is one Lua script over the job's record and its event
stream (both in the `{job:ID}` hash slot), so the state and the events never
disagree, and a final state is never overwritten: the first final state wins. The
stream entry is handled apart (another slot), always after the record.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis

from nndl.trainer.errors import InvalidArgumentError, NotFoundError, OverloadedError
from nndl.trainer.jobs import JobRecord, JobState
from nndl.trainer.keys import Keys, text
from nndl.trainer.spec import JobSpec

EVENTS_MAXLEN = 10_000
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
DEFAULT_RECORD_TTL_S = 7 * 86400
DEFAULT_MAX_WAITING = 10_000

_FINAL = "local FINAL = {succeeded=true, failed=true, cancelled=true}\n"

# KEYS: record, events, checkpoint. ARGV: fields JSON, event JSON, maxlen, ttl.
_FINISH_BODY = """
local function finish()
  local fields = cjson.decode(ARGV[1])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('DEL', KEYS[3])
end
"""

# Returns 1 when the job ended now, 0 when it had ended before, -1 when unknown.
_FINISH = _FINAL + _FINISH_BODY + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if FINAL[state] then return 0 end
finish()
return 1
"""

# A queued job is cancelled at once (1); a running one is flagged for its worker (2).
# ARGV[5]: the cancel_requested event JSON.
_CANCEL = _FINAL + _FINISH_BODY + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if FINAL[state] then return 0 end
if state == 'queued' then finish() return 1 end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
local ev = cjson.decode(ARGV[5])
ev['state'] = state
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', cjson.encode(ev))
return 2
"""

# KEYS: record, events. ARGV: worker, now, event JSON, maxlen. Returns the attempt
# number, or 0 when the job has ended (or expired) and must not run.
_START = _FINAL + """
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or FINAL[state] then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1])
if tonumber(redis.call('HGET', KEYS[1], 'started_at') or '0') == 0 then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
end
local ev = cjson.decode(ARGV[3])
ev['attempt'] = n
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', cjson.encode(ev))
return n
"""

# KEYS: record, events. ARGV: worker, event JSON, maxlen. Only the job's own worker
# hands it back; 1 when it did.
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '')
redis.call('HINCRBY', KEYS[1], 'handbacks', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
return 1
"""

# KEYS: record, events, checkpoint. ARGV: worker, progress JSON, event JSON, maxlen,
# checkpoint. Only while the job runs on this worker: one that lost it must neither
# overwrite its new holder's checkpoint nor leave one behind after the job ended.
_EPOCH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
return 1
"""

# KEYS: stream. ARGV: group, entry id, consumer. Only while the entry is still this
# consumer's: a plain XCLAIM would take back a job another worker has since claimed.
_OWNED = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
"""
_REFRESH = _OWNED + """
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""
# ARGV[4]: job id. The entry is replaced by a new one, which any worker reads at once.
_HAND_BACK = _OWNED + """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Claim:
    """A stream entry this worker holds: the job is its until it acks or hands it back."""

    entry_id: str
    job_id: str


def _event(kind: str, state: JobState, **data) -> str:
    return json.dumps({"kind": kind, "time": time.time(), "state": state.value, **data})


class JobQueue:
    """Submitting, watching and cancelling jobs (the server) and taking them (workers).

    >>> q = JobQueue(redis.Redis(), Keys("nndl"))  # doctest: +SKIP
    >>> job = q.submit(JobSpec(epochs=1))  # doctest: +SKIP
    >>> [e["kind"] for e in q.events(job.id, from_start=True)]  # doctest: +SKIP
    ['queued', 'started', 'epoch', 'succeeded']
    """

    def __init__(self, client: redis.Redis, keys: Keys,
                 record_ttl_s: int = DEFAULT_RECORD_TTL_S,
                 max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self.client, self.keys = client, keys
        self.record_ttl_s, self.max_waiting = record_ttl_s, max_waiting
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._start = client.register_script(_START)
        self._requeue = client.register_script(_REQUEUE)
        self._epoch = client.register_script(_EPOCH)
        self._refresh = client.register_script(_REFRESH)
        self._hand_back = client.register_script(_HAND_BACK)

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.keys.jobs_stream, self.keys.group, id="0",
                                      mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    # -- the submitting side

    def submit(self, spec: JobSpec) -> JobRecord:
        """Queues a validated spec; OverloadedError when too many jobs wait already."""
        waiting, _ = self.depth()
        if waiting >= self.max_waiting:
            raise OverloadedError(
                f"{waiting} jobs are waiting for a worker (the limit is {self.max_waiting}); "
                "try again later")
        job = JobRecord(id=uuid.uuid4().hex[:16], state=JobState.QUEUED, spec=spec.to_dict(),
                        created_at=time.time(), preset=spec.preset)
        self.ensure_group()
        pipe = self.client.pipeline(transaction=True)  # record and events: one slot
        pipe.hset(self.keys.job(job.id), mapping=job.to_hash())
        pipe.xadd(self.keys.job_events(job.id), {"event": _event("queued", JobState.QUEUED)},
                  maxlen=EVENTS_MAXLEN, approximate=True)
        pipe.execute()
        self.client.zadd(self.keys.jobs_index, {job.id: job.created_at})
        self.client.xadd(self.keys.jobs_stream, {"job": job.id})  # last: workers see it now
        self._prune_index()
        return job

    def _prune_index(self, count: int = 10) -> None:
        """Drops the oldest index entries whose records expired, so the index stays bounded.

        Records expire roughly oldest first, so a few looked at on each submission keep
        up with them.
        """
        oldest = [text(i) for i in self.client.zrange(self.keys.jobs_index, 0, count - 1)]
        pipe = self.client.pipeline(transaction=False)
        for job_id in oldest:
            pipe.exists(self.keys.job(job_id))
        gone = [j for j, exists in zip(oldest, pipe.execute(), strict=True) if not exists]
        if gone:
            self.client.zrem(self.keys.jobs_index, *gone)

    def get(self, job_id: str) -> JobRecord:
        h = self.client.hgetall(self.keys.job(job_id))
        if not h:
            raise NotFoundError(f"there is no job {job_id!r}")
        return JobRecord.from_hash(h)

    def list(self, limit: int = 50) -> list[JobRecord]:
        ids = self.client.zrevrange(self.keys.jobs_index, 0, max(1, limit) - 1)
        out = []
        for raw in ids:
            h = self.client.hgetall(self.keys.job(text(raw)))
            if h:
                out.append(JobRecord.from_hash(h))
            else:  # the record expired: drop it from the index too
                self.client.zrem(self.keys.jobs_index, raw)
        return out

    def cancel(self, job_id: str) -> JobRecord:
        """Queued jobs are cancelled at once; a running one at the end of its epoch."""
        k = self.keys
        done = self._cancel(
            keys=[k.job(job_id), k.job_events(job_id), k.job_checkpoint(job_id)],
            args=[*self._final_args(JobState.CANCELLED, {}, "cancelled before it started"),
                  json.dumps({"kind": "cancel_requested", "time": time.time()})])
        if done == -1:
            raise NotFoundError(f"there is no job {job_id!r}")
        return self.get(job_id)

    # -- events

    def events(self, job_id: str, from_start: bool = False, after_id: str = "",
               block_ms: int = 1000, alive: Callable[[], bool] = lambda: True
               ) -> Iterator[dict]:
        """The job's events as they happen (and those before, with from_start).

        Each event carries its stream entry "id"; a watcher that reconnects passes the
        last one it saw as after_id and gets exactly the events after it (event times
        come from several machines' clocks, so they cannot order events). The starting
        point is fixed by this call, not by the first `next()`; the iterator ends after
        the final event, or at once for an ended job watched from now, or within block_ms
        once `alive()` turns false (a watcher that went away must not wait for the job's
        next event, which may be hours off, to let go of its thread).
        """
        self.get(job_id)  # NotFoundError for an unknown job, here rather than later
        key = self.keys.job_events(job_id)
        last = "0-0"
        if after_id:
            if not _STREAM_ID.fullmatch(after_id) or any(
                    int(part) >= 2**64 for part in after_id.split("-")):
                raise InvalidArgumentError(f"after_id {after_id!r} is not an event id "
                                           "(two numbers below 2^64 joined by '-')")
            last = after_id
        elif not from_start:
            newest = self.client.xrevrange(key, count=1)
            last = text(newest[0][0]) if newest else "0-0"
        return self._follow(job_id, key, last, block_ms, alive)

    def _follow(self, job_id: str, key: str, last: str, block_ms: int,
                alive: Callable[[], bool]) -> Iterator[dict]:
        while alive():
            for _, entries in self.client.xread({key: last}, block=block_ms, count=100) or []:
                for entry_id, fields in entries:
                    last = text(entry_id)
                    event = json.loads(fields[b"event"])
                    event["id"] = last
                    yield event
                    if JobState(event["state"]).final:
                        return
            if self.get(job_id).state.final and not self._has_after(key, last):
                return

    def history(self, job_id: str) -> list[dict]:
        """Every event of the job so far, without waiting."""
        entries = self.client.xrange(self.keys.job_events(job_id))
        return [json.loads(fields[b"event"]) for _, fields in entries]

    def _has_after(self, key: str, last: str) -> bool:
        return bool(self.client.xrange(key, min=f"({last}", count=1))

    # -- the worker side: the stream entry

    def claim(self, consumer: str, claim_timeout_s: float, block_ms: int) -> Claim | None:
        """A job whose worker died (idle past the timeout) first, else a new one."""
        try:
            return self._claim(consumer, int(claim_timeout_s * 1000), block_ms)
        except redis.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self.ensure_group()  # a first start, or a Redis that lost its data
            return self._claim(consumer, int(claim_timeout_s * 1000), block_ms)

    def _claim(self, consumer: str, idle_ms: int, block_ms: int) -> Claim | None:
        k = self.keys
        # XPENDING IDLE searches the whole pending list; XCLAIM with the same minimum
        # idle time then takes the entry only if no other worker took it in between.
        stale = self.client.xpending_range(k.jobs_stream, k.group, min="-", max="+",
                                           count=1, idle=idle_ms)
        if stale:
            got = self.client.xclaim(k.jobs_stream, k.group, consumer, idle_ms,
                                     [stale[0]["message_id"]])
            for entry_id, fields in got:
                if fields:  # an entry deleted meanwhile comes back empty
                    return Claim(text(entry_id), text(fields[b"job"]))
        got = self.client.xreadgroup(k.group, consumer, {k.jobs_stream: ">"}, count=1,
                                     block=block_ms)
        for _, entries in got or []:
            for entry_id, fields in entries:
                return Claim(text(entry_id), text(fields[b"job"]))
        return None

    def refresh(self, claim: Claim, consumer: str) -> bool:
        """Resets the entry's idle time so no other worker takes a job this one still runs.

        False when the entry is no longer this consumer's (another worker claimed it
        while this one could not reach Redis): the job is not this worker's any more.
        """
        k = self.keys
        return bool(self._refresh(keys=[k.jobs_stream], args=[k.group, claim.entry_id, consumer]))

    def ack(self, claim: Claim) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.keys.jobs_stream, self.keys.group, claim.entry_id)
        pipe.xdel(self.keys.jobs_stream, claim.entry_id)
        pipe.execute()

    # -- the worker side: the job record

    def start(self, job_id: str, worker: str, resumed_from: int = 0,
              taken_from: str = "") -> int:
        """Marks the job running on `worker`; its attempt number, or 0 if it has ended.

        taken_from: the worker that held the job and stopped answering, if any.
        """
        message = (f"on {worker}"
                   + (f", taking over from {taken_from}, which stopped answering"
                      if taken_from else "")
                   + (f"; resumed after epoch {resumed_from}" if resumed_from else ""))
        return int(self._start(
            keys=[self.keys.job(job_id), self.keys.job_events(job_id)],
            args=[worker, str(time.time()),
                  _event("started", JobState.RUNNING, worker=worker, message=message,
                         resumed_from_epoch=resumed_from), EVENTS_MAXLEN]))

    def epoch_done(self, job_id: str, worker: str, progress: dict, checkpoint: bytes) -> bool:
        """Stores the epoch's checkpoint and progress; False when the job is not `worker`'s."""
        k = self.keys
        return bool(self._epoch(
            keys=[k.job(job_id), k.job_events(job_id), k.job_checkpoint(job_id)],
            args=[worker, json.dumps(progress),
                  _event("epoch", JobState.RUNNING, progress=progress), EVENTS_MAXLEN,
                  checkpoint]))

    def control(self, job_id: str) -> tuple[JobState | None, str, bool]:
        """(state, worker, cancel requested) in one read; state None once the record is gone."""
        state, worker, cancel = self.client.hmget(
            self.keys.job(job_id), ["state", "worker", "cancel_requested"])
        return (JobState(text(state)) if state else None, text(worker or b""), bool(cancel))

    def hand_back(self, claim: Claim, worker: str, reason: str) -> bool:
        """Puts a running job back in the queue at once, for any worker; False if not ours."""
        k = self.keys
        if not self._requeue(keys=[k.job(claim.job_id), k.job_events(claim.job_id)],
                             args=[worker, _event("requeued", JobState.QUEUED, message=reason),
                                   EVENTS_MAXLEN]):
            return False
        return bool(self._hand_back(keys=[k.jobs_stream],
                                    args=[k.group, claim.entry_id, worker, claim.job_id]))

    def finish(self, job_id: str, state: JobState, result: dict | None = None,
               error: str = "") -> bool:
        """Ends the job; False when it had ended already (the first final state wins)."""
        k = self.keys
        done = self._finish(keys=[k.job(job_id), k.job_events(job_id), k.job_checkpoint(job_id)],
                            args=self._final_args(state, result or {}, error))
        return done == 1

    def _final_args(self, state: JobState, result: dict, error: str) -> list:
        fields = {"state": state.value, "finished_at": str(time.time()),
                  "result": json.dumps(result), "error": error}
        return [json.dumps(fields), _event(state.value, state, result=result, message=error),
                EVENTS_MAXLEN, self.record_ttl_s]

    # -- checkpoints

    def load_checkpoint(self, job_id: str) -> bytes | None:
        return self.client.get(self.keys.job_checkpoint(job_id))

    def depth(self) -> tuple[int, int]:
        """(entries waiting for a worker, entries held by workers).

        Acked entries are deleted, so the stream holds exactly the waiting and the held.
        """
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(k.jobs_stream)
        pipe.xpending(k.jobs_stream, k.group)
        length, pending = pipe.execute(raise_on_error=False)
        if isinstance(length, Exception):
            raise length
        held = 0 if isinstance(pending, redis.ResponseError) else int(pending["pending"])
        return max(0, int(length) - held), held
