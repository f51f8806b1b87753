"""docker-compose.yml: the services, ports, volumes and health checks of docs/operations.md."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields

import pytest

from tests.deploy.stack import (
    REPO,
    compose,
    container_ports,
    environment,
    interpolate,
    mounts,
    prometheus_config,
)

NNDL_SERVICES = ("trainer", "trainer-gpu", "server")


def _documented_services() -> dict[str, dict[str, str]]:
    """The table of docs/operations.md whose first column is a compose service."""
    rows = {}
    for line in (REPO / "docs" / "operations.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z-]+`", cells[0]):
            rows[cells[0].strip("`")] = dict(zip(("ports", "volumes", "health", "what"),
                                                 cells[1:], strict=True))
    return rows


def _ticks(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


def test_every_service_is_documented_with_its_ports_volumes_and_health_check() -> None:
    services = compose()["services"]
    documented = _documented_services()
    assert set(documented) == set(services)
    for name, service in services.items():
        doc = documented[name]
        assert _ticks(doc["ports"]) == {str(p) for p in container_ports(service)}, name
        named = {src for src in mounts(service).values() if not src.startswith(".")}
        assert _ticks(doc["volumes"]) == named, name
        test = " ".join(service["healthcheck"]["test"][1:])
        assert _ticks(doc["health"]) and all(t in test for t in _ticks(doc["health"])), name


def test_redis_persists_with_aof_on_a_volume_and_answers_its_health_check() -> None:
    redis = compose()["services"]["redis"]
    command = [interpolate(str(c)) for c in redis["command"]]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert mounts(redis)["/data"] == "redis-data"
    assert "redis-cli ping" in redis["healthcheck"]["test"][1]
    # redis-cli reads the password from REDISCLI_AUTH; it must be the one the server requires.
    assert environment(redis)["REDISCLI_AUTH"] == command[command.index("--requirepass") + 1]
    url = environment(compose()["services"]["server"])["NNDL_REDIS_URL"]
    assert url.startswith(f"redis://:{environment(redis)['REDISCLI_AUTH']}@redis:6379/")


def test_nndl_services_set_only_settings_that_exist() -> None:
    from nndl.server.settings import ServerSettings
    from nndl.trainer.settings import TrainerSettings

    services = compose()["services"]
    for name, cls in (("trainer", TrainerSettings), ("trainer-gpu", TrainerSettings),
                      ("server", ServerSettings)):
        known = {f"NNDL_{f.name.upper()}" for f in fields(cls)}
        assert set(environment(services[name])) <= known, name


def test_scaled_trainers_publish_no_host_port_and_all_are_scraped() -> None:
    services = compose()["services"]
    jobs = {j["job_name"]: j for j in prometheus_config()["scrape_configs"]}
    for name in ("trainer", "trainer-gpu"):
        trainer = services[name]
        assert "ports" not in trainer, f"{name} could not be scaled with a fixed host port"
        port = int(environment(trainer)["NNDL_METRICS_PORT"])
        assert port in container_ports(trainer)
        sd = jobs["nndl-trainer"]["dns_sd_configs"]
        assert any(port == c["port"] for c in sd)
        dns_names = {n for c in sd for n in c["names"]}
        aliases = (trainer.get("networks") or {}).get("default", {}).get("aliases", [])
        assert dns_names & ({name} | set(aliases)), f"Prometheus does not find {name}"


def test_server_ports_match_its_settings_health_check_and_scrape_job() -> None:
    server = compose()["services"]["server"]
    env = environment(server)
    grpc_port, metrics_port = int(env["NNDL_PORT"]), int(env["NNDL_METRICS_PORT"])
    assert env["NNDL_HOST"] == "0.0.0.0"
    assert grpc_port in container_ports(server) and metrics_port in container_ports(server)
    assert server["healthcheck"]["test"][2:5] == ["/opt/nndl/healthcheck.py", "grpc",
                                                 f"127.0.0.1:{grpc_port}"]
    scrape = {j["job_name"]: j for j in prometheus_config()["scrape_configs"]}["nndl-server"]
    assert scrape["dns_sd_configs"] == [
        {"names": ["server"], "type": "A", "port": metrics_port, "refresh_interval": "15s"}]


def test_the_model_store_and_mnist_cache_are_on_volumes() -> None:
    services = compose()["services"]
    declared = set(compose()["volumes"])
    for name in NNDL_SERVICES:
        service, env = services[name], environment(services[name])
        assert mounts(service)[env["NNDL_REGISTRY_DIR"]] == "models", name
        if name.startswith("trainer"):
            assert mounts(service)[env["NNDL_CACHE_DIR"]] == "mnist", name
    for name, service in services.items():
        for source in mounts(service).values():
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_gpu_trainers_install_cupy_and_reserve_nvidia_devices() -> None:
    gpu = compose()["services"]["trainer-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"]["EXTRAS"] == "[gpu]"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(d.startswith("cupy") for d in extras["gpu"])
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert gpu["command"] == ["nndl-trainer"]


def test_every_service_has_a_health_check_and_restarts() -> None:
    for name, service in compose()["services"].items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service["restart"] == "unless-stopped", name


@pytest.mark.parametrize("name", ["grafana"])
def test_grafana_mounts_its_provisioning_and_dashboards(name: str) -> None:
    grafana = mounts(compose()["services"][name])
    provider = (REPO / "deploy/grafana/provisioning/dashboards/nndl.yml").read_text()
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert grafana["/etc/grafana/dashboards"] == "./deploy/grafana/dashboards"
    assert "path: /etc/grafana/dashboards" in provider
