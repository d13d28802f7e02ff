#!/usr/bin/env bash
# Makes sure Prometheus is installed: the server (`prometheus`, started by `make run` and the
# live check e2e/tests/e2e/observability.rs) and `promtool` (deploy/check-prometheus.sh),
# both from Debian's `prometheus` package (2.42 on bookworm), installed when missing; and that
# python3 reads YAML (deploy/check-queries.py reads alerts.yml): Debian's `python3-yaml`.
# Idempotent: a no-op when everything is there.
#
# The package registers a service that may start a server on :9090 with its own config: it is
# stopped and disabled right after the install. Our servers run with our config and ports.
set -euo pipefail
log() { echo "[install-prometheus] $*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

stop_packaged_server() {
  # Through the package's own init integration and pidfile only, nothing else.
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

missing=()
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  missing+=(prometheus)
fi
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 || {
  log "missing: ${missing[*]}, and apt-get is not available: install them by hand"
  exit 1
}
log "installing ${missing[*]} (Debian packages)"
$SUDO apt-get update -qq
# No recommends: they pull in node-exporter, another server.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
case " ${missing[*]} " in *" prometheus "*) stop_packaged_server ;; esac
log "$(prometheus --version 2>&1 | head -n1)"
