#!/bin/bash
# One-shot `kafka-init` (docker-compose.yml): creates the platform's topics before any service
# starts. Idempotent (--if-not-exists); the relay and workers find them ready, since the broker
# does not auto-create topics.
#
#   BOOTSTRAP_SERVERS    broker (default kafka:9092)
#   TOPIC_PREFIX         prefix of every name (default empty; = APP_KAFKA_TOPIC_PREFIX)
#   TOPIC_PARTITIONS     partitions of every topic (default 6; = APP_KAFKA_PARTITIONS).
#                        Workers of one group scale up to this count.
#   TOPIC_REPLICATION    replication factor (default 1 on the single local broker; 3 in production)
#   RETRY_RETENTION_MS   retention of the retry topics (default 1 day)
#   DLT_RETENTION_MS     retention of the dead-letter topics (default 14 days)
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP_SERVERS:-kafka:9092}"
PREFIX="${TOPIC_PREFIX:-}"
PARTITIONS="${TOPIC_PARTITIONS:-6}"
REPLICATION="${TOPIC_REPLICATION:-1}"
RETRY_RETENTION_MS="${RETRY_RETENTION_MS:-86400000}"
DLT_RETENTION_MS="${DLT_RETENTION_MS:-1209600000}"
KAFKA_TOPICS="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

create() { # name [--config k=v ...]
  local name="$PREFIX$1"; shift
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$name" --partitions "$PARTITIONS" --replication-factor "$REPLICATION" "$@"
  echo "[kafka-init] topic $name ready"
}

for channel in email push; do
  create "notifications.$channel"
  create "notifications.$channel.priority"
  for tier in retry-30s retry-5m; do
    create "notifications.$channel.$tier" --config "retention.ms=$RETRY_RETENTION_MS"
  done
  create "notifications.$channel.dlt" --config "retention.ms=$DLT_RETENTION_MS"
done
create "notifications.status"
# Internal producers' requests (key = user id) and the ingest service's dead letters.
create "notifications.requests"
create "notifications.requests.dlt" --config "retention.ms=$DLT_RETENTION_MS"

echo "[kafka-init] the platform's 13 topics exist (prefix '$PREFIX', $PARTITIONS partitions)"
