#!/usr/bin/env bash
# The local stack: the Kafka-protocol broker (tansu, SQLite storage) and the schema registry
# (rivven-schema), started from this repo's own files. PostgreSQL and Redis are expected on
# 127.0.0.1 (the machine runs them).
#
#   stack.sh up       install (first run only), start, wait for readiness, register schemas
#   stack.sh down     stop what `up` started
#   stack.sh status   print what runs
#   stack.sh restart-registry   restart the in-memory registry and re-register (ids stay)
#
# Logs and pids go to $RUN_DIR (.run/ in the repo, git-ignored).
set -euo pipefail
source "$(dirname "$0")/env.sh"
TANSU_DIR="$RUN_DIR/tansu-$STACK_NAME"
mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids" "$TANSU_DIR"

log() { echo "[stack] $*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { # name
  local f="$RUN_DIR/pids/$1-$STACK_NAME.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_until() { # description timeout_s command...
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${timeout}s waiting for $what"; return 1
    fi
    sleep 0.3
  done
}

registry_ready() { curl -fsS "$SCHEMA_REGISTRY_URL/subjects" >/dev/null 2>&1; }

start_broker() {
  if port_open "$BROKER_PORT"; then log "broker already listening on $KAFKA_BOOTSTRAP"; return 0; fi
  log "starting tansu $TANSU_VERSION on $KAFKA_BOOTSTRAP (SQLite storage in $TANSU_DIR)"
  # Only the broker goes to the background (not a subshell around it), so the pid file holds
  # the broker's own pid and `down` stops it with SIGTERM.
  (cd "$TANSU_DIR" || exit 1
   nohup "$TANSU_BIN" broker \
      --listener-url "tcp://$KAFKA_BOOTSTRAP" \
      --advertised-listener-url "tcp://$KAFKA_BOOTSTRAP" \
      --storage-engine sqlite://tansu.db \
      >>"$RUN_DIR/logs/tansu-$STACK_NAME.log" 2>&1 &
   echo $! >"$RUN_DIR/pids/tansu-$STACK_NAME.pid")
  wait_until "the broker on $BROKER_PORT" 60 port_open "$BROKER_PORT"
  index_broker_storage
}

# tansu 0.6 stores record headers in an unindexed SQLite table and looks them up once per
# fetched record: without this index every fetch scans every header ever stored (see
# tansu-index.py). Idempotent; the index lives in the broker's database beside its tables.
index_broker_storage() {
  if ! command -v python3 >/dev/null; then
    log "python3 not found: the broker's header table stays unindexed (fetches slow down as topics grow)"
    return 0
  fi
  python3 "$(dirname "$0")/tansu-index.py" "$TANSU_DIR/tansu.db"
}

start_registry() {
  if registry_ready; then log "registry already answering at $SCHEMA_REGISTRY_URL"; return 0; fi
  log "starting rivven-schema $RIVVEN_SCHEMA_VERSION on $SCHEMA_REGISTRY_URL (in-memory)"
  nohup "$RIVVEN_BIN" serve --host 127.0.0.1 --port "$REGISTRY_PORT" >>"$RUN_DIR/logs/registry-$STACK_NAME.log" 2>&1 &
  echo $! >"$RUN_DIR/pids/registry-$STACK_NAME.pid"
  wait_until "the registry on $REGISTRY_PORT" 60 registry_ready
}

register_schemas() {
  # The deploy step: compatibility + every contract in a fixed order (stable ids).
  log "registering schemas"
  SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL" cargo run -q -p notify-schemas --bin register-schemas
}

# The command line each server runs with, to find one whose pid file was lost.
pattern_of() { # name
  case "$1" in
    tansu) echo "tansu broker --listener-url tcp://$KAFKA_BOOTSTRAP" ;;
    registry) echo "rivven-schema serve --host 127.0.0.1 --port $REGISTRY_PORT" ;;
  esac
}

stop_one() { # name
  local f="$RUN_DIR/pids/$1-$STACK_NAME.pid"
  if pid_alive "$1"; then
    log "stopping $1"
    kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$1" || break; sleep 0.1; done
    pid_alive "$1" && kill -9 "$(cat "$f")" 2>/dev/null || true
  fi
  rm -f "$f"
  # One left behind by an earlier run (another clone, a lost pid file) on our port.
  local pattern; pattern=$(pattern_of "$1")
  if pkill -f "$pattern" 2>/dev/null; then
    log "stopped a $1 left running on our port"
    for _ in $(seq 1 50); do pgrep -f "$pattern" >/dev/null || break; sleep 0.1; done
    pkill -9 -f "$pattern" 2>/dev/null || true
  fi
}

case "${1:-up}" in
  up)
    bash "$(dirname "$0")/install-tools.sh"
    command -v curl >/dev/null || { log "curl is required"; exit 1; }
    port_open 5432 || { log "PostgreSQL is not listening on 127.0.0.1:5432"; exit 1; }
    start_broker
    start_registry
    register_schemas
    log "stack ready: broker $KAFKA_BOOTSTRAP, registry $SCHEMA_REGISTRY_URL"
    ;;
  down)
    stop_one registry
    stop_one tansu
    ;;
  wipe)
    # Stops the stack and deletes its broker data (the test stack starts from nothing).
    stop_one registry
    stop_one tansu
    rm -rf "$TANSU_DIR"
    ;;
  restart-registry)
    stop_one registry
    start_registry
    register_schemas
    ;;
  stop-broker) stop_one tansu ;;
  start-broker) start_broker ;;
  status)
    for n in tansu registry; do
      if pid_alive $n; then echo "$n: running (pid $(cat "$RUN_DIR/pids/$n-$STACK_NAME.pid"))"; else echo "$n: stopped"; fi
    done
    ;;
  *) echo "usage: $0 up|down|wipe|status|restart-registry|stop-broker|start-broker" >&2; exit 2 ;;
esac
