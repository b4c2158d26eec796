//! `OperationOutcome`: how Kinfold says what went wrong, and where.

use serde::{Deserialize, Serialize};

use crate::CodeableConcept;

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueSeverity {
    /// The operation could not go on at all.
    Fatal,
    /// The operation failed.
    Error,
    /// The operation succeeded but something is wrong (e.g. an agency did not answer).
    Warning,
    /// For information only.
    Information,
}

/// `OperationOutcome.issue.code`: the R4 IssueType value set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueType {
    /// `invalid`
    Invalid,
    /// `structure`
    Structure,
    /// `required`
    Required,
    /// `value`
    Value,
    /// `invariant`
    Invariant,
    /// `security`
    Security,
    /// `login`
    Login,
    /// `unknown`
    Unknown,
    /// `expired`
    Expired,
    /// `forbidden`
    Forbidden,
    /// `suppressed`
    Suppressed,
    /// `processing`
    Processing,
    /// `not-supported`
    NotSupported,
    /// `duplicate`
    Duplicate,
    /// `multiple-matches`
    MultipleMatches,
    /// `not-found`
    NotFound,
    /// `deleted`
    Deleted,
    /// `too-long`
    TooLong,
    /// `code-invalid`
    CodeInvalid,
    /// `extension`
    Extension,
    /// `too-costly`
    TooCostly,
    /// `business-rule`
    BusinessRule,
    /// `conflict`
    Conflict,
    /// `transient`
    Transient,
    /// `lock-error`
    LockError,
    /// `no-store`
    NoStore,
    /// `exception`
    Exception,
    /// `timeout`
    Timeout,
    /// `incomplete`
    Incomplete,
    /// `throttled`
    Throttled,
    /// `informational`
    Informational,
}

fhir_resource! {
    /// A set of issues about an operation.
    OperationOutcome {
        issue: Vec<OperationOutcomeIssue>,
    }
}

fhir_element! {
    /// One issue.
    OperationOutcomeIssue {
        severity: Option<IssueSeverity>,
        code: Option<IssueType>,
        details: Option<CodeableConcept>,
        diagnostics: Option<String>,
        expression: Vec<String>,
    }
}

impl OperationOutcome {
    /// An outcome with one issue.
    pub fn single(
        severity: IssueSeverity,
        code: IssueType,
        diagnostics: impl Into<String>,
    ) -> Self {
        Self {
            issue: vec![OperationOutcomeIssue {
                severity: Some(severity),
                code: Some(code),
                diagnostics: Some(diagnostics.into()),
                ..OperationOutcomeIssue::default()
            }],
            ..Self::default()
        }
    }

    /// Adds a location (`issue.expression`) to the first issue.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        if let Some(issue) = self.issue.first_mut() {
            issue.expression.push(expression.into());
        }
        self
    }

    /// Adds a stable, machine-readable error code (`issue.details.coding`) to the first issue.
    pub fn with_code(mut self, code: &str) -> Self {
        if let Some(issue) = self.issue.first_mut() {
            issue.details = Some(CodeableConcept::coded(
                "https://kinfold.example/fhir/CodeSystem/error",
                code,
                code,
            ));
        }
        self
    }
}
