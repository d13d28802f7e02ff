#!/usr/bin/env bash
# Validates docker-compose.yml against the Compose Specification's JSON schema, without a
# container engine: `check-jsonschema --builtin-schema vendor.compose-spec`.
#
# check-jsonschema is installed from PyPI into a venv cached OUTSIDE the clone
# ($HOME/.cache/notify-platform/tools/venv-check-jsonschema-<version>) by
# deploy/tools/pypi-tool.sh, reused by every clone and by CI, and reinstalled only when the
# pinned version below changes. The venv's python (it ships ruamel.yaml) is also what
# deploy/check-env.py falls back to.
set -euo pipefail

CHECK_JSONSCHEMA_VERSION="0.39.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_FILE="${1:-$REPO_ROOT/docker-compose.yml}"

log() { echo "[check-compose] $*"; }

venv_bin=$(bash "$REPO_ROOT/deploy/tools/pypi-tool.sh" check-jsonschema "$CHECK_JSONSCHEMA_VERSION")

log "validating $COMPOSE_FILE against the Compose Specification schema"
"$venv_bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE"
