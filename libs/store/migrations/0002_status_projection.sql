-- Status projection: which template version and language were used, whether a history entry
-- changed the current status, and the key that makes re-applying an event a no-op.
ALTER TABLE notifications ADD COLUMN template_version integer;
ALTER TABLE notifications ADD COLUMN language text;
ALTER TABLE notification_status_history ADD COLUMN applied boolean NOT NULL DEFAULT true;
ALTER TABLE notification_status_history ADD COLUMN source text NOT NULL DEFAULT 'gateway';
CREATE UNIQUE INDEX notification_status_history_event_idx
    ON notification_status_history (notification_id, status, attempt, occurred_at);
