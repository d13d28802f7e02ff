#!/usr/bin/env python3
"""Every PromQL expression of the monitoring files, extracted and checked.

Sources: each `expr` of the Grafana dashboards (deploy/grafana/dashboards/*.json, panels and
rows at any depth) and each rule of deploy/prometheus/alerts.yml.

Checks (exit 1 on any failure, naming the file, the panel or alert, and the problem):
  - the expression uses only the metric names the services emit (METRICS below; histograms
    also as <name>_bucket/_sum/_count) and Prometheus' own `up`;
  - it holds no Grafana variable ($__rate_interval, $var): the text must be plain PromQL.

PromQL syntax itself is checked by promtool: `--emit-rules FILE` writes every expression as a
recording rule, and deploy/check-prometheus.sh runs `promtool check rules FILE` on it.

  check-queries.py                   check
  check-queries.py --list            print every expression as JSON lines {file, where, expr, metrics}
                                     (metrics: the metric names it selects, sorted)
  check-queries.py --emit-rules F    check, then write the rule file F for promtool

Standard library, plus a YAML parser for alerts.yml: PyYAML, or ruamel.yaml; without either,
the script re-runs itself with the python of the check-jsonschema venv made by
deploy/check-compose.sh.
"""

import glob
import json
import os
import re
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The metric names the code emits (README, "Deployment" → Metrics). Keep in sync with the code.
COUNTERS_AND_GAUGES = {
    "http_requests_total",
    "relay_published_total",
    "relay_publish_failures_total",
    "relay_parked_total",
    "relay_held_back_total",
    "relay_owned_shards",
    "outbox_pending_rows",
    "outbox_oldest_pending_age_seconds",
    "outbox_parked_rows",
    "worker_deliveries_total",
    "worker_retried_total",
    "worker_dead_lettered_total",
    "worker_consumption_paused",
    "kafka_consumer_lag",
    "db_pool_connections",
    "redis_errors_total",
}
HISTOGRAMS = {
    "http_request_duration_seconds",
    "relay_batch_seconds",
    "worker_delivery_duration_seconds",
    "notification_end_to_end_seconds",
}
PROMETHEUS_OWN = {"up"}

METRICS = (
    COUNTERS_AND_GAUGES
    | PROMETHEUS_OWN
    | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
)

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "atan2",
}


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # PyYAML

        return yaml.safe_load(text)
    except ImportError:
        pass
    try:
        from ruamel.yaml import YAML

        return YAML(typ="safe", pure=True).load(text)
    except ImportError:
        pass
    reexec_with_venv_python()
    sys.exit("no YAML parser (PyYAML or ruamel.yaml): run deploy/check-compose.sh first, it makes one")


def reexec_with_venv_python():
    if os.environ.get("NOTIFY_REEXEC"):
        return
    cache = os.environ.get("NOTIFY_CACHE", os.path.expanduser("~/.cache/notify-platform"))
    for python in sorted(glob.glob(os.path.join(cache, "tools", "venv-check-jsonschema-*", "bin", "python"))):
        os.environ["NOTIFY_REEXEC"] = "1"
        os.execv(python, [python] + sys.argv)


def dashboard_exprs(path):
    """(where, expr) for every target of every panel, rows' nested panels included."""
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
    out = []

    def walk(panels, trail):
        for p in panels or []:
            title = p.get("title", f"panel {p.get('id')}")
            for t in p.get("targets", []) or []:
                if "expr" in t:
                    out.append((f"{trail}{title} [{t.get('refId', '?')}]", t["expr"]))
            walk(p.get("panels"), f"{trail}{title} / " if p.get("type") == "row" else trail)

    walk(dashboard.get("panels"), "")
    return out


def alert_exprs(path):
    rules = load_yaml(path) or {}
    out = []
    for group in rules.get("groups", []) or []:
        for rule in group.get("rules", []) or []:
            name = rule.get("alert") or rule.get("record") or "?"
            out.append((f"{group.get('name')} / {name}", rule["expr"]))
    return out


def all_exprs(repo_root=REPO_ROOT):
    """Every expression: list of (file relative to the repo, where, expr)."""
    found = []
    for path in sorted(glob.glob(os.path.join(repo_root, "deploy", "grafana", "dashboards", "*.json"))):
        rel = os.path.relpath(path, repo_root)
        found += [(rel, where, expr) for where, expr in dashboard_exprs(path)]
    alerts = os.path.join(repo_root, "deploy", "prometheus", "alerts.yml")
    if os.path.exists(alerts):
        rel = os.path.relpath(alerts, repo_root)
        found += [(rel, where, expr) for where, expr in alert_exprs(alerts)]
    return found


def metric_names(expr):
    """The metric names an expression selects (a lexical scan, enough for our queries)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    names = set()
    for m in re.finditer(r"(?<![0-9.A-Za-z_:])[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = m.group(0)
        rest = s[m.end():].lstrip()
        if rest.startswith("("):  # a function or an aggregation
            continue
        if token.lower() in KEYWORDS:
            continue
        names.add(token)
    return names


def problems(found):
    errors = []
    for rel, where, expr in found:
        if "$" in expr:
            errors.append(f"{rel}: {where}: holds a Grafana variable, not plain PromQL: {expr}")
        if not expr.strip():
            errors.append(f"{rel}: {where}: empty expression")
        for name in sorted(metric_names(expr) - METRICS):
            errors.append(f"{rel}: {where}: unknown metric `{name}` in: {expr}")
    return errors


def self_check():
    """The scanner on known cases (run on every invocation: it is cheap)."""
    cases = {
        'sum by (channel) (rate(worker_deliveries_total{outcome="sent"}[5m]))': {"worker_deliveries_total"},
        "histogram_quantile(0.99, sum by (le) (rate(relay_batch_seconds_bucket[5m])))": {"relay_batch_seconds_bucket"},
        "up == 0": {"up"},
        'sum(kafka_consumer_lag{topic=~".*[.]retry-.*"}) > 1e3 unless on(job) foo offset 5m': {"kafka_consumer_lag", "foo"},
        "max(outbox_parked_rows) > 0 and vector(1)": {"outbox_parked_rows"},
    }
    for expr, expected in cases.items():
        got = metric_names(expr)
        assert got == expected, f"metric_names({expr!r}) = {got}, expected {expected}"


def main(argv):
    self_check()
    found = all_exprs()
    if "--list" in argv:
        for rel, where, expr in found:
            print(json.dumps({"file": rel, "where": where, "expr": expr, "metrics": sorted(metric_names(expr))}))
        return 0
    errors = problems(found)
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    if errors:
        print(f"[check-queries] {len(errors)} problem(s) in {len(found)} expressions", file=sys.stderr)
        return 1
    print(f"[check-queries] {len(found)} expressions use only known metric names")
    if "--emit-rules" in argv:
        target = argv[argv.index("--emit-rules") + 1]
        rules = [{"record": f"check:query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(found)]
        # JSON is YAML: promtool reads it as a rule file.
        with open(target, "w", encoding="utf-8") as f:
            json.dump({"groups": [{"name": "dashboard-and-alert-queries", "rules": rules}]}, f, indent=1)
        print(f"[check-queries] wrote {len(rules)} expressions to {target} for `promtool check rules`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
