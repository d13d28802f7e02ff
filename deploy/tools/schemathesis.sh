#!/usr/bin/env bash
# Runs Schemathesis (PyPI `schemathesis`, pinned below) from its venv cached OUTSIDE the clone
# ($HOME/.cache/notify-platform/tools/venv-schemathesis-<version>), installed on first use by
# deploy/tools/pypi-tool.sh and reused offline afterwards. Every argument goes to its `st` CLI:
#
#   bash deploy/tools/schemathesis.sh run http://127.0.0.1:8080/api-docs/openapi.json -n 10
#
# The API test (e2e/tests/e2e/api_schemas.rs) runs it against every service's OpenAPI document.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

bin=$(bash "$REPO_ROOT/deploy/tools/pypi-tool.sh" schemathesis "$SCHEMATHESIS_VERSION")
exec "$bin/st" "$@"
