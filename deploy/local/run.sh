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

for db in notify notify_users notify_templates; do
  psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db"
done

# A local signing secret, made once and kept in .run/ (never committed, never printed).
if [ ! -s "$RUN_DIR/jwt-secret" ]; then
  head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/jwt-secret"
  chmod 600 "$RUN_DIR/jwt-secret"
fi
export APP_JWT_HS256_SECRET="$(cat "$RUN_DIR/jwt-secret")"
export APP_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" APP_SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL"
export APP_USER_SVC_URL="http://127.0.0.1:8082" APP_TEMPLATE_SVC_URL="http://127.0.0.1:8083"
export APP_SMTP_HOST=127.0.0.1 APP_SMTP_PORT="$SMTP_PORT" APP_PUSH_PROVIDER_URL="http://127.0.0.1:2526/v1/messages:send"
PG="postgres://postgres@127.0.0.1:5432"

wait_http() { # name url
  local deadline=$((SECONDS + 60))
  until curl -fsS "$2" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "[run] $1 did not become healthy; see $RUN_DIR/logs/$1.log"; exit 1; fi
    sleep 0.3
  done
}

start_service() { # name port health-path [VAR=value ...]
  local name=$1 port=$2 health=$3 pidf="$RUN_DIR/pids/$1.pid"; shift 3
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "[run] $name already running (pid $(cat "$pidf")); restarting with the fresh build"
    kill "$(cat "$pidf")" 2>/dev/null || true; sleep 1
  fi
  env APP_PORT="$port" "$@" nohup "$BIN/$name" >>"$RUN_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidf"
  wait_http "$name" "http://127.0.0.1:$port$health"
  echo "[run] $name up on http://127.0.0.1:$port (log: $RUN_DIR/logs/$name.log)"
}

start_service smtp-sink 2526 /stats SMTP_SINK_ADDR="127.0.0.1:$SMTP_PORT" SMTP_SINK_HTTP_ADDR=127.0.0.1:2526
# glibc keeps the 19 MiB Argon2 blocks a burst of hashes frees unless large blocks are mmap'd.
start_service user-svc 8082 /health APP_DATABASE_URL="$PG/notify_users" MALLOC_MMAP_THRESHOLD_=131072
start_service template-svc 8083 /health APP_DATABASE_URL="$PG/notify_templates"
start_service gateway 8080 /health APP_DATABASE_URL="$PG/notify"
start_service outbox-relay 8090 /health APP_DATABASE_URL="$PG/notify"
start_service status-projector 8093 /health APP_DATABASE_URL="$PG/notify"
start_service email-worker 8091 /health
start_service push-worker 8092 /health

# A demo user and template, so the first notification has someone to go to.
ADMIN=$("$BIN/notifyctl" token --subject make-run --scope users:read --scope users:write --scope templates:write --scope templates:read --ttl-secs 600)
curl -fsS -X POST http://127.0.0.1:8083/api/v1/templates/ -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"code":"welcome_email","channel":"email","default_language":"en","name":"Welcome","content":{"en":{"subject":"Welcome, {{ name }}","text_body":"Hello {{ name }}, start at {{ link }}","html_body":"<p>Hello <b>{{ name }}</b>, <a href=\"{{ link }}\">start here</a></p>"}}}' \
  >/dev/null 2>&1 || true
USER_ID=$(curl -fsS -X POST http://127.0.0.1:8082/api/v1/users/ -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"Demo User","email":"demo@example.com","preferences":{"email":true,"push":true},"password":"demo-password-123"}' 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])' 2>/dev/null ||
  curl -fsS "http://127.0.0.1:8082/api/v1/users/?limit=100" -H "Authorization: Bearer $ADMIN" |
  python3 -c 'import json,sys; print(next(u["id"] for u in json.load(sys.stdin)["data"] if u["email"]=="demo@example.com"))')

cat <<EOT

The pipeline is running: gateway http://127.0.0.1:8080 (OpenAPI: /api-docs/openapi.json),
user-svc :8082, template-svc :8083, outbox-relay :8090, email-worker :8091, push-worker :8092,
status-projector :8093; SMTP sink 127.0.0.1:$SMTP_PORT (stats: http://127.0.0.1:2526/stats). Logs: $RUN_DIR/logs/

Send a first notification (demo user $USER_ID, template welcome_email):

  export APP_JWT_HS256_SECRET=\$(cat $RUN_DIR/jwt-secret)
  TOKEN=\$($BIN/notifyctl token --subject demo-service --scope notifications:send --scope notifications:read)
  curl -sS -X POST http://127.0.0.1:8080/api/v1/notifications/ \\
    -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"notification_type":"email","user_id":"$USER_ID","template_code":"welcome_email","variables":{"name":"John Doe","link":"https://example.com"},"request_id":"first-1","priority":1,"metadata":{}}'

  curl -sS http://127.0.0.1:8080/api/v1/notifications/<notification_id> -H "Authorization: Bearer \$TOKEN"
  tail -f $RUN_DIR/logs/smtp-sink.log      # the email as it arrives

Stop everything with: make stop
EOT
