//! What can go wrong when turning bytes or strings into Kinfold's FHIR types.

/// A value that could not be parsed, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {message} (line {line}, column {column})")]
    Json {
        /// What the JSON parser said.
        message: String,
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
    },
    /// The JSON is well formed but an element has the wrong shape.
    #[error("{path}: {message}")]
    Element {
        /// FHIRPath-like location, e.g. `Observation.valueQuantity.value`.
        path: String,
        /// What was wrong there.
        message: String,
    },
    /// An NHS number that is not ten digits with a valid Modulus 11 check digit.
    #[error("not a valid NHS number: {0}")]
    NhsNumber(&'static str),
    /// An ODS code that is not 3 to 10 capital letters and digits.
    #[error("not a valid ODS organisation code")]
    OdsCode,
    /// A search parameter Kinfold does not support, or a value it cannot read.
    #[error("search parameter '{name}': {message}")]
    SearchParameter {
        /// The parameter as the client sent it.
        name: String,
        /// What was wrong with it.
        message: String,
    },
}

impl ParseError {
    /// Where the fault is, as a FHIRPath-like expression for `OperationOutcome.issue.expression`.
    pub fn location(&self) -> Option<&str> {
        match self {
            ParseError::Element { path, .. } => Some(path),
            ParseError::SearchParameter { name, .. } => Some(name),
            _ => None,
        }
    }
}
