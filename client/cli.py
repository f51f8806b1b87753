"""`nndl`: the command line for classifying digits, training and managing models.

Examples:
  nndl train --preset ch1                     train the book's first network, with progress
  nndl classify seven.png digits/             classify files and folders
  nndl eval --model mnist@production          the MNIST test set through the server
  nndl jobs list | nndl models list
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from nndl.client.client import STATE_NAMES, ClientError, DigitsClient
from nndl.client.progress import follow_job

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_JOB_FAILED = 0, 1, 2, 3


def _client(args: argparse.Namespace) -> DigitsClient:
    return DigitsClient(args.server, token=args.token, tls_ca=args.tls_ca, timeout=args.timeout)


def _image_files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise ClientError(f"{p} is not a file or folder")
    return out


def cmd_classify(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.paths == ["-"]:
            items = [("-", sys.stdin.buffer.read())]
        else:
            items = [(str(f), f.read_bytes()) for f in _image_files(args.paths)]
        for name, data in items:
            r = c.classify(data, model=args.model)
            if args.json:
                print(json.dumps({"file": name, "digit": r.digit, "confidence": r.confidence,
                                  "model": r.model, "version": r.version}))
            else:
                print(f"{name}\t{r.digit}\t{r.confidence:.3f}")
    return EXIT_OK


def _spec_from_args(args: argparse.Namespace) -> dict:
    spec: dict = {}
    if args.layers:
        spec["layers"] = [int(v) for v in args.layers.split(",")]
    for name in ("cost", "activation", "output", "init", "device", "model", "promote", "expand"):
        if getattr(args, name):
            spec[name] = getattr(args, name)
    for name in ("eta", "lmbda", "momentum", "dropout"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    for name in ("epochs", "mini_batch_size", "train_size", "seed", "ensemble"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    return spec


def cmd_train(args: argparse.Namespace) -> int:
    with _client(args) as c:
        job = c.submit(args.preset or "", **_spec_from_args(args))
        print(f"job {job.id} queued", file=sys.stderr)
        if args.detach:
            print(job.id)
            return EXIT_OK
        final = follow_job(c, job.id)
        return EXIT_OK if STATE_NAMES[final.state] == "succeeded" else EXIT_JOB_FAILED


def cmd_eval(args: argparse.Namespace) -> int:
    from nndl.trainer.data import load_mnist

    x, y = load_mnist(args.mnist or None).test
    with _client(args) as c:
        results = c.classify_batch((x * 255).round().astype("uint8"), model=args.model)
    right = sum(int(r.digit == t) for r, t in zip(results, y, strict=True))
    accuracy = right / len(y)
    if args.json:
        print(json.dumps({"accuracy": accuracy, "images": len(y),
                          "model": results[0].model, "version": results[0].version}))
    else:
        print(f"model {results[0].model} version {results[0].version}: "
              f"{right}/{len(y)} test images right, accuracy {100 * accuracy:.2f} %")
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "list":
            for j in c.jobs(args.limit):
                print(f"{j.id}\t{STATE_NAMES[j.state]}\t{j.preset or '-'}\t"
                      f"{j.result.model}@{j.result.version}" if j.result.version else
                      f"{j.id}\t{STATE_NAMES[j.state]}\t{j.preset or '-'}\t-")
            return EXIT_OK
        if not args.id:
            raise ClientError(f"nndl jobs {args.action} needs a job id")
        if args.action == "show":
            from google.protobuf.json_format import MessageToJson

            print(MessageToJson(c.job(args.id)))
        elif args.action == "cancel":
            print(f"job {args.id}: {STATE_NAMES[c.cancel(args.id).state]}")
        elif args.action == "watch":
            follow_job(c, args.id)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "list":
            for m in c.models():
                latest = m.versions[-1]
                aliases = ",".join(f"{a}={v}" for a, v in sorted(m.aliases.items())) or "-"
                print(f"{m.name}\t{len(m.versions)} versions\tlatest {latest.version} "
                      f"(test {100 * latest.test_accuracy:.2f} %)\taliases {aliases}")
        elif args.action == "show":
            m = c.model(args.ref)
            print(m.lineage_json if args.json else m)
        elif args.action == "promote":
            name, _, version = args.ref.partition("@")
            if not version.isdigit():
                raise ClientError("promote takes NAME@VERSION, e.g. mnist@3")
            c.set_alias(name, args.alias, int(version))
            print(f"{name}@{args.alias} -> version {version}")
        elif args.action == "import":
            if not args.file:
                raise ClientError("nndl models import NAME FILE: the book's JSON file is missing")
            v = c.import_book_model(args.ref, args.file)
            print(f"imported {args.file} as {args.ref} version {v.version}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nndl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.environ.get("NNDL_SERVER", "127.0.0.1:50051"))
    p.add_argument("--token", default=os.environ.get("NNDL_TOKEN", ""))
    p.add_argument("--tls-ca", default=os.environ.get("NNDL_TLS_CA", ""))
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="classify image files, folders or stdin (-)")
    c.add_argument("paths", nargs="+")
    c.add_argument("--model", default="")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=cmd_classify)

    t = sub.add_parser("train", help="submit a training job and follow it")
    t.add_argument("--preset", default="")
    t.add_argument("--layers", help="e.g. 784,100,10")
    for name in ("cost", "activation", "output", "init", "device", "model", "promote",
                 "expand"):
        t.add_argument(f"--{name}")
    for name in ("eta", "lmbda", "momentum", "dropout"):
        t.add_argument(f"--{name}", type=float)
    for name in ("epochs", "mini-batch-size", "train-size", "seed", "ensemble"):
        t.add_argument(f"--{name}", type=int)
    t.add_argument("--detach", action="store_true", help="print the job id and return")
    t.set_defaults(run=cmd_train)

    e = sub.add_parser("eval", help="classify the MNIST test set through the server")
    e.add_argument("--model", default="")
    e.add_argument("--mnist", default="", help="path to mnist.pkl.gz (default: cache/download)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=cmd_eval)

    j = sub.add_parser("jobs", help="list, show, watch or cancel jobs")
    j.add_argument("action", choices=["list", "show", "watch", "cancel"])
    j.add_argument("id", nargs="?")
    j.add_argument("--limit", type=int, default=20)
    j.set_defaults(run=cmd_jobs)

    m = sub.add_parser("models", help="list, show, promote or import models")
    m.add_argument("action", choices=["list", "show", "promote", "import"])
    m.add_argument("ref", nargs="?", default="mnist", help="NAME, NAME@VERSION or NAME@ALIAS")
    m.add_argument("alias_or_file", nargs="?", default="")
    m.add_argument("--json", action="store_true")
    m.set_defaults(run=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "models":
        args.alias = args.file = args.alias_or_file
    try:
        return args.run(args)
    except ClientError as e:
        if args.debug:
            raise
        print(f"nndl: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
