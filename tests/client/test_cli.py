"""Every `nndl` command against a real server on loopback, called in-process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nndl.client import DigitsClient
from nndl.client.charts import MISTAKE, TRAINING, VALIDATION
from nndl.client.cli import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from tests.client.conftest import TINY_JOB, Live

pytestmark = pytest.mark.timeout(120)


def run(capsys: pytest.CaptureFixture, live: Live | None, *argv: str) -> tuple[int, str, str]:
    server = ["--server", live.address] if live else []
    code = main([*server, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The error output is one sentence starting "nndl:", never a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nndl: "), err
    assert "Traceback" not in err
    return lines[0]


def colour_present(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    return bool(np.any(np.all(pixels == colour, axis=1)))


# ---------------------------------------------------------------- classify


def test_classify_files_and_folders_recursively_as_json(capsys, live, digit_files) -> None:
    folder, labels = digit_files
    code, out, _ = run(capsys, live, "classify", "--json", "--model", "mnist@1", str(folder))
    assert code == EXIT_OK
    rows = json.loads(out)
    assert [Path(r["file"]).name for r in rows] == [f"digit-{i}.png" for i in range(8)]
    assert any("more" in r["file"] for r in rows)  # the subfolder was searched
    assert {(r["model"], r["version"]) for r in rows} == {("mnist", 1)}
    assert all(0.1 <= r["confidence"] <= 1 for r in rows)
    right = sum(r["digit"] == t for r, t in zip(rows, labels, strict=True))
    assert right >= 6  # a two-epoch network still reads most clean MNIST digits


def test_classify_prints_file_digit_and_confidence(capsys, live, digit_files) -> None:
    folder, _ = digit_files
    first = folder / "digit-0.png"
    code, out, _ = run(capsys, live, "classify", str(first))
    assert code == EXIT_OK
    name, digit, confidence, percent = out.split()
    assert name == str(first) and digit.isdigit() and percent == "%"
    with DigitsClient(live.address) as c:
        assert int(digit) == c.classify(first).digit
    assert 10 <= float(confidence) <= 100


def test_classify_reads_stdin(capsys, live, digit_files, monkeypatch) -> None:
    folder, _ = digit_files
    data = (folder / "digit-1.png").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(capsys, live, "classify", "--json", "-")
    assert code == EXIT_OK
    [row] = json.loads(out)
    with DigitsClient(live.address) as c:
        assert row["file"] == "-" and row["digit"] == c.classify(data).digit


def test_a_bad_image_is_reported_and_the_rest_classified(capsys, live, digit_files,
                                                         tmp_path) -> None:
    folder, _ = digit_files
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    code, out, err = run(capsys, live, "classify", str(folder / "digit-0.png"), str(bad))
    assert code == EXIT_BAD_INPUT
    assert "not an image" in one_line(err) and "notes.png" in err
    assert out.count("\n") == 1 and "digit-0.png" in out


def test_a_missing_file_is_one_sentence(capsys, live, tmp_path) -> None:
    code, _, err = run(capsys, live, "classify", str(tmp_path / "nowhere.png"))
    assert code == EXIT_BAD_INPUT
    assert "is not a file or folder" in one_line(err)


def test_an_unknown_model_says_how_to_find_the_right_one(capsys, live, digit_files) -> None:
    folder, _ = digit_files
    code, _, err = run(capsys, live, "classify", "--model", "nosuch", str(folder))
    assert code == EXIT_REFUSED
    line = one_line(err)
    assert "no model named 'nosuch'" in line and "nndl models list" in line


def test_an_unreachable_server_is_one_sentence_with_the_fix(capsys) -> None:
    code, _, err = run(capsys, None, "--server", "127.0.0.1:9", "--timeout", "2", "jobs", "list")
    assert code == EXIT_UNREACHABLE
    line = one_line(err)
    assert "cannot reach the nndl server at 127.0.0.1:9" in line and "NNDL_SERVER" in line


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, EXIT_BAD_INPUT, "cannot read the job spec"),
        ("{not json", EXIT_BAD_INPUT, "is not valid JSON"),
        ("[1, 2]", EXIT_BAD_INPUT, "holds a JSON list; it must be a JSON object"),
    ],
)
def test_a_bad_spec_file_is_one_sentence(capsys, tmp_path, content, code, message) -> None:
    spec = tmp_path / "spec.json"
    if content is not None:
        spec.write_text(content)
    got, _, err = run(capsys, None, "--server", "127.0.0.1:9", "train", "--spec", str(spec))
    assert got == code and message in one_line(err)


def test_bad_flag_values_are_usage_errors(capsys) -> None:
    code, _, err = run(capsys, None, "--server", "127.0.0.1:9", "train", "--layers", "784,x,10")
    assert code == EXIT_USAGE and "--layers takes sizes separated by commas" in one_line(err)
    assert main(["--timeout", "0", "jobs", "list"]) == EXIT_USAGE
    assert "must be more than 0 seconds" in capsys.readouterr().err


def test_the_server_comes_from_the_environment(capsys, live, monkeypatch) -> None:
    monkeypatch.setenv("NNDL_SERVER", live.address)
    code, out, _ = run(capsys, None, "models", "list", "--json")
    assert code == EXIT_OK and json.loads(out)[0]["name"] == "mnist"


# ---------------------------------------------------------------- train and jobs


def test_train_follows_the_job_with_plain_progress_lines(capsys, live) -> None:
    code, out, err = run(capsys, live, "train", "--preset", "ch3", "--epochs", "2",
                         "--train-size", "3000", "--init", "scaled", "--model", "cli-train",
                         "--json")
    assert code == EXIT_OK, err
    job = json.loads(out)
    assert job["state"] == "succeeded" and job["result"]["model"] == "cli-train"
    assert job["spec"]["epochs"] == 2 and job["spec"]["train_size"] == 3000
    assert "\r" not in err  # not a terminal: one line per event, no rewriting
    epochs = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and "validation" in epochs[-1] and "ETA" in epochs[-1]
    assert "published cli-train version 1" in err and "the book: 95.49 %" in err


def test_train_says_whether_its_alias_moved(capsys, live) -> None:
    job = ["train", "--preset", "ch3", "--epochs", "1", "--train-size", "1000", "--init",
           "scaled", "--model", "cli-promote", "--promote", "best"]
    code, _, err = run(capsys, live, *job)
    assert code == EXIT_OK and "; cli-promote@best now points at it" in err
    code, _, err = run(capsys, live, *job)  # the same seed: as good, so not better
    assert code == EXIT_OK
    assert "; cli-promote@best stays where it was (this version did not beat it)" in err


def test_train_with_explicit_options_and_detach(capsys, live) -> None:
    code, out, _ = run(capsys, live, "train", "--layers", "784,20,10", "--eta", "0.5",
                       "--epochs", "1", "--train-size", "1000", "--model", "cli-detach",
                       "--detach")
    assert code == EXIT_OK
    job_id = out.strip()
    code, out, err = run(capsys, live, "jobs", "watch", job_id)
    assert code == EXIT_OK and "published cli-detach version 1" in err
    code, out, _ = run(capsys, live, "jobs", "show", job_id, "--json")
    shown = json.loads(out)
    assert shown["id"] == job_id and shown["spec"]["layers"] == [784, 20, 10]
    code, out, _ = run(capsys, live, "jobs", "show", job_id)
    assert f"job {job_id}: succeeded" in out and "cli-detach version 1" in out


def test_a_bad_option_is_refused_with_the_servers_reason(capsys, live) -> None:
    code, _, err = run(capsys, live, "train", "--preset", "ch1", "--eta", "-1")
    assert code == EXIT_REFUSED and "eta must be between" in one_line(err)


def test_empty_stdin_is_named(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, _, err = run(capsys, None, "--server", "127.0.0.1:9", "classify", "-")
    assert code == EXIT_BAD_INPUT and "stdin is empty" in one_line(err)


def test_cancelling_a_finished_job_says_there_is_nothing_to_cancel(capsys, live) -> None:
    code, out, _ = run(capsys, live, "jobs", "cancel", live.job_id)
    assert code == EXIT_OK
    assert out.strip() == f"job {live.job_id}: already succeeded; there is nothing to cancel"


def test_jobs_list_cancel_and_a_cancelled_watch(capsys, live) -> None:
    with DigitsClient(live.address) as c:
        job = c.submit("ch3", **{**TINY_JOB, "epochs": 400, "model": "cli-cancel"})
    code, out, _ = run(capsys, live, "jobs", "cancel", job.id, "--json")
    cancelled = json.loads(out)  # at once while queued, else after the running epoch
    assert code == EXIT_OK and (cancelled["state"] == "cancelled" or cancelled["cancel_requested"])
    code, _, err = run(capsys, live, "jobs", "watch", job.id)
    assert code == EXIT_JOB_FAILED and "cancelled" in err
    code, out, _ = run(capsys, live, "jobs", "list", "--json")
    states = {j["id"]: j["state"] for j in json.loads(out)}
    assert states[job.id] == "cancelled" and states[live.job_id] == "succeeded"
    code, out, _ = run(capsys, live, "jobs", "list")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "PRESET"]
    assert any(r.startswith(live.job_id) and "mnist@1" in r for r in rows)


def test_an_unknown_job_says_where_to_look(capsys, live) -> None:
    code, _, err = run(capsys, live, "jobs", "show", "nosuchjob")
    assert code == EXIT_REFUSED and "nndl jobs list" in one_line(err)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _interrupt_after_first_event(monkeypatch) -> None:
    real = DigitsClient.watch

    def watch(self, job_id, from_start=True, timeout=None):
        for event in real(self, job_id, from_start, timeout):
            yield event
            raise KeyboardInterrupt

    monkeypatch.setattr(DigitsClient, "watch", watch)


@pytest.mark.parametrize("answer, expected", [("y\n", "cancel requested"),
                                              ("n\n", "stopped watching")])
def test_ctrl_c_asks_whether_to_cancel(capsys, live, monkeypatch, answer, expected) -> None:
    with DigitsClient(live.address) as c:
        job = c.submit("ch3", **{**TINY_JOB, "epochs": 400, "model": "cli-ctrl-c"})
        _interrupt_after_first_event(monkeypatch)
        monkeypatch.setattr(sys, "stdin", _Tty(answer))
        code, _, err = run(capsys, live, "jobs", "watch", job.id)
        assert code == EXIT_INTERRUPTED
        assert f"cancel job {job.id} on the server? [y/N]" in err and expected in err
        asked = c.job(job.id).cancel_requested
        c.cancel(job.id)
    assert asked == (answer == "y\n")


def test_ctrl_c_without_a_terminal_just_stops_watching(capsys, live, monkeypatch) -> None:
    _interrupt_after_first_event(monkeypatch)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal: never asked
    code, _, err = run(capsys, live, "jobs", "watch", live.job_id)
    assert code == EXIT_INTERRUPTED
    assert "[y/N]" not in err and f"nndl jobs watch {live.job_id}" in err


# ---------------------------------------------------------------- models


def test_models_list_show_and_promote(capsys, live) -> None:
    code, out, _ = run(capsys, live, "models", "promote", "mnist@1", "production")
    assert code == EXIT_OK and out.strip() == "mnist@production -> version 1"
    code, out, _ = run(capsys, live, "models", "list", "--json")
    mnist = next(m for m in json.loads(out) if m["name"] == "mnist")
    assert mnist["aliases"]["production"] == 1 and mnist["loaded_version"] == 1
    assert mnist["versions"][0]["job_id"] == live.job_id
    code, out, _ = run(capsys, live, "models", "show", "mnist@production", "--json")
    shown = json.loads(out)
    assert shown["lineage"]["job_id"] == live.job_id
    assert len(shown["lineage"]["history"][0]) == TINY_JOB["epochs"]
    code, out, _ = run(capsys, live, "models", "show", "mnist")
    assert "production=1" in out and live.job_id in out and "[784, 30, 10]" in out
    code, _, err = run(capsys, live, "models", "promote", "mnist@nosuch", "x")
    assert code == EXIT_REFUSED and "nndl models list" in one_line(err)


def test_models_unalias(capsys, live) -> None:
    run(capsys, live, "models", "promote", "mnist@1", "staging")
    code, out, _ = run(capsys, live, "models", "unalias", "mnist", "staging")
    assert code == EXIT_OK and out.strip() == "mnist@staging removed"
    code, out, _ = run(capsys, live, "models", "list", "--json")
    assert "staging" not in next(m for m in json.loads(out) if m["name"] == "mnist")["aliases"]
    code, _, err = run(capsys, live, "models", "unalias", "mnist", "staging")
    assert code == EXIT_REFUSED and "no alias 'staging'" in one_line(err)


def test_models_import_a_book_network(capsys, live, tmp_path) -> None:
    rng = np.random.default_rng(0)
    book = {"sizes": [784, 10, 10], "cost": "CrossEntropyCost",
            "weights": [rng.normal(size=(10, 784)).tolist(), rng.normal(size=(10, 10)).tolist()],
            "biases": [rng.normal(size=(10, 1)).tolist(), rng.normal(size=(10, 1)).tolist()]}
    path = tmp_path / "network2.json"
    path.write_text(json.dumps(book))
    code, out, _ = run(capsys, live, "models", "import", "book-net", str(path), "--json")
    assert code == EXIT_OK and json.loads(out)["version"] == 1
    code, _, err = run(capsys, live, "models", "import", "book-net", str(tmp_path / "no.json"))
    assert code == EXIT_BAD_INPUT and "network2.py" in one_line(err)


# ---------------------------------------------------------------- eval and plot


def test_eval_reports_accuracy_confusion_and_saves_the_worst_mistakes(capsys, live,
                                                                      tmp_path) -> None:
    grid = tmp_path / "mistakes.png"
    code, out, _ = run(capsys, live, "eval", "--mnist", live.mnist_path, "--limit", "2000",
                       "--model", "mnist@1", "--mistakes", str(grid), "--count", "16", "--json")
    assert code == EXIT_OK
    report = json.loads(out)
    confusion = np.array(report["confusion"])
    assert report["images"] == 2000 == confusion.sum() and confusion.shape == (10, 10)
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 2000)
    assert 0.8 < report["accuracy"] < 1
    assert all(0 <= a <= 1 for a in report["per_digit"])
    with Image.open(grid) as im:
        assert im.format == "PNG" and im.size == (8 * 92 + 8, 2 * 110 + 8)  # 16 tiles
        assert colour_present(im, MISTAKE)  # the captions
        assert np.asarray(im.convert("L")).min() < 50  # dark ink of the digits
    code, out, _ = run(capsys, live, "eval", "--mnist", live.mnist_path, "--limit", "500")
    assert code == EXIT_OK and "500 test images right" in out and "true\\said" in out


def test_eval_of_the_whole_test_set_matches_the_published_accuracy(capsys, live) -> None:
    code, out, _ = run(capsys, live, "eval", "--mnist", live.mnist_path, "--model", "mnist@1",
                       "--json")
    assert code == EXIT_OK
    with DigitsClient(live.address) as c:
        published = c.job(live.job_id).result.test_accuracy
    assert json.loads(out)["accuracy"] == pytest.approx(published, abs=1e-9)


@pytest.mark.parametrize(("argv", "message"), [
    (["classify", "--model", "Bad/Name", "x.png"], "model name 'Bad/Name' is not valid"),
    (["classify", "--model", "mnist@", "x.png"], "ends in '@'"),
    (["classify", "--model", "", "x.png"], "model name '' is not valid"),
    (["eval", "--model", ""], "model name '' is not valid"),
    (["eval", "--limit", "0"], "--limit: must be at least 1, not 0"),
    (["eval", "--mistakes", "/nonexistent/dir/x.png"], "the folder /nonexistent/dir does not"),
    (["plot", "job", "-o", "curves.txt"], "curves.txt: the output is a PNG"),
])
def test_flag_values_that_can_never_work_are_refused_before_any_call(capsys, argv,
                                                                      message) -> None:
    assert main(["--server", "127.0.0.1:9", *argv]) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--json", "eval", "--limit", "0"],
    ["eval", "--json", "--limit", "0"],
    ["--json", "nosuchcommand"],
])
def test_usage_errors_with_json_print_an_error_document(capsys, argv) -> None:
    code, out, err = run(capsys, None, "--server", "127.0.0.1:9", *argv)
    document = json.loads(out)
    assert code == EXIT_USAGE and document["exit_code"] == EXIT_USAGE
    assert document["error"] in err and "usage: nndl" in err


def test_json_may_come_before_the_command(capsys) -> None:
    code, out, err = run(capsys, None, "--json", "--server", "127.0.0.1:9", "--timeout", "2",
                         "models", "list")
    assert code == EXIT_UNREACHABLE
    assert json.loads(out)["error"] == one_line(err).removeprefix("nndl: ")


def test_a_failure_with_json_prints_an_error_document(capsys) -> None:
    code, out, err = run(capsys, None, "--server", "127.0.0.1:9", "--timeout", "2", "jobs",
                         "list", "--json")
    assert code == EXIT_UNREACHABLE
    assert json.loads(out) == {"error": one_line(err).removeprefix("nndl: "),
                               "exit_code": EXIT_UNREACHABLE}


def test_plot_draws_the_learning_curves(capsys, live, tmp_path) -> None:
    path = tmp_path / "curves.png"
    code, out, _ = run(capsys, live, "plot", live.job_id, "-o", str(path))
    assert code == EXIT_OK and out.strip() == str(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (1200, 520)
        left, right = im.crop((0, 0, 600, 520)), im.crop((600, 0, 1200, 520))
        assert colour_present(left, VALIDATION)  # validation accuracy
        assert colour_present(right, TRAINING) and colour_present(right, VALIDATION)  # costs


def test_plot_of_an_unknown_job(capsys, live) -> None:
    code, _, err = run(capsys, live, "plot", "nosuchjob")
    assert code == EXIT_REFUSED and "nndl jobs list" in one_line(err)


# ---------------------------------------------------------------- the console script


def test_the_installed_nndl_command(live) -> None:
    nndl = Path(sys.executable).parent / "nndl"
    done = subprocess.run([str(nndl), "models", "list", "--server", live.address, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "mnist" in {m["name"] for m in json.loads(done.stdout)}
    done = subprocess.run([str(nndl), "--server", "127.0.0.1:9", "--timeout", "2", "models",
                           "list"], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_UNREACHABLE and done.stdout == ""
    assert done.stderr.startswith("nndl: cannot reach") and "Traceback" not in done.stderr
    done = subprocess.run([str(nndl), "train", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "examples:" in done.stdout and "--preset" in done.stdout
