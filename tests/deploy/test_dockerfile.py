"""Dockerfile: multi-stage, non-root, nothing to build with in the final image."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy.stack import REPO, compose, mounts

BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|apt-get install|git)\b")


def _stages() -> list[list[str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages[1:]


def test_multi_stage_with_a_non_root_final_stage_and_no_build_tools() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for line in final:
        assert not BUILD_TOOLS.search(line), line
    assert any(line.startswith("COPY --from=build /opt/nndl") for line in final)


def test_everything_copied_exists_and_is_not_dockerignored() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = {line.strip().rstrip("/") for line in lines if line.strip() and line[0] != "#"}
    for stage in _stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    if source.startswith("--"):
                        continue
                    assert (REPO / source).exists(), source
                    assert source.split("/")[0] not in ignored, source


def test_the_image_runs_every_command_the_stack_uses() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    text = (REPO / "Dockerfile").read_text()
    cmd = re.search(r'^CMD \["([^"]+)"', text, re.M).group(1)
    assert cmd in scripts
    for name, service in compose()["services"].items():
        if service.get("image", "").startswith("nndl:"):
            assert service["command"][0] in scripts, name
            check = service["healthcheck"]["test"]
            assert check[1] == "python" and check[2] == "/opt/nndl/healthcheck.py", name
    assert "COPY deploy/healthcheck.py /opt/nndl/healthcheck.py" in text


def test_the_image_keeps_its_state_where_the_stack_mounts_volumes() -> None:
    text = (REPO / "Dockerfile").read_text()
    env = dict(re.findall(r"(NNDL_\w+)=(\S+)", text))
    trainer = mounts(compose()["services"]["trainer"])
    assert trainer[env["NNDL_CACHE_DIR"]] == "mnist"
    assert trainer[env["NNDL_REGISTRY_DIR"]] == "models"
    # the non-root user must own the mount points so that fresh volumes are writable
    assert re.search(r"chown -R nndl:nndl /var/lib/nndl", text)


@pytest.mark.parametrize("service", ["trainer", "trainer-gpu"])
def test_the_install_line_passes_the_build_args_to_pip_intact(service: str, tmp_path: Path):
    """Runs the Dockerfile's pip line in sh with pip swapped for printf: no word is split,
    globbed or taken for a redirection."""
    (run,) = [line for stage in _stages() for line in stage if "/bin/pip install" in line]
    script = run.removeprefix("RUN ").replace("/opt/nndl/bin/pip install", "printf '%s\\n'")
    build = compose()["services"][service]["build"]
    args = build.get("args", {}) if isinstance(build, dict) else {}
    env = {"EXTRAS": args.get("EXTRAS", ""), "EXTRA_PACKAGES": args.get("EXTRA_PACKAGES", "")}
    done = subprocess.run(["sh", "-c", script], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=10, check=True)
    expected = [f".{env['EXTRAS']}"] + ([env["EXTRA_PACKAGES"]] if env["EXTRA_PACKAGES"] else [])
    assert done.stdout.splitlines() == expected
    assert not list(tmp_path.iterdir())
