#!/usr/bin/env bash
# `make run`: installs what is missing, starts the stack and every service of the pipeline
# in the background, and prints how to send a first notification.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

bash deploy/local/stack.sh up
echo "[run] building the services"
cargo build --workspace --bins
BIN="$CARGO_TARGET_DIR/debug"

psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'notify'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE notify"

# A local signing secret, made once and kept in .run/ (never committed, never printed).
if [ ! -s "$RUN_DIR/jwt-secret" ]; then
  head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/jwt-secret"
  chmod 600 "$RUN_DIR/jwt-secret"
fi
export APP_JWT_HS256_SECRET="$(cat "$RUN_DIR/jwt-secret")"
export APP_DATABASE_URL="postgres://postgres@127.0.0.1:5432/notify"
export APP_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" APP_SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL"

start_service() { # name port
  local name=$1 port=$2 pidf="$RUN_DIR/pids/$1.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "[run] $name already running (pid $(cat "$pidf")); restarting with the fresh build"
    kill "$(cat "$pidf")" 2>/dev/null || true; sleep 1
  fi
  APP_PORT=$port nohup "$BIN/$name" >>"$RUN_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidf"
  local deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "[run] $name did not become healthy; see $RUN_DIR/logs/$name.log"; exit 1; fi
    sleep 0.3
  done
  echo "[run] $name healthy on http://127.0.0.1:$port (log: $RUN_DIR/logs/$name.log)"
}

start_service gateway 8080
start_service outbox-relay 8090

TOKEN=$("$BIN/notifyctl" token --subject demo-service --scope notifications:send --scope notifications:read --ttl-secs 3600)
cat <<EOT

The pipeline is running. API: http://127.0.0.1:8080  (OpenAPI: http://127.0.0.1:8080/api-docs/openapi.json)

Send a first notification:

  TOKEN=\$($BIN/notifyctl token --subject demo-service --scope notifications:send --scope notifications:read)
  curl -sS -X POST http://127.0.0.1:8080/api/v1/notifications/ \\
    -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"notification_type":"email","user_id":"6c1b2a3d-0000-4000-8000-000000000001","template_code":"welcome_email","variables":{"name":"John Doe"},"request_id":"first-1","priority":1,"metadata":{}}'

(a token valid for one hour, for copy-paste: $TOKEN )

Stop everything with: make stop
EOT
