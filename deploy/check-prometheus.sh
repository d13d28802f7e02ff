#!/usr/bin/env bash
# Static checks of the monitoring files, without running Prometheus:
#   promtool check config  deploy/prometheus/prometheus.yml   (also checks the rule files it names)
#   promtool check rules   deploy/prometheus/alerts.yml
#   promtool test rules    deploy/prometheus/alerts_test.yml  (alert unit tests)
#   every Grafana panel and alert expression: only known metric names (deploy/check-queries.py),
#   and valid PromQL (promtool check rules on a generated rule file holding each of them).
#
# promtool comes with Debian's `prometheus` package; deploy/local/install-prometheus.sh installs
# it when missing (and stops the server the package may start on :9090).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROM_DIR="$REPO_ROOT/deploy/prometheus"
log() { echo "[check-prometheus] $*"; }

bash "$REPO_ROOT/deploy/local/install-prometheus.sh"
log "$(promtool --version 2>&1 | head -n1)"

log "promtool check config prometheus.yml"
promtool check config "$PROM_DIR/prometheus.yml"
log "promtool check rules alerts.yml"
promtool check rules "$PROM_DIR/alerts.yml"
log "promtool test rules alerts_test.yml"
(cd "$PROM_DIR" && promtool test rules alerts_test.yml)

log "checking every dashboard and alert expression (metric names, PromQL syntax)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 "$REPO_ROOT/deploy/check-queries.py" --emit-rules "$tmp/queries.rules.yml"
promtool check rules "$tmp/queries.rules.yml"
log "all monitoring checks passed"
