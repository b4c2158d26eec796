-- Consent decisions recorded through the gateway (FHIR Consent, JSON), by the person they are
-- about. The disclosure pipeline reads a person's active dissents before deciding.
CREATE TABLE consents (
    consent_id TEXT   PRIMARY KEY,
    person     TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    updated    BIGINT NOT NULL
);
CREATE INDEX consents_person ON consents (person);
