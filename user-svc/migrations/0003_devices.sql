-- Devices as a lifecycle. Each registered push token gets an id, the push provider that
-- delivers to it and when a delivery last used it. A token still belongs to one user at a
-- time, but it moves to another user only when that user registers it themselves (user-svc
-- checks the caller), and every registration, move and removal is recorded in
-- device_events.

ALTER TABLE push_tokens ADD COLUMN id UUID;
UPDATE push_tokens SET id = gen_random_uuid() WHERE id IS NULL;
ALTER TABLE push_tokens ALTER COLUMN id SET NOT NULL;
CREATE UNIQUE INDEX push_tokens_id_key ON push_tokens (id);

-- Before this migration every device went through the FCM-like provider, web ones included.
ALTER TABLE push_tokens ADD COLUMN provider TEXT NOT NULL DEFAULT 'fcm'
    CHECK (provider IN ('fcm', 'webpush', 'onesignal'));
ALTER TABLE push_tokens ALTER COLUMN provider DROP DEFAULT;
ALTER TABLE push_tokens ADD COLUMN last_used_at TIMESTAMPTZ;

-- What happened to a device, and who did it. No foreign keys: the record outlives the device
-- (and the user). It names users and the caller by id only, never the token.
CREATE TABLE device_events (
    id          BIGSERIAL PRIMARY KEY,
    device_id   UUID NOT NULL,
    event       TEXT NOT NULL CHECK (event IN ('registered', 'moved', 'removed', 'gone')),
    -- The owner before the event (moved, removed, gone).
    from_user   UUID,
    -- The owner after the event (registered, moved).
    to_user     UUID,
    -- The caller: `user:{id}` for an end user's token, `service:{subject}` for a service.
    actor       TEXT NOT NULL,
    -- Why (a gone device: the provider's answer, e.g. `fcm: UNREGISTERED`).
    reason      TEXT,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX device_events_device_idx ON device_events (device_id, occurred_at);
