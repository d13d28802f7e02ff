-- The suppression list: addresses (email) and device tokens (push) that must not be sent to,
-- whoever they belong to. Keyed by the address itself, not by a user: a bounce or a
-- complaint is about the mailbox, and survives the user changing or deleting their account.
-- `address` is stored normalised (email: trimmed and lower-cased; push: the token as given),
-- so the key is (channel, lower(address)) for email.
CREATE TABLE suppressions (
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'push')),
    address    TEXT NOT NULL CHECK (length(address) BETWEEN 1 AND 4096),
    reason     TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribe', 'manual')),
    -- Who said so: 'sendgrid', 'mailgun', 'unsubscribe-link', 'operator:<subject>', ...
    source     TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
    -- The provider's diagnostic or the operator's note, bounded.
    detail     TEXT CHECK (length(detail) <= 1000),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, address),
    CHECK (channel <> 'email' OR address = lower(address))
);

-- Listing order (oldest first, like the users list).
CREATE INDEX suppressions_listing_idx ON suppressions (channel, created_at, address);
