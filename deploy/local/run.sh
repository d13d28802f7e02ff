#!/usr/bin/env bash
# `make run`: installs what is missing, starts the stack, every service of the pipeline and a
# Prometheus scraping them (alert rules loaded) in the background, and prints how to send a
# first notification. Ports: deploy/local/env.sh (each overridable, e.g. PROMETHEUS_PORT).
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
# user-svc's unsubscribe-link key, made and kept the same way.
if [ ! -s "$RUN_DIR/unsubscribe-secret" ]; then
  head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/unsubscribe-secret"
  chmod 600 "$RUN_DIR/unsubscribe-secret"
fi
export APP_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" APP_SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL"
export APP_USER_SVC_URL="http://127.0.0.1:$USER_SVC_PORT" APP_TEMPLATE_SVC_URL="http://127.0.0.1:$TEMPLATE_SVC_PORT"
export APP_SMTP_HOST=127.0.0.1 APP_SMTP_PORT="$SMTP_PORT"
# Push goes through FCM HTTP v1 to smtp-sink's stand-in (its HTTP port plays the token
# endpoint and the send call), with a service-account key made once for this machine.
if [ ! -s "$RUN_DIR/fcm-key.pem" ]; then
  (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$RUN_DIR/fcm-key.pem" 2>/dev/null)
fi
(umask 077; python3 -c 'import json,sys; print(json.dumps({"type": "service_account", "project_id": "notify-local",
  "private_key": open(sys.argv[1]).read(), "client_email": "push@notify-local.iam.gserviceaccount.com",
  "token_uri": sys.argv[2]}))' "$RUN_DIR/fcm-key.pem" "http://127.0.0.1:$SMTP_SINK_HTTP_PORT/token" \
  >"$RUN_DIR/fcm-service-account.json")
export APP_PUSH_PROVIDERS=fcm APP_FCM_SERVICE_ACCOUNT_FILE="$RUN_DIR/fcm-service-account.json"
export APP_FCM_BASE_URL="http://127.0.0.1:$SMTP_SINK_HTTP_PORT"
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

start_service smtp-sink "$SMTP_SINK_HTTP_PORT" /stats SMTP_SINK_ADDR="127.0.0.1:$SMTP_PORT" SMTP_SINK_HTTP_ADDR="127.0.0.1:$SMTP_SINK_HTTP_PORT"
start_service user-svc "$USER_SVC_PORT" /health APP_DATABASE_URL="$PG/notify_users" \
  APP_UNSUBSCRIBE_SECRET="$(cat "$RUN_DIR/unsubscribe-secret")" APP_PUBLIC_BASE_URL="http://127.0.0.1:$USER_SVC_PORT"
start_service template-svc "$TEMPLATE_SVC_PORT" /health APP_DATABASE_URL="$PG/notify_templates"
start_service gateway "$GATEWAY_PORT" /health APP_DATABASE_URL="$PG/notify"
start_service outbox-relay "$RELAY_PORT" /health APP_DATABASE_URL="$PG/notify"
start_service status-projector "$PROJECTOR_PORT" /health APP_DATABASE_URL="$PG/notify"
start_service ingest "$INGEST_PORT" /health APP_DATABASE_URL="$PG/notify"
start_service email-worker "$EMAIL_WORKER_PORT" /health
start_service push-worker "$PUSH_WORKER_PORT" /health

# Prometheus (Debian's package, installed when missing): every service above under the job
# names of deploy/prometheus/prometheus.yml, every 5 s, with the alert rules of alerts.yml.
# Its data stays in $RUN_DIR/prometheus (two days) across runs.
start_prometheus() {
  local dir="$RUN_DIR/prometheus" pidf="$RUN_DIR/pids/prometheus.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "[run] prometheus already running (pid $(cat "$pidf")); restarting with a fresh config"
    kill "$(cat "$pidf")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidf"
  if (exec 3<>"/dev/tcp/127.0.0.1/$PROMETHEUS_PORT") 2>/dev/null; then
    echo "[run] WARNING: port $PROMETHEUS_PORT is taken by another program: Prometheus not started (set PROMETHEUS_PORT)"
    return 1
  fi
  mkdir -p "$dir/data"
  {
    printf 'global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n'
    printf 'rule_files:\n  - %s\n' "$REPO_ROOT/deploy/prometheus/alerts.yml"
    printf 'scrape_configs:\n'
    local job port
    for entry in gateway:$GATEWAY_PORT outbox-relay:$RELAY_PORT user-svc:$USER_SVC_PORT \
      template-svc:$TEMPLATE_SVC_PORT email-worker:$EMAIL_WORKER_PORT push-worker:$PUSH_WORKER_PORT \
      status-projector:$PROJECTOR_PORT ingest:$INGEST_PORT prometheus:$PROMETHEUS_PORT; do
      job=${entry%%:*} port=${entry##*:}
      printf '  - job_name: %s\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' "$job" "$port"
    done
  } >"$dir/prometheus.yml"
  nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    >>"$RUN_DIR/logs/prometheus.log" 2>&1 &
  echo $! >"$pidf"
  wait_http prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  echo "[run] prometheus up on http://127.0.0.1:$PROMETHEUS_PORT (log: $RUN_DIR/logs/prometheus.log)"
}
PROMETHEUS_URL="not running (see the warning above)"
if ! bash deploy/local/install-prometheus.sh || ! command -v prometheus >/dev/null 2>&1; then
  echo "[run] WARNING: Prometheus could not be installed; the pipeline runs without it"
elif start_prometheus; then
  PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT (alerts: /alerts, targets: /targets)"
fi

# A demo user and template, so the first notification has someone to go to.
ADMIN=$("$BIN/notifyctl" token --subject make-run --scope users:read --scope users:write --scope templates:write --scope templates:read --scope suppressions:read --scope suppressions:write --ttl-secs 600)
curl -fsS -X POST "http://127.0.0.1:$TEMPLATE_SVC_PORT/api/v1/templates/" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"code":"welcome_email","channel":"email","default_language":"en","name":"Welcome","content":{"en":{"subject":"Welcome, {{ name }}","text_body":"Hello {{ name }}, start at {{ link }}","html_body":"<p>Hello <b>{{ name }}</b>, <a href=\"{{ link }}\">start here</a></p>"}}}' \
  >/dev/null 2>&1 || true
USER_ID=$(curl -fsS -X POST "http://127.0.0.1:$USER_SVC_PORT/api/v1/users/" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"Demo User","email":"demo@example.com","preferences":{"email":true,"push":true},"password":"demo-password-123"}' 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])' 2>/dev/null ||
  curl -fsS "http://127.0.0.1:$USER_SVC_PORT/api/v1/users/?limit=100" -H "Authorization: Bearer $ADMIN" |
  python3 -c 'import json,sys; print(next(u["id"] for u in json.load(sys.stdin)["data"] if u["email"]=="demo@example.com"))')

cat <<EOT

The pipeline is running: gateway http://127.0.0.1:$GATEWAY_PORT (OpenAPI: /api-docs/openapi.json),
user-svc :$USER_SVC_PORT, template-svc :$TEMPLATE_SVC_PORT, outbox-relay :$RELAY_PORT, email-worker :$EMAIL_WORKER_PORT,
push-worker :$PUSH_WORKER_PORT, status-projector :$PROJECTOR_PORT, ingest :$INGEST_PORT (each serves /metrics); SMTP sink 127.0.0.1:$SMTP_PORT
(stats: http://127.0.0.1:$SMTP_SINK_HTTP_PORT/stats). Logs: $RUN_DIR/logs/
Prometheus: $PROMETHEUS_URL

Send a first notification (demo user $USER_ID, template welcome_email):

  export APP_JWT_HS256_SECRET=\$(cat $RUN_DIR/jwt-secret)
  TOKEN=\$($BIN/notifyctl token --subject demo-service --scope notifications:send --scope notifications:read)
  curl -sS -X POST http://127.0.0.1:$GATEWAY_PORT/api/v1/notifications/ \\
    -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"notification_type":"email","user_id":"$USER_ID","template_code":"welcome_email","variables":{"name":"John Doe","link":"https://example.com"},"request_id":"first-1","priority":1,"metadata":{}}'

  curl -sS http://127.0.0.1:$GATEWAY_PORT/api/v1/notifications/<notification_id> -H "Authorization: Bearer \$TOKEN"
  tail -f $RUN_DIR/logs/smtp-sink.log      # the email as it arrives

Or as an internal producer, through Kafka (notifications.requests → ingest):

  $BIN/notifyctl send --producer demo-producer --type email --user $USER_ID \
    --template welcome_email --var name="John Doe" --var link=https://example.com --request-id first-2

Stop everything with: make stop
EOT
