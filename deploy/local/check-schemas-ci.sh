#!/usr/bin/env bash
# CI's schema-evolution check: would the contracts of this tree be accepted by a registry that
# holds those of the base branch (SCHEMA_BASELINE_REF, default origin/main, else main)? Runs
# a scratch registry (rivven-schema, in memory) on a free port, registers the base branch's
# schemas/avro/*.avsc under their subjects at BACKWARD, then asks it about every contract
# (`check-schemas --baseline`), after proving on the incompatible fixture that the check can
# fail (`--self-test`). Exit 1 on an incompatible change.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

ref="${SCHEMA_BASELINE_REF:-}"
if [ -z "$ref" ]; then
  for candidate in origin/main main; do
    if git rev-parse -q --verify "$candidate^{commit}" >/dev/null; then ref=$candidate; break; fi
  done
fi
[ -n "$ref" ] || { echo "[check-schemas] no base branch found (set SCHEMA_BASELINE_REF)" >&2; exit 2; }

baseline=$(mktemp -d)
trap 'rm -rf "$baseline"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
for f in $(git ls-tree --name-only "$ref" schemas/avro/ | grep '\.avsc$' || true); do
  git show "$ref:$f" >"$baseline/$(basename "$f")"
done
echo "[check-schemas] baseline: $(ls "$baseline" | wc -l) contract(s) of $ref"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$RIVVEN_BIN" serve --host 127.0.0.1 --port "$port" >"$baseline/registry.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/subjects" >/dev/null 2>&1 && break; sleep 0.2; done

export SCHEMA_REGISTRY_URL="http://127.0.0.1:$port"
cargo run -q -p notify-schemas --bin check-schemas -- --self-test
cargo run -q -p notify-schemas --bin check-schemas -- --baseline "$baseline"
