-- FHIR Subscriptions (R4 backport, topic-based, rest-hook) of registered system clients
-- (issue 27), and each subscription's numbered events: an outbox, written in the transaction
-- that makes the notification, delivered in order of number at least once, kept for `$events`.
CREATE TABLE subscriptions (
    id                TEXT    PRIMARY KEY,
    client_id         TEXT    NOT NULL,
    owner_org         TEXT    NOT NULL,
    endpoint          TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    heartbeat_seconds BIGINT  NOT NULL,
    events_count      BIGINT  NOT NULL,
    last_sent         BIGINT  NOT NULL,
    created           BIGINT  NOT NULL,
    body              TEXT    NOT NULL
);
CREATE INDEX subscriptions_owner ON subscriptions (owner_org, status);
CREATE TABLE subscription_events (
    subscription_id TEXT    NOT NULL,
    number          BIGINT  NOT NULL,
    task_id         TEXT    NOT NULL,
    created         BIGINT  NOT NULL,
    delivered       BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL,
    next_attempt    BIGINT  NOT NULL,
    PRIMARY KEY (subscription_id, number)
);
CREATE INDEX subscription_events_due ON subscription_events (delivered, next_attempt);
