-- Audit records written by a process that is not the ledger's writer (the `kinfold token`
-- command beside a running gateway), waiting for the ledger to append them. The ledger moves
-- each into ledger_entries and deletes it here in one transaction.
CREATE TABLE ledger_inbox (
    id     BIGSERIAL PRIMARY KEY,
    record TEXT      NOT NULL
);
