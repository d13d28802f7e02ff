#!/usr/bin/env bash
# `make stop`: stops Prometheus and the services started by `make run`, then the stack.
set -euo pipefail
source "$(dirname "$0")/env.sh"
for name in prometheus push-worker email-worker status-projector outbox-relay gateway template-svc user-svc smtp-sink; do
  f="$RUN_DIR/pids/$name.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    echo "[stop] $name"; kill "$(cat "$f")" || true
  fi
  rm -f "$f"
done
bash "$(dirname "$0")/stack.sh" down
