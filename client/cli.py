"""`nndl`: classify digits, train the book's networks and manage models on an nndl server.

examples:
  nndl classify seven.png digits/             classify files and folders (recursively)
  cat seven.png | nndl classify -             ... or an image on stdin
  nndl classify --json --model mnist@production digits/
  nndl train --preset ch3-l2                  train a book preset, with a progress bar
  nndl train --layers 784,100,10 --eta 0.5 --epochs 10 --init scaled
  nndl jobs list                              jobs, newest first; also show|watch|cancel ID
  nndl models promote mnist@3 production      point an alias at a version
  nndl eval --mistakes mistakes.png           the MNIST test set through the server
  nndl plot JOB_ID -o curves.png              learning curves of a job, as a PNG

The server, token and TLS certificate come from --server, --token and --tls-ca, or from
NNDL_SERVER, NNDL_TOKEN and NNDL_TLS_CA. Results go to stdout, progress to stderr.

exit codes:
  0  done                        3  the job failed or was cancelled
  1  the call failed            4  the server could not be reached or timed out
  2  wrong usage                 5  an input file is missing or unusable (not an image,
                                    not a JSON job spec)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict

from nndl.client.charts import learning_curves
from nndl.client.client import DEFAULT_ADDRESS, FINAL_STATES, STATE_NAMES, ClientError, DigitsClient
from nndl.client.evaluate import confusion_table, evaluate, mistakes_image
from nndl.client.progress import duration, follow_job, result_line
from nndl.v1 import nndl_pb2 as pb

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_JOB_FAILED, EXIT_UNREACHABLE, EXIT_BAD_INPUT = range(6)
EXIT_INTERRUPTED = 130
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
CLASSIFY_BATCH = 64  # files a request
Args = argparse.Namespace


class BadInput(ClientError):
    """A file the command was given cannot be used (exit code 5)."""


class UsageError(ClientError):
    """A flag's value that can never work (exit code 2, like argparse's own errors)."""


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _model_ref(text: str) -> str:
    """NAME, NAME@VERSION or NAME@ALIAS, checked here so a typo never reaches the server."""
    from nndl.trainer.errors import NndlError
    from nndl.trainer.registry import parse_ref

    try:
        parse_ref(text)
    except NndlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _png_path(text: str) -> str:
    """An output file that can be written: checked before any work is done for it."""
    path = Path(text)
    if not text:  # "": the command's default name
        return text
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{text}: the output is a PNG; end the name in .png")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
    return text


# ---------------------------------------------------------------- output helpers


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, allow_nan=False))


def _table(header: Sequence[str], rows: list[Sequence[Any]]) -> None:
    """Columns aligned for people; --json is the format for programs."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _percent(x: float) -> str:
    return f"{100 * x:.2f} %" if x else "-"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _network_text(spec: dict) -> str:
    """The network of a job spec in one phrase: conv-pool layers first, then the dense ones."""
    convs = [f"conv {c.get('filters')}x{c.get('kernel')}x{c.get('kernel')} pool "
             f"{c.get('pool')}" for c in spec.get("conv") or []]
    return " + ".join([*convs, str(spec.get("layers"))]) + f" {spec.get('cost', '')}"


def _message_dict(m: Any) -> dict:
    """A message as JSON with every field, and 64-bit integers as numbers (protobuf's JSON
    mapping writes them as strings), so versions read the same in every command."""
    d = MessageToDict(m, preserving_proto_field_name=True,
                      always_print_fields_with_no_presence=True)
    _int64_as_numbers(m, d)
    return d


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def _int64_as_numbers(m: Any, d: dict) -> None:
    for f in m.DESCRIPTOR.fields:
        if f.name not in d:
            continue
        kind = f.message_type
        if kind is not None and kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].type in _INT64:
                d[f.name] = {k: int(v) for k, v in d[f.name].items()}
        elif kind is not None:
            values = getattr(m, f.name)
            for sub, sub_d in (zip(values, d[f.name], strict=True) if f.is_repeated
                               else [(values, d[f.name])]):
                _int64_as_numbers(sub, sub_d)
        elif f.type in _INT64:
            d[f.name] = [int(v) for v in d[f.name]] if f.is_repeated else int(d[f.name])


def job_dict(job: pb.Job) -> dict:
    """A job as plain JSON: the state by name and the spec as an object."""
    d = _message_dict(job)
    d["state"] = STATE_NAMES[job.state]
    d["spec"] = json.loads(d.pop("spec_json") or "{}")
    return d


def model_dict(m: pb.ModelInfo) -> dict:
    d = _message_dict(m)
    d["lineage"] = json.loads(d.pop("lineage_json") or "null")
    return d


# ---------------------------------------------------------------- classify


def _image_files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BadInput(f"{p} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise BadInput(f"{p} is not a file or folder; check the path")
    return out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror or e}") from e


def _classify_files(c: DigitsClient, items: list[tuple[str, bytes]], model: str,
                    ) -> list[dict]:
    """Batches of files in one request each; a batch the server rejects for a bad image
    is retried file by file, so one bad file costs only its own answer."""
    rows: list[dict] = []
    for start in range(0, len(items), CLASSIFY_BATCH):
        chunk = items[start:start + CLASSIFY_BATCH]
        try:
            results = c.classify_batch([data for _, data in chunk], model=model)
            rows += [_row(name, r) for (name, _), r in zip(chunk, results, strict=True)]
        except ClientError as e:
            if e.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            for name, data in chunk:
                try:
                    rows.append(_row(name, c.classify(data, model=model)))
                except ClientError as one:
                    if one.code != grpc.StatusCode.INVALID_ARGUMENT:
                        raise
                    rows.append({"file": name, "error": str(one)})
    return rows


def _row(name: str, r: Any) -> dict:
    return {"file": name, "digit": r.digit, "confidence": round(r.confidence, 6),
            "model": r.model, "version": r.version}


def cmd_classify(args: Args) -> int:
    if args.paths == ["-"]:
        data = sys.stdin.buffer.read()
        if not data:
            raise BadInput("stdin is empty; pipe an image into 'nndl classify -'")
        items = [("-", data)]
    else:
        items = [(str(f), _read(f)) for f in _image_files(args.paths)]
    with _client(args) as c:
        rows = _classify_files(c, items, args.model or "")
    bad = [r for r in rows if "error" in r]
    if args.json:
        _print_json(rows)
    else:
        width = max(len(r["file"]) for r in rows)
        for r in rows:
            if "error" not in r:
                print(f"{r['file']:<{width}}  {r['digit']}  {100 * r['confidence']:5.1f} %")
    for r in bad:
        print(f"nndl: {r['file']}: {r['error']}", file=sys.stderr)
    return EXIT_BAD_INPUT if bad else EXIT_OK


# ---------------------------------------------------------------- train

# Spec fields with a flag of their own: (flag, type, help). The server validates them all.
TRAIN_OPTIONS: list[tuple[str, Callable[[str], Any], str]] = [
    ("model", str, "registry name to publish under (default mnist)"),
    ("layers", str, "layer sizes, e.g. 784,100,10"),
    ("activation", str, "hidden neurons: sigmoid, tanh, relu, ..."),
    ("output", str, "output neurons: sigmoid or softmax"),
    ("cost", str, "quadratic, cross_entropy or log_likelihood"),
    ("init", str, "weights: large (N(0,1)) or scaled (N(0,1/n_in))"),
    ("epochs", int, "passes over the training data"),
    ("mini-batch-size", int, "images per gradient step"),
    ("eta", float, "learning rate"),
    ("lmbda", float, "L2 regularisation"),
    ("l1", float, "L1 regularisation"),
    ("momentum", float, "momentum coefficient (0 = plain SGD)"),
    ("dropout", float, "dropout rate of hidden neurons"),
    ("early-stopping", int, "stop after this many epochs without improvement"),
    ("eta-schedule", int, "halve eta after this many epochs without improvement"),
    ("train-size", int, "train on the first N training images"),
    ("expand", str, "augment the training data: none, shift or shift+rotate"),
    ("ensemble", int, "train N networks and average them"),
    ("seed", int, "random seed"),
    ("device", str, "cpu, gpu or auto"),
    ("dtype", str, "float32 or float64"),
    ("promote", str, "move this alias to the result when it beats the alias's holder"),
]


def _spec_from_args(args: Args) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.spec:
        try:
            spec = json.loads(Path(args.spec).read_text())
        except OSError as e:
            raise BadInput(f"cannot read the job spec {args.spec}: {e.strerror or e}") from e
        except (json.JSONDecodeError, RecursionError) as e:
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise BadInput(f"the job spec {args.spec} is not valid JSON ({reason}); it must be "
                           "a JSON object of job-spec fields") from None
        if not isinstance(spec, dict):
            raise BadInput(f"the job spec {args.spec} holds a JSON {type(spec).__name__}; it "
                           "must be a JSON object of job-spec fields, like {\"epochs\": 10}")
    for flag, _, _ in TRAIN_OPTIONS:
        name = flag.replace("-", "_")
        value = getattr(args, name)
        if value is None:
            continue
        if name == "layers":
            try:
                value = [int(v) for v in value.split(",")]
            except ValueError:
                raise UsageError(f"--layers takes sizes separated by commas, like "
                                 f"784,100,10, not {value!r}") from None
        spec[name] = value
    return spec


def _follow(c: DigitsClient, job_id: str) -> pb.Job | None:
    """Follows the job; on Ctrl-C asks whether to cancel it (only when someone can answer)
    and returns None."""
    try:
        return follow_job(c, job_id)
    except KeyboardInterrupt:
        if sys.stdin.isatty() and _ask(f"cancel job {job_id} on the server? [y/N] "):
            job = c.cancel(job_id)
            print(f"job {job_id}: cancel requested ({STATE_NAMES[job.state]}); a running job "
                  "stops after its current epoch", file=sys.stderr)
        else:
            print(f"stopped watching; job {job_id} carries on (follow it again with "
                  f"'nndl jobs watch {job_id}')", file=sys.stderr)
        return None


def _ask(question: str) -> bool:
    sys.stderr.write("\n" + question)
    sys.stderr.flush()
    try:
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    except (KeyboardInterrupt, EOFError):
        return False


def _finish(job: pb.Job | None, as_json: bool) -> int:
    if job is None:
        return EXIT_INTERRUPTED
    if as_json:
        _print_json(job_dict(job))
    return EXIT_OK if job.state == pb.JOB_STATE_SUCCEEDED else EXIT_JOB_FAILED


def cmd_train(args: Args) -> int:
    spec = _spec_from_args(args)
    if not args.preset and not spec:
        raise ClientError("say what to train: --preset NAME (ch1, ch3, ch3-l2, ...), "
                          "--spec FILE or options such as --layers and --epochs")
    with _client(args) as c:
        job = c.submit(args.preset, spec)
        print(f"submitted job {job.id}", file=sys.stderr)
        if args.detach:
            if args.json:
                _print_json(job_dict(job))
            else:
                print(job.id)
            return EXIT_OK
        return _finish(_follow(c, job.id), args.json)


# ---------------------------------------------------------------- jobs


def cmd_jobs_list(args: Args) -> int:
    with _client(args) as c:
        jobs = c.jobs(args.limit)
    if args.json:
        _print_json([job_dict(j) for j in jobs])
        return EXIT_OK
    rows = []
    for j in jobs:
        p, r = j.progress, j.result
        progress = f"{p.epoch}/{p.epochs}" if p.epochs else "-"
        rows.append([j.id, STATE_NAMES[j.state], j.preset or "-", progress,
                     _percent(r.test_accuracy or p.validation_accuracy),
                     f"{r.model}@{r.version}" if r.version else "-", _when(j.created_at)])
    _table(["ID", "STATE", "PRESET", "EPOCH", "ACCURACY", "MODEL", "CREATED"], rows)
    return EXIT_OK


def cmd_jobs_show(args: Args) -> int:
    with _client(args) as c:
        job = c.job(args.id)
    if args.json:
        _print_json(job_dict(job))
        return EXIT_OK
    spec = json.loads(job.spec_json or "{}")
    print(f"job {job.id}: {STATE_NAMES[job.state]}"
          + (" (cancel requested)" if job.cancel_requested and job.state not in FINAL_STATES
             else ""))
    print(f"  preset      {job.preset or '-'}")
    print(f"  network     {_network_text(spec)}, eta {spec.get('eta')}, "
          f"{_count(spec.get('epochs'), 'epoch')}")
    print(f"  created     {_when(job.created_at)}  started {_when(job.started_at)}  "
          f"finished {_when(job.finished_at)}")
    if job.worker:
        print(f"  worker      {job.worker} (attempt {job.attempts})")
    if job.progress.epochs:
        p = job.progress
        print(f"  progress    epoch {p.epoch}/{p.epochs}, validation "
              f"{_percent(p.validation_accuracy)}, cost {p.training_cost:.4f}")
    if job.result.version:
        print(f"  result      {result_line(job.result)}")
    if job.error:
        print(f"  error       {job.error}")
    return EXIT_OK


def cmd_jobs_watch(args: Args) -> int:
    with _client(args) as c:
        return _finish(_follow(c, args.id), args.json)


def cmd_jobs_cancel(args: Args) -> int:
    with _client(args) as c:
        before = c.job(args.id)
        job = before if before.state in FINAL_STATES else c.cancel(args.id)
    if args.json:
        _print_json(job_dict(job))
    elif job is before:
        print(f"job {job.id}: already {STATE_NAMES[job.state]}; there is nothing to cancel")
    elif job.state in FINAL_STATES:
        print(f"job {job.id}: {STATE_NAMES[job.state]}")
    else:
        print(f"job {job.id}: {STATE_NAMES[job.state]}, cancel requested; it stops after its "
              "current epoch")
    return EXIT_OK


# ---------------------------------------------------------------- models


def cmd_models_list(args: Args) -> int:
    with _client(args) as c:
        models = c.models()
    if args.json:
        _print_json([model_dict(m) for m in models])
        return EXIT_OK
    rows = []
    for m in models:
        latest = m.versions[-1] if m.versions else pb.ModelVersionInfo()
        aliases = ", ".join(f"{a}={v}" for a, v in sorted(m.aliases.items())) or "-"
        rows.append([m.name, len(m.versions), latest.version, _percent(latest.test_accuracy),
                     m.loaded_version or "-", aliases])
    _table(["NAME", "VERSIONS", "LATEST", "TEST", "SERVED", "ALIASES"], rows)
    return EXIT_OK


def cmd_models_show(args: Args) -> int:
    with _client(args) as c:
        m = c.model(args.ref)
    if args.json:
        _print_json(model_dict(m))
        return EXIT_OK
    aliases = ", ".join(f"{a}={v}" for a, v in sorted(m.aliases.items())) or "none"
    print(f"model {m.name}: served version {m.loaded_version or '-'}, aliases {aliases}")
    _table(["VERSION", "CREATED", "VALIDATION", "TEST", "NETWORKS", "PRESET", "JOB"],
           [[v.version, _when(v.created_at), _percent(v.validation_accuracy),
             _percent(v.test_accuracy), v.networks, v.preset or "-", v.job_id or "-"]
            for v in m.versions])
    lineage = json.loads(m.lineage_json or "{}")
    spec = lineage.get("spec")
    if spec:
        print(f"{args.ref}: {_network_text(spec)}, eta {spec.get('eta')}, "
              f"lambda {spec.get('lmbda')}, {_count(spec.get('epochs'), 'epoch')}, trained on "
              f"{lineage.get('device', '?')} in {duration(lineage.get('duration_seconds', 0))}")
    elif lineage.get("imported_from"):
        print(f"{args.ref}: imported from {lineage['imported_from']}")
    return EXIT_OK


def cmd_models_promote(args: Args) -> int:
    with _client(args) as c:
        name, version = c.resolve(args.ref)
        m = c.set_alias(name, args.alias, version)
    if args.json:
        _print_json(model_dict(m))
    else:
        print(f"{name}@{args.alias} -> version {version}")
    return EXIT_OK


def cmd_models_unalias(args: Args) -> int:
    with _client(args) as c:
        m = c.delete_alias(args.name, args.alias)
    if args.json:
        _print_json(model_dict(m))
    else:
        print(f"{args.name}@{args.alias} removed")
    return EXIT_OK


def cmd_models_import(args: Args) -> int:
    if not Path(args.file).is_file():
        raise BadInput(f"{args.file} is not a file; give the JSON that network2.py's "
                       "Network.save wrote")
    with _client(args) as c:
        v = c.import_book_model(args.name, args.file)
    if args.json:
        _print_json(_message_dict(v))
    else:
        print(f"imported {args.file} as {args.name} version {v.version}")
    return EXIT_OK


# ---------------------------------------------------------------- eval and plot


def cmd_eval(args: Args) -> int:
    from nndl.trainer.data import load_mnist
    from nndl.trainer.errors import NndlError

    try:
        x, y = load_mnist(args.mnist or os.environ.get("NNDL_MNIST_PATH") or None).test
    except NndlError as e:
        raise BadInput(f"{e}; pass --mnist PATH to mnist.pkl.gz") from e
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    with _client(args) as c:
        ev = evaluate(c, x, y, model=args.model or "")
    if args.mistakes:
        mistakes_image(ev, x, args.count).save(args.mistakes)
    if args.json:
        _print_json({"model": ev.model, "version": ev.version, "images": int(len(y)),
                     "accuracy": ev.accuracy, "per_digit": ev.per_digit,
                     "confusion": ev.confusion.tolist(), "mistakes_file": args.mistakes or None})
        return EXIT_OK
    right = int((ev.predicted == ev.labels).sum())
    print(f"{ev.model} version {ev.version}: {right}/{len(y)} test images right, "
          f"accuracy {100 * ev.accuracy:.2f} %")
    print("per digit: " + "  ".join(f"{d}: {_percent(a) if a is not None else '-'}"
                                    for d, a in enumerate(ev.per_digit)))
    print(confusion_table(ev.confusion))
    if args.mistakes:
        print(f"the {min(args.count, len(y) - right)} most confident mistakes: {args.mistakes}")
    return EXIT_OK


def cmd_plot(args: Args) -> int:
    with _client(args) as c:
        job = c.job(args.id)
        members = c.history(args.id)
    if not members:
        raise ClientError(f"job {args.id} has no finished epochs to plot yet "
                          f"({STATE_NAMES[job.state]})")
    title = f"job {job.id}" + (f", preset {job.preset}" if job.preset else "")
    output = args.output or f"job-{job.id}.png"
    learning_curves(members, title).save(output)
    if args.json:
        _print_json({"file": output, "epochs": sum(len(m) for m in members),
                     "networks": len(members)})
    else:
        print(output)
    return EXIT_OK


# ---------------------------------------------------------------- parser and main


def _client(args: Args) -> DigitsClient:
    return DigitsClient(args.server, token=args.token, tls=args.tls, tls_ca=args.tls_ca,
                        timeout=args.timeout)


def _connection_flags(p: argparse.ArgumentParser, defaults: bool) -> None:
    """On the top level and on every command, so they may come before or after it."""

    def d(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    g = p.add_argument_group("connection")
    g.add_argument("--server", metavar="HOST:PORT",
                   default=d(os.environ.get("NNDL_SERVER", DEFAULT_ADDRESS)),
                   help=f"the nndl server (NNDL_SERVER; default {DEFAULT_ADDRESS})")
    g.add_argument("--token", default=d(os.environ.get("NNDL_TOKEN", "")),
                   help="bearer token for the calls that change things (NNDL_TOKEN)")
    g.add_argument("--tls", action="store_true", default=d(False),
                   help="use TLS with the system's root certificates")
    g.add_argument("--tls-ca", metavar="FILE", default=d(os.environ.get("NNDL_TLS_CA", "")),
                   help="use TLS, trusting this CA certificate (NNDL_TLS_CA)")
    g.add_argument("--timeout", type=_seconds, metavar="SECONDS", default=d(60.0),
                   help="for each call (default 60)")
    g.add_argument("--debug", action="store_true", default=d(False),
                   help="show tracebacks of errors")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors reach `main`, so that --json can report them too."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _command(sub: Any, name: str, run: Callable[[Args], int], help: str, *,
             epilog: str = "") -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, epilog=epilog, allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print JSON for programs")
    _connection_flags(p, defaults=False)
    return p


def parser() -> argparse.ArgumentParser:
    # No abbreviated flags: a script's "--js" would silently mean --json today and
    # something else once another flag starts with those letters.
    p = _Parser(prog="nndl", description=__doc__, allow_abbrev=False,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true",
                   help="print JSON for programs (before or after the command)")
    _connection_flags(p, defaults=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = _command(sub, "classify", cmd_classify, "classify image files, folders or stdin",
                 epilog="examples:\n  nndl classify seven.png digits/\n"
                        "  nndl classify --json --model mnist@production scans/\n"
                        "  cat seven.png | nndl classify -")
    c.add_argument("paths", nargs="+", metavar="PATH",
                   help="PNG, JPEG, BMP or GIF files, folders (searched recursively) or - "
                        "for one image on stdin")
    c.add_argument("--model", default=None, type=_model_ref,
                   help="NAME, NAME@VERSION or NAME@ALIAS "
                                               "(default: the server's default model)")

    t = _command(sub, "train", cmd_train, "submit a training job and follow its progress",
                 epilog="examples:\n  nndl train --preset ch1\n"
                        "  nndl train --preset ch3-l2 --epochs 10 --promote production\n"
                        "  nndl train --layers 784,100,10 --eta 0.5 --epochs 10 --init scaled\n"
                        "  nndl train --spec my-job.json --detach\n\n"
                        "Ctrl-C asks whether to cancel the job or just stop watching.")
    t.add_argument("--preset", default="", help="a book experiment: ch1, ch1-100, ch3, "
                                                "ch3-100, ch3-l2, ...")
    t.add_argument("--spec", metavar="FILE", help="a JSON object of job-spec fields")
    options = t.add_argument_group("network and training (override the preset's)")
    for flag, kind, text in TRAIN_OPTIONS:
        options.add_argument(f"--{flag}", type=kind, help=text)
    t.add_argument("--detach", action="store_true", help="print the job id and return")

    jobs = sub.add_parser("jobs", help="list, show, watch or cancel training jobs",
                          description="list, show, watch or cancel training jobs")
    jsub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    jl = _command(jsub, "list", cmd_jobs_list, "the newest jobs first")
    jl.add_argument("--limit", type=_positive_int, default=20, help="how many (default 20)")
    for name, run, text in (("show", cmd_jobs_show, "one job in detail"),
                            ("watch", cmd_jobs_watch, "follow a job's progress until it ends"),
                            ("cancel", cmd_jobs_cancel, "stop a job after its current epoch")):
        _command(jsub, name, run, text).add_argument("id", metavar="JOB_ID")

    models = sub.add_parser("models", help="list, show, promote, unalias or import models",
                            description="list, show, promote, unalias or import models")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(msub, "list", cmd_models_list, "every model with its versions and aliases")
    _command(msub, "show", cmd_models_show, "a model's versions and how one was made",
             ).add_argument("ref", metavar="MODEL", help="NAME, NAME@VERSION or NAME@ALIAS")
    pr = _command(msub, "promote", cmd_models_promote, "point an alias at a version",
                  epilog="example:\n  nndl models promote mnist@3 production")
    pr.add_argument("ref", metavar="MODEL", help="NAME@VERSION (or NAME, NAME@ALIAS)")
    pr.add_argument("alias", metavar="ALIAS")
    un = _command(msub, "unalias", cmd_models_unalias, "remove an alias",
                  epilog="example:\n  nndl models unalias mnist staging")
    un.add_argument("name", metavar="NAME")
    un.add_argument("alias", metavar="ALIAS")
    im = _command(msub, "import", cmd_models_import,
                  "publish a network saved by the book's network2.py",
                  epilog="example:\n  nndl models import book-net network2-save.json")
    im.add_argument("name", metavar="NAME")
    im.add_argument("file", metavar="FILE")

    e = _command(sub, "eval", cmd_eval, "classify the MNIST test set through the server",
                 epilog="example:\n  nndl eval --model mnist@production --mistakes worst.png")
    e.add_argument("--model", default=None, type=_model_ref,
                   help="NAME, NAME@VERSION or NAME@ALIAS")
    e.add_argument("--mnist", default="", metavar="PATH",
                   help="mnist.pkl.gz (NNDL_MNIST_PATH; default: the cache, else download)")
    e.add_argument("--limit", type=_positive_int, help="only the first N test images")
    e.add_argument("--mistakes", metavar="FILE", default="", type=_png_path,
                   help="save the most confident mistakes as a PNG grid")
    e.add_argument("--count", type=_positive_int, default=40,
                   help="mistakes in the grid (default 40)")

    pl = _command(sub, "plot", cmd_plot, "learning curves of a job (accuracy and cost per "
                  "epoch) as a PNG", epilog="example:\n  nndl plot 1f3a9c -o curves.png")
    pl.add_argument("id", metavar="JOB_ID")
    pl.add_argument("-o", "--output", default="", metavar="FILE", type=_png_path,
                    help="the PNG to write (default job-JOB_ID.png)")
    return p


def _exit_code(e: ClientError) -> int:
    if isinstance(e, BadInput):
        return EXIT_BAD_INPUT
    if isinstance(e, UsageError):
        return EXIT_USAGE
    unreachable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    return EXIT_UNREACHABLE if e.code in unreachable else EXIT_REFUSED


def _fail(args: Args, message: str, code: int) -> int:
    """The error for people on stderr; with --json also as a document on stdout."""
    print(f"nndl: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        _print_json({"error": message, "exit_code": code})
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser().parse_args(argv)
    except UsageError as e:
        return _fail(Args(json="--json" in argv), str(e), EXIT_USAGE)
    try:
        return args.run(args)
    except ClientError as e:
        if args.debug:
            raise
        return _fail(args, str(e), _exit_code(e))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`nndl jobs list | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:
        if args.debug:
            raise
        return _fail(args, f"unexpected {type(e).__name__}: {e}; rerun with --debug for the "
                     "details", EXIT_REFUSED)


if __name__ == "__main__":
    sys.exit(main())
