//! The liaison dashboard: the pages a paediatric liaison nurse, health visitor or school nurse
//! works from, served by the gateway under `/app/`.
//!
//! Invariants:
//! * **No side door.** This crate holds no store and no ledger: every page's data comes from
//!   the gateway's own API ([`api`]), called with a short-lived token that says who is signed
//!   in and why, so each answer went through the disclosure pipeline and its ledger entry.
//! * **The browser holds a reference, never a token** ([`session`]).
//! * **Every form carries the session's CSRF token**, and a form is refused without it, or with
//!   another session's.
//! * **A miss and a refusal look the same**: a child the signed-in user has no relationship
//!   with is "no child found", as for one who does not exist.
//! * Server-rendered HTML (maud), no script, no request to anywhere but the gateway.

pub mod api;
mod app;
mod child;
mod layout;
mod search;
pub mod session;
mod signin;
mod worklist;

pub use api::{Minting, Purpose, Tokens};
pub use app::{Dashboard, DashboardConfig, DashboardError, TOKEN_LIFETIME};
pub use child::{child_chart, child_override, child_page};
pub use search::search_page;
pub use session::User;
pub use signin::{home, sign_in, sign_in_page, sign_out};
pub use worklist::{acknowledge, complete, worklist_page};
