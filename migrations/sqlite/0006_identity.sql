-- The gateway's identity and family state: each agency record's person, the persons (and
-- unborn children), family edges, review-queue pairs and manual refusals, one JSON body
-- per (kind, key). The gateway loads it whole at start into its person index and family
-- graph; every change to it is also written to the audit ledger. `kind = 'cursor'` keeps how
-- far the received events have been read.
CREATE TABLE identity_state (
    kind    TEXT   NOT NULL,
    key     TEXT   NOT NULL,
    body    TEXT   NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
