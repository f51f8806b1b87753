"""The documents that must not go stale: settings, the API, the runbook links."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import fields

import pytest

from tests.deploy.stack import DEPLOY, REPO

DOCS = REPO / "docs"
CLIENT_VARIABLES = {"NNDL_SERVER", "NNDL_TOKEN", "NNDL_TLS_CA"}


@pytest.fixture(scope="module")
def docgen():
    spec = importlib.util.spec_from_file_location("docgen", DEPLOY / "docgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors(page: str) -> set[str]:
    """GitHub's anchors of the headings of docs/<page>."""
    found = set()
    for line in (DOCS / page).read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", ["docs/configuration.md", "docs/api.md"])
def test_generated_reference_is_current(docgen, page: str) -> None:
    text = (REPO / page).read_text()
    fresh = docgen.render(text, docgen.DOCUMENTS[page](), page)
    assert fresh == text, f"{page} is stale: run python deploy/docgen.py"


def test_every_setting_is_in_the_configuration_reference_with_its_default() -> None:
    from nndl.server.settings import ServerSettings
    from nndl.trainer.settings import TrainerSettings

    text = (DOCS / "configuration.md").read_text()
    rows = re.findall(r"^\| `(NNDL_\w+)` \| `(--[\w-]+)` \| ([^|]+) \|", text, re.M)
    documented = {(var, flag, default.strip()) for var, flag, default in rows}
    for cls in (TrainerSettings, ServerSettings):
        for f in fields(cls):
            default = f.default
            shown = ("`true`" if default else "`false`") if isinstance(default, bool) else (
                "empty" if default == "" else f"`{default}`")
            row = (f"NNDL_{f.name.upper()}", f"--{f.name.replace('_', '-')}", shown)
            assert row in documented, row


def test_docs_name_only_variables_that_exist() -> None:
    from nndl.server.settings import ServerSettings
    from nndl.trainer.settings import TrainerSettings

    known = CLIENT_VARIABLES | {f"NNDL_{f.name.upper()}" for cls in
                                (TrainerSettings, ServerSettings) for f in fields(cls)}
    compose_only = {"NNDL_TAG", "NNDL_GRPC_PUBLISH"}  # read by docker-compose.yml itself
    for page in ("configuration.md", "operations.md", "architecture.md", "api.md"):
        named = set(re.findall(r"\bNNDL_[A-Z0-9_]+", (DOCS / page).read_text()))
        assert named <= known | compose_only, (page, sorted(named - known - compose_only))


def test_api_reference_names_every_rpc_message_and_enum_and_no_other() -> None:
    from nndl.v1 import nndl_pb2

    text = (DOCS / "api.md").read_text()
    file = nndl_pb2.DESCRIPTOR
    services = {f"{file.package}.{name}" for name in file.services_by_name}
    rpcs = {m.name for s in file.services_by_name.values() for m in s.methods}
    types = set(file.message_types_by_name) | set(file.enum_types_by_name)
    headings = set(re.findall(r"^### `([\w.]+)`", text, re.M))
    assert headings == services | types
    rows = set(re.findall(r"^\| `(\w+)` \| `\w+` \| (?:stream )?`\w+` \|", text, re.M))
    assert rows == rpcs


def test_compose_values_quoted_in_the_docs_match_the_files() -> None:
    """The quickstart's addresses are the ones the stack publishes."""
    text = (DOCS / "operations.md").read_text()
    for address in ("127.0.0.1:50051", "http://127.0.0.1:3000", "http://127.0.0.1:9090"):
        assert address in text
    compose = (REPO / "docker-compose.yml").read_text()
    assert "${NNDL_GRPC_PUBLISH:-50051}:50051" in compose
    assert "${GRAFANA_PUBLISH:-127.0.0.1:3000}:3000" in compose
    assert "${PROMETHEUS_PUBLISH:-127.0.0.1:9090}:9090" in compose
