-- The audit ledger. Each entry's leaf input is (version, seq, recorded, SHA-256(record)); the
-- record is the canonical audit record text, kept here under the gateway's access rules.
CREATE TABLE ledger_entries (
    seq       INTEGER NOT NULL PRIMARY KEY,
    recorded  INTEGER NOT NULL,
    patient   TEXT,
    agent     TEXT    NOT NULL,
    leaf_hash TEXT    NOT NULL,
    record    TEXT    NOT NULL
);
CREATE INDEX ledger_entries_by_patient ON ledger_entries (patient, recorded);

-- Signed tree heads (RFC 6962 section 3.5 serialisation, Ed25519), base64.
CREATE TABLE ledger_tree_heads (
    tree_size INTEGER NOT NULL PRIMARY KEY,
    recorded  INTEGER NOT NULL,
    root_hash TEXT    NOT NULL,
    signature TEXT    NOT NULL
);
