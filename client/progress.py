"""Following a job: a progress line that rewrites itself on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys

from nndl.client.client import STATE_NAMES, DigitsClient
from nndl.v1 import nndl_pb2 as pb


def _line(event: pb.JobEvent) -> str:
    p = event.progress
    if event.kind == "epoch":
        return (f"epoch {p.epoch}/{p.epochs}  validation {100 * p.validation_accuracy:.2f} %  "
                f"cost {p.training_cost:.4f}  {p.epoch_seconds:.1f} s/epoch  "
                f"ETA {p.eta_seconds:.0f} s")
    if event.kind == "succeeded":
        r = event.result
        book = f"  (book {100 * r.book_accuracy:.2f} %)" if r.book_accuracy else ""
        return (f"succeeded: {r.model} version {r.version}, test accuracy "
                f"{100 * r.test_accuracy:.2f} %{book}")
    return f"{event.kind}{': ' + event.message if event.message else ''}"


def follow_job(client: DigitsClient, job_id: str, out=None) -> pb.Job:
    """Prints the job's events until it ends; returns the final job."""
    out = out or sys.stderr
    tty = out.isatty()
    for event in client.watch(job_id, from_start=True):
        line = _line(event)
        if tty and event.kind == "epoch":
            out.write("\r\033[K" + line)
        else:
            out.write(("\r\033[K" if tty else "") + line + "\n")
        out.flush()
    job = client.job(job_id)
    if job.error:
        out.write(f"job {job_id} {STATE_NAMES[job.state]}: {job.error}\n")
    return job
