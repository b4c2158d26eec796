//! Consent-checked disclosure: the policy decision point.
//!
//! Pure: the gateway (the enforcement point) gathers who is asking and why
//! ([`Requester`]), what the data says about their relationship with the child
//! ([`ChildFacts`]), any recorded consent decisions ([`Dissent`]) and each resource a query
//! would return ([`Item`]); [`decide`] answers **permit**, **withhold** (it exists, but not for
//! this caller) or **deny** (no relationship at all), and every [`Decision`] names the rule
//! that made it, so that the ledger, the access report and a privacy officer's "why" can all
//! say which.
//!
//! Rules, in the order they apply:
//! 1. **Relationship** ([`relationship`]): a caller with no legitimate relationship to the
//!    child is denied everything (`relationship.none`), override or not.
//! 2. **Role scope**: some roles never see some agencies' records (a school nurse does not see
//!    midwifery notes: `scope.role`).
//! 3. **Family context** (G1): a family member's records are permitted only when
//!    safeguarding-relevant ([`Policy::safeguarding_relevant`]); the rest is withheld
//!    (`family.not-safeguarding-relevant`).
//! 4. **Consent**: a recorded dissent for the agency, category or period withholds
//!    (`consent.dissent`).
//! 5. **Sensitive categories** (sexual health, termination, gender identity, assisted
//!    conception, an adult's mental-health detail) are withheld unless explicitly permitted
//!    (`sensitive.<category>`).
//! 6. **Override**: purpose `override` with a justification of at least
//!    [`Policy::min_justification`] letters or digits reveals what rules 2 to 5 withheld, except what
//!    a rule marks never overridable ([`Policy::never_overridable`]); the decision says
//!    `override` and names the rule it overrode.

mod category;
mod decision;
mod relationship;
mod who;

pub use category::{Category, ResourceView, classify};
pub use decision::{Decision, Dissent, Effect, Item, Policy, Whose, decide};
pub use relationship::{Allocation, ChildFacts, Relationship, relationship};
pub use who::{Purpose, Requester, Role, WhoError, letters};
