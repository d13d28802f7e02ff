-- Templates, their versions and each version's content per language.
--
-- A version is immutable once published (triggers below refuse UPDATE and DELETE);
-- changing a template publishes a new version, which becomes the active one. Exactly one
-- version is active per template: `templates.active_version`, which must name an existing
-- version of the template (checked at commit, since both rows are written together).

CREATE TABLE templates (
    code             TEXT PRIMARY KEY,
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'push')),
    name             TEXT NOT NULL,
    description      TEXT,
    default_language TEXT NOT NULL,
    active_version   INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX templates_created_idx ON templates (created_at, code);

CREATE TABLE template_versions (
    code       TEXT NOT NULL REFERENCES templates (code),
    version    INTEGER NOT NULL CHECK (version > 0),
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (code, version)
);

ALTER TABLE templates
    ADD CONSTRAINT templates_active_version_fkey
    FOREIGN KEY (code, active_version) REFERENCES template_versions (code, version)
    DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE template_contents (
    code     TEXT NOT NULL,
    version  INTEGER NOT NULL,
    language TEXT NOT NULL,
    content  JSONB NOT NULL,
    PRIMARY KEY (code, version, language),
    FOREIGN KEY (code, version) REFERENCES template_versions (code, version)
);

CREATE FUNCTION refuse_version_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'published template versions are immutable; publish a new version'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER template_versions_immutable
    BEFORE UPDATE OR DELETE ON template_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_version_change();

CREATE TRIGGER template_contents_immutable
    BEFORE UPDATE OR DELETE ON template_contents
    FOR EACH ROW EXECUTE FUNCTION refuse_version_change();
