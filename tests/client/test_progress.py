"""The progress bar: rewritten in place on a terminal, one line an event elsewhere."""

from __future__ import annotations

import io

from nndl.client.progress import ProgressView, duration
from nndl.v1 import nndl_pb2 as pb


def _events() -> list[pb.JobEvent]:
    epochs = [pb.JobEvent(kind="epoch", progress=pb.EpochProgress(
        epoch=e, epochs=4, validation_accuracy=0.9 + e / 100, training_cost=0.5 / e,
        epoch_seconds=4.0, eta_seconds=(4 - e) * 4.0)) for e in (1, 2)]
    return [pb.JobEvent(kind="queued"), *epochs,
            pb.JobEvent(kind="failed", message="the training cost became nan")]


def _render(tty: bool) -> str:
    out = io.StringIO()
    view = ProgressView(out, total=4, tty=tty)
    for event in _events():
        view.show(event)
    view.close()
    return out.getvalue()


def test_on_a_terminal_the_bar_rewrites_itself() -> None:
    text = _render(tty=True)
    assert text.count("\r\033[K") == 3
    bar_2, event = text.split("\r\033[K")[3].split("\n", 1)
    assert bar_2.startswith("epoch 2/4 [============>") and " 50%" in bar_2
    assert "validation 92.00 %" in bar_2 and "ETA 0:08" in bar_2
    assert event == "failed: the training cost became nan\n"  # below the last bar


def test_elsewhere_each_event_is_a_plain_line() -> None:
    lines = _render(tty=False).splitlines()
    assert "\r" not in "".join(lines) and "\033" not in "".join(lines)
    assert lines[0] == "queued; waiting for a trainer worker"
    assert lines[1].startswith("epoch 1/4") and lines[2].startswith("epoch 2/4")
    assert lines[3] == "failed: the training cost became nan"


def test_durations_read_like_clocks() -> None:
    assert [duration(s) for s in (0, 42, 61, 3725)] == ["0:00", "0:42", "1:01", "1:02:05"]
