"""Reads the deployment files the way their consumers do, for the tests beside it."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def yaml_load(path: Path):
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text())


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, with an empty .env."""
    env = env or {}

    def one(m: re.Match) -> str:
        name, kind, rest = m.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise ValueError(f"{name} must be set: {rest}")
        return rest or ""

    return _VAR.sub(one, value)


def compose() -> dict:
    return yaml_load(REPO / "docker-compose.yml")


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def mounts(service: dict) -> dict[str, str]:
    """Mount target -> source (a named volume or a ./path) of a service."""
    out = {}
    for v in service.get("volumes") or []:
        source, target = v.split(":")[:2]
        out[target] = source
    return out


def container_ports(service: dict) -> set[int]:
    ports = {int(p) for p in service.get("expose") or []}
    for p in service.get("ports") or []:
        ports.add(int(interpolate(str(p)).rsplit(":", 1)[-1]))
    return ports


def prometheus_config() -> dict:
    return yaml_load(DEPLOY / "prometheus" / "prometheus.yml")


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "nndl.json").read_text())


def dashboard_exprs() -> list[str]:
    exprs = []
    for panel in dashboard()["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


def alert_rules() -> list[dict]:
    doc = yaml_load(DEPLOY / "prometheus" / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


@cache
def exported_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Every sample name the server and trainer export -> (family type, its labels)."""
    from nndl.server.metrics import ServerMetrics
    from nndl.trainer.metrics import TrainerMetrics

    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created")}
    names = {}
    for owner in (ServerMetrics(), TrainerMetrics()):
        collectors = owner.registry._names_to_collectors  # the one place labels are listed
        for family in owner.registry.collect():
            for suffix in suffixes[family.type]:
                sample = family.name + suffix
                labels = getattr(collectors.get(sample) or collectors.get(family.name),
                                 "_labelnames", ())
                names[sample] = (family.type, frozenset(labels))
    return names


def binary_or_skip(binary: str) -> str:
    from shutil import which

    found = which(binary, path=os.environ.get("PATH", "") + ":/usr/bin:/usr/local/bin")
    if not found:
        pytest.skip(f"{binary} is not installed (apt-get install prometheus)")
    return found
