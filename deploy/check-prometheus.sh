#!/usr/bin/env bash
# Static checks of the monitoring files, without running Prometheus:
#   promtool check config  deploy/prometheus/prometheus.yml   (also checks the rule files it names)
#   promtool check rules   deploy/prometheus/alerts.yml
#   promtool test rules    deploy/prometheus/alerts_test.yml  (alert unit tests)
#   every Grafana panel and alert expression: only known metric names (deploy/check-queries.py),
#   and valid PromQL (promtool check rules on a generated rule file holding each of them).
#
# promtool comes with Debian's `prometheus` package; it is installed when missing. The package
# may try to start a Prometheus server on :9090: it is stopped and disabled right after.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROM_DIR="$REPO_ROOT/deploy/prometheus"
log() { echo "[check-prometheus] $*"; }

stop_packaged_server() {
  # We only need promtool. Stop the server the package registered (through its own init
  # integration and pidfile, nothing else) and keep it from starting at boot.
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  if [ -x /etc/init.d/prometheus ]; then
    if /etc/init.d/prometheus status >/dev/null 2>&1; then
      log "stopping the prometheus service the package started"
      $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
      $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
}

if ! command -v promtool >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { log "promtool is missing and apt-get is not available"; exit 1; }
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing promtool (Debian package prometheus)"
  $SUDO apt-get update -qq
  # No recommends: they pull in node-exporter, another server.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  stop_packaged_server
fi
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
