#!/usr/bin/env bash
# Smoke check of a deployed platform: sends one notification through the gateway and follows it
# until its status is `sent` (exit 0), a terminal failure, or the deadline (exit 1).
#
#   GATEWAY_URL         the gateway (deploy/k8s/release.sh smoke port-forwards to it)
#   SMOKE_TOKEN         a JWT with scopes notifications:send and notifications:read
#                       (notifyctl token --subject smoke --scope notifications:send --scope
#                       notifications:read, with the environment's key); never printed
#   SMOKE_USER_ID       a user of the environment with an email contact that accepts mail
#   SMOKE_TEMPLATE      an email template code of the environment (default welcome_email)
#   SMOKE_DEADLINE_SECS how long to wait for `sent` (default 120)
set -euo pipefail

: "${GATEWAY_URL:?set GATEWAY_URL}" "${SMOKE_TOKEN:?set SMOKE_TOKEN}" "${SMOKE_USER_ID:?set SMOKE_USER_ID}"
template="${SMOKE_TEMPLATE:-welcome_email}"
deadline=$((SECONDS + ${SMOKE_DEADLINE_SECS:-120}))
request_id="smoke-$(date +%s)-$RANDOM"
auth=(-H "Authorization: Bearer $SMOKE_TOKEN")

log() { echo "[smoke] $*" >&2; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"; }

# The port-forward (or the gateway's readiness) may take a moment.
until curl -fsS -o /dev/null "$GATEWAY_URL/health"; do
  [ $SECONDS -lt $deadline ] || { log "the gateway at $GATEWAY_URL never answered /health"; exit 1; }
  sleep 2
done

body=$(python3 -c 'import json, sys; print(json.dumps({"notification_type": "email", "user_id": sys.argv[1],
  "template_code": sys.argv[2], "variables": {"name": "Smoke check", "link": "https://example.com"},
  "request_id": sys.argv[3], "priority": 1, "metadata": {"smoke": True}}))' "$SMOKE_USER_ID" "$template" "$request_id")
accepted=$(curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d "$body" "$GATEWAY_URL/api/v1/notifications/")
id=$(field notification_id <<<"$accepted")
log "accepted $id (request $request_id); waiting for sent"

while :; do
  status=$(curl -fsS "${auth[@]}" "$GATEWAY_URL/api/v1/notifications/$id" | field status)
  case "$status" in
    sent|delivered) log "$id is $status"; exit 0 ;;
    failed|bounced|dead_lettered|skipped) log "$id ended $status"; exit 1 ;;
  esac
  [ $SECONDS -lt $deadline ] || { log "$id still $status at the deadline"; exit 1; }
  sleep 2
done
