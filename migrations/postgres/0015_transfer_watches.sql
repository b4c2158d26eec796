-- Custody transfers watched from their start until they complete (G7, issue 27): one row a
-- transfer, written with the notifications of the events that started or completed it; an
-- overdue one tells both services' leads once (status `fired`).
CREATE TABLE transfer_watches (
    id      TEXT   PRIMARY KEY,
    person  TEXT   NOT NULL,
    source  TEXT   NOT NULL,
    started BIGINT NOT NULL,
    due     BIGINT NOT NULL,
    status  TEXT   NOT NULL
);
CREATE INDEX transfer_watches_due ON transfer_watches (status, due);
