-- FHIR resources as JSON text with extracted search columns, in the manner of the
-- established FHIR servers. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE resources (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version_id    BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    patient       TEXT,
    date_start    BIGINT,
    date_end      BIGINT,
    content       TEXT    NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX resources_by_patient ON resources (patient, resource_type, date_start, id);
CREATE INDEX resources_by_updated ON resources (resource_type, last_updated);

-- Every version ever stored: an update never loses what was there before.
CREATE TABLE resource_versions (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version_id    BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    content       TEXT    NOT NULL,
    PRIMARY KEY (resource_type, id, version_id)
);

-- Token search columns: business identifiers and codes (kind = 'identifier' | 'code').
CREATE TABLE resource_tokens (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    system        TEXT NOT NULL,
    code          TEXT NOT NULL
);
CREATE INDEX resource_tokens_by_value ON resource_tokens (kind, code, system, resource_type, id);
CREATE INDEX resource_tokens_by_owner ON resource_tokens (resource_type, id);

-- The gateway's person index: Kinfold's own opaque person id for each NHS number, so that
-- NHS numbers never appear in URLs.
CREATE TABLE person_index (
    person_id  TEXT    NOT NULL PRIMARY KEY,
    nhs_number TEXT    NOT NULL UNIQUE,
    created    BIGINT NOT NULL
);
