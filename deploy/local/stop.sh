#!/usr/bin/env bash
# `make stop`: stops Prometheus and the services started by `make run`, waits for them to exit,
# then stops the stack. The broker goes last: a worker or the projector stopping finishes the
# record in hand, commits its offsets and leaves its group, which needs the broker (with the
# broker gone first, each waited for its Kafka timeouts, ~30 s).
set -euo pipefail
source "$(dirname "$0")/env.sh"
pids=()
for name in prometheus push-worker email-worker ingest status-projector outbox-relay gateway template-svc user-svc smtp-sink; do
  f="$RUN_DIR/pids/$name.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    echo "[stop] $name"
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$name:$pid")
  fi
  rm -f "$f"
done
deadline=$((SECONDS + 30))
for entry in "${pids[@]}"; do
  name=${entry%%:*} pid=${entry##*:}
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "[stop] $name did not exit in 30 s; killing it"; kill -9 "$pid" 2>/dev/null || true; break
    fi
    sleep 0.1
  done
done
bash "$(dirname "$0")/stack.sh" down
