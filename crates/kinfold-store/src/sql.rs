//! A small SQL text builder that numbers placeholders for the backend and keeps every value
//! as a bound argument (row counts aside: [`Sql::count`]).

use kinfold_fhir::search::{DateConstraint, DateParam, SearchQuery, TokenParam};

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    pub(crate) fn text(value: &str) -> Self {
        Arg::Text(value.to_owned())
    }
}

/// SQL text plus its arguments, in placeholder order.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
    postgres: bool,
}

impl Sql {
    pub(crate) fn new(postgres: bool) -> Self {
        Self {
            text: String::with_capacity(256),
            args: Vec::new(),
            postgres,
        }
    }

    pub(crate) fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends a placeholder and its value: `$n` for PostgreSQL; a bare `?` for SQLite, whose
    /// placeholders are numbered in order anyway. (A numbered `?n` is a named parameter there,
    /// and binding looks each name up in a list: a multi-row insert of a thousand values spent
    /// an eighth of the writer's time in `sqlite3_bind_parameter_name`.)
    pub(crate) fn bind(&mut self, arg: Arg) {
        self.args.push(arg);
        if self.postgres {
            self.text.push('$');
            self.text.push_str(&self.args.len().to_string());
        } else {
            self.text.push('?');
        }
    }

    /// Appends a row count (a `LIMIT` or `OFFSET`) as a number in the text, not a placeholder.
    /// SQLite (3.51) plans with the row count, so a prepared statement with a bound `LIMIT`
    /// was parsed and planned again at every run (a tenth of the CPU of a `$everything`). Only
    /// integers are written this way, so nothing a caller sends reaches the text.
    pub(crate) fn count(&mut self, rows: i64) {
        self.text.push_str(&rows.to_string());
    }

    /// Appends the `AND …` conditions of a search (on table alias `r`). Repeated parameters
    /// are ANDed, each parameter's comma-separated values ORed, as
    /// [`SearchQuery::matches`] says.
    pub(crate) fn filters(&mut self, resource_type: &str, query: &SearchQuery) {
        for any_of in &query.id {
            self.any_of("r.id", any_of);
        }
        for any_of in &query.patient {
            self.any_of("r.patient", any_of);
        }
        // With a patient or id the resource index narrows to a few rows: check tokens per row.
        // Without, start from the token index.
        let narrow = !query.patient.is_empty() || !query.id.is_empty();
        for any_of in &query.identifier {
            self.tokens(resource_type, "identifier", any_of, narrow);
        }
        for any_of in &query.code {
            self.tokens(resource_type, "code", any_of, narrow);
        }
        for date in &query.date {
            self.date("r.date_start", "r.date_end", date);
        }
        for updated in &query.last_updated {
            // A stored instant is the one millisecond it names.
            self.date("r.last_updated", "(r.last_updated + 1)", updated);
        }
    }

    /// `AND column IN (…)`.
    fn any_of(&mut self, column: &str, values: &[String]) {
        self.push(" AND ");
        self.push(column);
        self.push(" IN (");
        for (n, value) in values.iter().enumerate() {
            if n > 0 {
                self.push(", ");
            }
            self.bind(Arg::text(value));
        }
        self.push(")");
    }

    /// A token condition: the resource has a token matching any of `any_of`. `narrow` (a
    /// patient or id filter already narrows to a few rows) and every value with its code: a
    /// correlated `EXISTS`, a lookup in the token index for each resource the other filters
    /// found. Otherwise `r.id IN (…)`, so that SQLite starts from the token index instead of
    /// checking every resource of the type. (SQLite has no statistics to choose this by
    /// itself; the token index leads with the code, and there is no index by owner.)
    fn tokens(&mut self, resource_type: &str, kind: &str, any_of: &[TokenParam], narrow: bool) {
        if any_of.is_empty() {
            return;
        }
        let per_row = narrow && any_of.iter().all(|token| token.code.is_some());
        if per_row {
            self.push(" AND EXISTS (SELECT 1 FROM resource_tokens t WHERE t.resource_type = r.resource_type AND t.id = r.id");
        } else {
            self.push(" AND r.id IN (SELECT t.id FROM resource_tokens t WHERE t.resource_type = ");
            self.bind(Arg::text(resource_type));
        }
        self.push(" AND t.kind = ");
        self.bind(Arg::text(kind));
        self.push(" AND (");
        for (n, token) in any_of.iter().enumerate() {
            if n > 0 {
                self.push(" OR ");
            }
            self.push("(1 = 1");
            if let Some(code) = &token.code {
                self.push(" AND t.code = ");
                self.bind(Arg::text(code));
            }
            if let Some(system) = &token.system {
                self.push(" AND t.system = ");
                self.bind(Arg::text(system));
            }
            self.push(")");
        }
        self.push("))");
    }

    fn date(&mut self, start: &str, end: &str, param: &DateParam) {
        let DateConstraint {
            start_ge,
            start_lt,
            end_gt,
            end_le,
            negate,
        } = param.constraint();
        // A resource without the date matches no date condition, `ne` included.
        self.push(" AND ");
        self.push(start);
        self.push(" IS NOT NULL");
        self.push(if negate {
            " AND NOT (1 = 1"
        } else {
            " AND (1 = 1"
        });
        for (column, op, value) in [
            (start, " >= ", start_ge),
            (start, " < ", start_lt),
            (end, " > ", end_gt),
            (end, " <= ", end_le),
        ] {
            if let Some(value) = value {
                self.push(" AND ");
                self.push(column);
                self.push(op);
                self.bind(Arg::Int(value));
            }
        }
        self.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::{Arg, Sql};

    #[test]
    fn a_row_count_is_text_and_every_value_a_placeholder() {
        for postgres in [false, true] {
            let mut sql = Sql::new(postgres);
            sql.push("SELECT id FROM resources WHERE patient = ");
            sql.bind(Arg::text("p1"));
            sql.push(" LIMIT ");
            sql.count(1000);
            sql.push(" OFFSET ");
            sql.count(0);
            let placeholder = if postgres { "$1" } else { "?" };
            assert_eq!(
                sql.text,
                format!(
                    "SELECT id FROM resources WHERE patient = {placeholder} LIMIT 1000 OFFSET 0"
                )
            );
            assert_eq!(sql.args.len(), 1);
        }
    }
}
