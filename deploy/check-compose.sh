#!/usr/bin/env bash
# Validates docker-compose.yml against the Compose Specification's JSON schema, without a
# container engine: `check-jsonschema --builtin-schema vendor.compose-spec`.
#
# check-jsonschema is installed from PyPI into a venv cached OUTSIDE the clone
# ($HOME/.cache/notify-platform/tools/venv-check-jsonschema-<version>), reused by every clone
# and by CI, and reinstalled only when the pinned version below changes.
# The venv's python (it ships ruamel.yaml) is also what deploy/check-env.py falls back to.
set -euo pipefail

CHECK_JSONSCHEMA_VERSION="0.39.0"
NOTIFY_CACHE="${NOTIFY_CACHE:-$HOME/.cache/notify-platform}"
VENV="$NOTIFY_CACHE/tools/venv-check-jsonschema-$CHECK_JSONSCHEMA_VERSION"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_FILE="${1:-$REPO_ROOT/docker-compose.yml}"

log() { echo "[check-compose] $*"; }

if [ ! -x "$VENV/bin/check-jsonschema" ] || [ ! -f "$VENV/.installed" ]; then
  log "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION into $VENV"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  touch "$VENV/.installed"
  # Older pinned versions are dead weight once the pin moves.
  for old in "$NOTIFY_CACHE"/tools/venv-check-jsonschema-*; do
    [ "$old" = "$VENV" ] || rm -rf "$old"
  done
else
  log "check-jsonschema $CHECK_JSONSCHEMA_VERSION already installed at $VENV"
fi

log "validating $COMPOSE_FILE against the Compose Specification schema"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE"
