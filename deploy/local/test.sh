#!/usr/bin/env bash
# `make test`: builds the workspace, starts a fresh broker and registry of its own (ports
# 19092/18081, wiped afterwards), then runs every test against the real servers
# (PostgreSQL and Redis on 127.0.0.1 are the machine's).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

bash deploy/local/install-tools.sh
# The live monitoring check (e2e/tests/e2e/observability.rs) runs a real Prometheus server.
bash deploy/local/install-prometheus.sh
# The API test (e2e/tests/e2e/api_schemas.rs) runs Schemathesis from its cached venv.
bash deploy/tools/schemathesis.sh --version
echo "[test] building the workspace (binaries are needed by the process-level tests)"
cargo build --workspace --bins --tests

# The tests get a stack of their own, fresh for every run, on other ports than the one
# `make run` keeps (so a developer's pipeline and the tests never disturb each other).
export STACK_NAME=test BROKER_PORT="${TEST_BROKER_PORT:-19092}" REGISTRY_PORT="${TEST_REGISTRY_PORT:-18081}"
source deploy/local/env.sh
bash deploy/local/stack.sh wipe
bash deploy/local/stack.sh up
trap 'bash deploy/local/stack.sh wipe' EXIT
export TEST_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" TEST_SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL"

# Test databases from earlier runs.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done

# Private brokers/registries started by individual tests use these binaries.
export TANSU_BIN RIVVEN_BIN
cargo test --workspace --no-fail-fast "$@"
