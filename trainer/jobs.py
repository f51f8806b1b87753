"""Job states and the job record as stored in Redis."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class JobState(StrEnum):
    """queued -> running -> succeeded | failed | cancelled; running -> queued on a hand-back."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """A final state never changes again."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class JobRecord:
    """Everything known about one job; stored as one Redis hash."""

    id: str
    state: JobState
    spec: dict
    created_at: float
    preset: str = ""
    attempts: int = 0  # times a worker started it
    handbacks: int = 0  # attempts a stopping worker gave back: they are not failures
    worker: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    progress: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    error: str = ""
    cancel_requested: bool = False

    def to_hash(self) -> dict[str, str]:
        d = asdict(self)
        for k in ("spec", "progress", "result"):
            d[k] = json.dumps(d[k])
        d["state"] = self.state.value
        d["cancel_requested"] = "1" if self.cancel_requested else ""
        return {k: str(v) for k, v in d.items()}

    @classmethod
    def from_hash(cls, h: dict) -> JobRecord:
        g = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
             else v) for k, v in h.items()}
        return cls(
            id=g["id"], state=JobState(g["state"]), spec=json.loads(g["spec"]),
            created_at=float(g["created_at"]), preset=g.get("preset", ""),
            attempts=int(g.get("attempts", 0)), handbacks=int(g.get("handbacks", 0)),
            worker=g.get("worker", ""),
            started_at=float(g.get("started_at", 0) or 0),
            finished_at=float(g.get("finished_at", 0) or 0),
            progress=json.loads(g.get("progress") or "{}"),
            result=json.loads(g.get("result") or "{}"), error=g.get("error", ""),
            cancel_requested=bool(g.get("cancel_requested")),
        )
