-- Safeguarding flags (FHIR Flag, JSON) raised through the gateway, by the person they are about
-- (issue 23, G11, G20). A flag lives on the person, not on an agency's case, so it survives
-- case closure and record transfer. Every action on a flag (raised, resolved, a resolution
-- refused) is kept for the oversight report.
CREATE TABLE flags (
    flag_id TEXT   PRIMARY KEY,
    person  TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    status  TEXT   NOT NULL,
    body    TEXT   NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX flags_person ON flags (person);
CREATE TABLE flag_actions (
    flag_id TEXT   NOT NULL,
    person  TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    at      BIGINT NOT NULL,
    body    TEXT   NOT NULL
);
CREATE INDEX flag_actions_at ON flag_actions (at);
CREATE INDEX flag_actions_flag ON flag_actions (flag_id);
