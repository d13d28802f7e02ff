#!/usr/bin/env bash
# `make test`: builds the workspace, starts the local stack if it is not running (and stops
# it again afterwards), then runs every test against the real servers.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

bash deploy/local/install-tools.sh
echo "[test] building the workspace (binaries are needed by the process-level tests)"
cargo build --workspace --bins --tests

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
started_here=0
if ! port_open 9092 || ! curl -fsS "$SCHEMA_REGISTRY_URL/subjects" >/dev/null 2>&1; then
  started_here=1
fi
bash deploy/local/stack.sh up
cleanup() { if [ "$started_here" = 1 ]; then bash deploy/local/stack.sh down; fi; }
trap cleanup EXIT

# Test databases from earlier runs.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done

# Private brokers/registries started by individual tests use these binaries.
export TANSU_BIN RIVVEN_BIN
cargo test --workspace --no-fail-fast "$@"
