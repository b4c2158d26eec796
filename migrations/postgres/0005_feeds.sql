-- Events an adapter owes the gateway, written in the same transaction as the records they
-- describe and deleted once the gateway has them (delivered at least once).
CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT   NOT NULL UNIQUE,
    created      BIGINT NOT NULL,
    payload      TEXT   NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt, seq);

-- Events the gateway has received from the adapters, once each (the identity and
-- notification work reads them in order of arrival).
CREATE TABLE received_events (
    seq      BIGSERIAL PRIMARY KEY,
    agency   TEXT   NOT NULL,
    event_id TEXT   NOT NULL,
    received BIGINT NOT NULL,
    payload  TEXT   NOT NULL,
    UNIQUE (agency, event_id)
);
