"""The dashboard and the alert rules query only metrics and labels the code exports."""

from __future__ import annotations

import re

import pytest

from tests.deploy.stack import (
    DEPLOY,
    alert_rules,
    dashboard,
    dashboard_exprs,
    exported_metrics,
    prometheus_config,
    yaml_load,
)

NAME = re.compile(r"\b(nndl_[a-z0-9_]+)")
SELECTOR = re.compile(r"\b(nndl_[a-z0-9_]+)\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SCRAPE_LABELS = {"instance", "job", "le"}


def _alert_exprs() -> list[str]:
    return [rule["expr"] for rule in alert_rules()]


def _alert_test_series() -> list[str]:
    doc = yaml_load(DEPLOY / "prometheus" / "alerts_test.yml")
    return [s["series"] for t in doc["tests"] for s in t["input_series"]]


SOURCES = {"dashboard": dashboard_exprs, "alerts": _alert_exprs,
           "alert tests": _alert_test_series}


@pytest.mark.parametrize("source", SOURCES)
def test_every_metric_name_is_exported(source: str) -> None:
    exported = exported_metrics()
    used = {name for expr in SOURCES[source]() for name in NAME.findall(expr)}
    assert used, f"the {source} use no nndl metric"
    unknown = sorted(used - set(exported))
    assert not unknown, f"the {source} use metrics the code does not export: {unknown}"


@pytest.mark.parametrize("source", SOURCES)
def test_every_label_is_one_the_metric_has(source: str) -> None:
    exported = exported_metrics()
    all_labels = set().union(*(labels for _, labels in exported.values())) | SCRAPE_LABELS
    for expr in SOURCES[source]():
        for name, matchers in SELECTOR.findall(expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in exported[name][1] | SCRAPE_LABELS, f"{name} has no {label}"
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in grouping.split(","))):
                assert label in all_labels, f"no metric has the label {label}: {expr}"


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_rates_are_taken_of_counters_and_quantiles_of_buckets(source: str) -> None:
    exported = exported_metrics()
    for expr in SOURCES[source]():
        for name in re.findall(r"\b(?:rate|increase)\(\s*(nndl_\w+)", expr):
            kind = exported[name][0]
            assert kind == "counter" or (kind == "histogram" and not name.endswith("_created")), (
                f"rate of the {kind} {name}")
        if "histogram_quantile" in expr:
            assert all(n.endswith("_bucket") for n in NAME.findall(expr)), expr


def test_jobs_named_in_queries_are_scrape_jobs() -> None:
    jobs = {j["job_name"] for j in prometheus_config()["scrape_configs"]}
    for expr in dashboard_exprs() + _alert_exprs():
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs, expr


def test_the_dashboard_shows_what_operators_need() -> None:
    used = {name for expr in dashboard_exprs() for name in NAME.findall(expr)}
    needed = {
        "nndl_server_requests_total": "request rate and errors by code",
        "nndl_server_request_duration_seconds_bucket": "latency percentiles",
        "nndl_server_batch_size_images_bucket": "batch sizes",
        "nndl_server_images_classified_total": "predictions by digit",
        "nndl_server_model_version_info": "loaded model version",
        "nndl_trainer_queue_waiting_jobs": "queue depth",
        "nndl_trainer_jobs_total": "jobs by state",
        "nndl_trainer_epoch_duration_seconds_bucket": "epoch durations",
        "nndl_trainer_validation_accuracy_ratio": "validation accuracy over time",
    }
    missing = {name: why for name, why in needed.items() if name not in used}
    assert not missing


def test_every_panel_uses_the_provisioned_datasource() -> None:
    datasources = yaml_load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_every_alert_links_to_a_runbook_section() -> None:
    from tests.deploy.test_docs import anchors

    sections = anchors("operations.md")
    for rule in alert_rules():
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in sections, rule["alert"]
