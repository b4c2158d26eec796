-- Notifications (issue 27): one FHIR Task (JSON) per recipient of each rule an event sets off,
-- and each escalation of one nobody acknowledged. Made from the received events by a cursor
-- that moves in the same transaction as the notifications it made, so that no event is read
-- twice and none is skipped, whichever gateway on the database reads it.
CREATE TABLE notifications (
    task_id         TEXT    PRIMARY KEY,
    rule            TEXT    NOT NULL,
    person          TEXT    NOT NULL,
    owner_org       TEXT    NOT NULL,
    owner_role      TEXT    NOT NULL,
    owner_name      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    level           BIGINT  NOT NULL,
    due             BIGINT  NOT NULL,
    next_escalation BIGINT  NOT NULL,
    event_seq       BIGINT  NOT NULL,
    created         BIGINT  NOT NULL,
    updated         BIGINT  NOT NULL,
    body            TEXT    NOT NULL
);
CREATE INDEX notifications_owner ON notifications (owner_org, owner_role, status);
CREATE INDEX notifications_escalation ON notifications (next_escalation);
CREATE INDEX notifications_person ON notifications (person);

-- How far the notification work has read the received events.
CREATE TABLE notification_cursor (
    name TEXT   PRIMARY KEY,
    seq  BIGINT NOT NULL
);
