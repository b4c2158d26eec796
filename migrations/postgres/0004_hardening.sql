-- One Patient per NHS number in each agency's store: a second Patient claiming a number
-- already held here is refused (the adapter checks first and answers 409; this index is the
-- backstop for two ingests racing).
CREATE UNIQUE INDEX one_patient_per_nhs_number ON resource_tokens (code)
    WHERE resource_type = 'Patient' AND kind = 'identifier'
      AND system = 'https://fhir.nhs.uk/Id/nhs-number';

-- The audit views page through one patient's or one agent's entries by position.
CREATE INDEX ledger_entries_by_patient_seq ON ledger_entries (patient, seq);
CREATE INDEX ledger_entries_by_agent_seq ON ledger_entries (agent, seq);
