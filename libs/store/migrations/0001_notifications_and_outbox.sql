-- Notifications accepted by the gateway, their status history, the idempotency records and
-- the transactional outbox. Written by the gateway in one transaction per request.

CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    caller          text        NOT NULL,
    request_id      text        NOT NULL,
    user_id         uuid        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'push')),
    template_code   text        NOT NULL,
    variables       jsonb       NOT NULL,
    priority        smallint    NOT NULL CHECK (priority BETWEEN 1 AND 10),
    metadata        jsonb       NOT NULL,
    correlation_id  text        NOT NULL,
    status          text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC);

CREATE TABLE notification_status_history (
    id              bigserial   PRIMARY KEY,
    notification_id uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    status          text        NOT NULL,
    attempt         integer     NOT NULL DEFAULT 0,
    error           text,
    provider        text,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_status_history_idx ON notification_status_history (notification_id, id);

-- Idempotency: one row per (caller, request_id) for a configurable time. The stored response
-- is replayed for a repeated request with the same body.
CREATE TABLE idempotency_keys (
    caller          text        NOT NULL,
    request_id      text        NOT NULL,
    request_hash    bytea       NOT NULL,
    notification_id uuid        NOT NULL,
    response_status smallint    NOT NULL,
    response_body   jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

-- The transactional outbox. `shard` = stable hash of `message_key` modulo OUTBOX_SHARDS;
-- each shard is published by exactly one relay at a time (advisory lock), in id order.
CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    shard           smallint    NOT NULL,
    topic           text        NOT NULL,
    message_key     text        NOT NULL,
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    parked_at       timestamptz
);
-- What the relay claims: unpublished, unparked rows in id order.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
-- Rows backing off after a failed publish; they hold back later rows of their key.
CREATE INDEX outbox_backoff_idx ON outbox (shard, message_key, id)
    WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at IS NOT NULL;
-- Retention sweep of published rows.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
-- Parked rows, for operators and the alert.
CREATE INDEX outbox_parked_idx ON outbox (parked_at) WHERE parked_at IS NOT NULL;
