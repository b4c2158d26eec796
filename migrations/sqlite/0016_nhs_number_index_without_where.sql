-- The one-Patient-per-NHS-number backstop (0004) as an index on an expression instead of a
-- partial index. SQLite re-plans a prepared statement whenever a bound value it compares
-- with a partial index's WHERE changes, so with the partial index every search of
-- resource_tokens (`system = ?`, `resource_type = ?`) was parsed and planned again at each
-- run: a tenth of the CPU of a `$everything` across five adapters. The rule is the same: a
-- second Patient row holding an NHS number already held here is refused; other rows index
-- as NULL, which never conflicts. (PostgreSQL plans differently and keeps its partial index.)
DROP INDEX one_patient_per_nhs_number;
CREATE UNIQUE INDEX one_patient_per_nhs_number ON resource_tokens ((
    CASE WHEN resource_type = 'Patient' AND kind = 'identifier'
        AND system = 'https://fhir.nhs.uk/Id/nhs-number' THEN code END
));
