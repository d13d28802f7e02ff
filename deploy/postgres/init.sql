-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d/).
-- One database per owner of data; each service runs its own migrations at start.
--   notify            gateway, ingest, outbox-relay, status-projector (notifications, outbox, idempotency)
--   notify_users      user-svc
--   notify_templates  template-svc
CREATE DATABASE notify;
CREATE DATABASE notify_users;
CREATE DATABASE notify_templates;
