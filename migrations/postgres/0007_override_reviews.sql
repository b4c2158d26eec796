-- Overrides waiting for (or given) a privacy officer's review: one FHIR Task per override and
-- data-owning organisation (`GET /Task?code=override-review`).
CREATE TABLE override_reviews (
    task_id TEXT   PRIMARY KEY,
    owner   TEXT   NOT NULL,
    status  TEXT   NOT NULL,
    body    TEXT   NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX override_reviews_queue ON override_reviews (owner, status, updated);
