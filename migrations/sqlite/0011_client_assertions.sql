-- The SMART client assertions' ids (jti) already used and not yet expired, kept in the
-- database rather than in one gateway's memory: an assertion replayed to any gateway on this
-- database, or after a restart, is refused. Expired ids are deleted as new ones arrive, and the
-- table holds at most `smart.max_remembered` of them.
CREATE TABLE client_assertions (
    client_id TEXT   NOT NULL,
    jti       TEXT   NOT NULL,
    expires   BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expires ON client_assertions (expires);
