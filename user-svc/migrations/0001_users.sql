-- Users, their push tokens and channel preferences. Deleting a user deletes the row (and
-- its tokens): nothing personal is kept, and lookups answer 404 (delivery is skipped).
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    language      TEXT NOT NULL,
    email_enabled BOOLEAN NOT NULL,
    push_enabled  BOOLEAN NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One account per address, whatever its case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- Listing order.
CREATE INDEX users_created_idx ON users (created_at, id);

-- A device token belongs to one user at a time: registering it for another user moves it.
CREATE TABLE push_tokens (
    token      TEXT PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform   TEXT NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX push_tokens_user_idx ON push_tokens (user_id, created_at);
