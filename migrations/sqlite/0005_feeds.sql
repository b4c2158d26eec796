-- Events an adapter owes the gateway, written in the same transaction as the records they
-- describe and deleted once the gateway has them (delivered at least once).
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    created      INTEGER NOT NULL,
    payload      TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt, seq);

-- Events the gateway has received from the adapters, once each (the identity and
-- notification work reads them in order of arrival).
CREATE TABLE received_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    agency   TEXT    NOT NULL,
    event_id TEXT    NOT NULL,
    received INTEGER NOT NULL,
    payload  TEXT    NOT NULL,
    UNIQUE (agency, event_id)
);
