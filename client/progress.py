"""Following a job: a progress bar that rewrites itself on a terminal, plain lines elsewhere
(so logs and CI output stay readable)."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from nndl.client.client import DigitsClient
from nndl.v1 import nndl_pb2 as pb

BAR_WIDTH = 24


def duration(seconds: float) -> str:
    """42 s → "0:42", 3725 s → "1:02:05"."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def result_line(r: pb.JobResult) -> str:
    book = f" (the book: {100 * r.book_accuracy:.2f} %)" if r.book_accuracy else ""
    alias = ""
    if r.promote:
        alias = (f"; {r.model}@{r.promote} now points at it" if r.promoted else
                 f"; {r.model}@{r.promote} stays where it was (this version did not beat it)")
    return (f"published {r.model} version {r.version}: test accuracy "
            f"{100 * r.test_accuracy:.2f} %{book}, trained in {duration(r.duration_seconds)}"
            f"{alias}")


class ProgressView:
    """Renders a job's events; `total` counts every epoch of every network of the job."""

    def __init__(self, out: TextIO, total: int, tty: bool | None = None) -> None:
        self.out, self.total = out, max(1, total)
        self.tty = out.isatty() if tty is None else tty
        self.done = 0
        self._open_line = False  # a bar is on screen without its newline yet

    def show(self, event: pb.JobEvent) -> None:
        if event.kind == "epoch":
            self.done += 1
            self._write(self._epoch_line(event.progress), rewrite=self.tty)
        else:
            self._write(self._event_line(event), rewrite=False)

    def close(self) -> None:
        """Ends a bar left on screen, so whatever prints next starts on its own line."""
        if self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = False

    def _write(self, line: str, rewrite: bool) -> None:
        if self.tty and self._open_line and not rewrite:
            self.out.write("\n")  # the last bar stays on screen above the event
        elif self.tty:
            self.out.write("\r\033[K")
        self.out.write(line if rewrite else line + "\n")
        self._open_line = rewrite
        self.out.flush()

    def _epoch_line(self, p: pb.EpochProgress) -> str:
        fraction = min(1.0, self.done / self.total)
        filled = int(fraction * BAR_WIDTH)
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
        accuracy = (f"validation {100 * p.validation_accuracy:.2f} %"
                    if p.validation_accuracy else "")
        return (f"epoch {p.epoch:>{len(str(p.epochs))}}/{p.epochs} [{bar}] {100 * fraction:3.0f}%"
                f"  {accuracy}  cost {p.training_cost:.4f}  {p.epoch_seconds:.1f} s/epoch"
                f"  ETA {duration(p.eta_seconds)}")

    @staticmethod
    def _event_line(event: pb.JobEvent) -> str:
        if event.kind == "queued":
            return "queued; waiting for a trainer worker"
        if event.kind == "cancel_requested":
            return "cancel requested; the job stops after its current epoch"
        if event.kind == "succeeded":
            return result_line(event.result)
        return event.kind + (f": {event.message}" if event.message else "")


def planned_epochs(job: pb.Job) -> int:
    """Epochs of the whole job: an ensemble trains `ensemble` networks one after another."""
    spec = json.loads(job.spec_json or "{}")
    return int(spec.get("epochs", 1)) * int(spec.get("ensemble", 1))


def follow_job(client: DigitsClient, job_id: str, out: TextIO | None = None) -> pb.Job:
    """Shows the job's events from its start until it ends (a failure's reason included);
    returns the final job."""
    out = out or sys.stderr
    view = ProgressView(out, planned_epochs(client.job(job_id)))
    try:
        for event in client.watch(job_id, from_start=True):
            view.show(event)
    finally:
        view.close()
    return client.job(job_id)
