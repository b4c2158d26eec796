//! Every route the gateway serves, with its policy, in one table: who may call it, what in
//! the records must tie them to the person it concerns, and what the ledger records. The
//! gateway registers its routes from this table and nowhere else, so a route without a policy
//! cannot be served; the route-table test (`tests/tests/routes.rs`) calls every path and
//! method in `openapi/gateway.json` as every kind of caller and compares each answer with it.
//!
//! Two kinds of refusal, never mixed:
//! * **By who the caller is** (no token, a role the route is not for, a token without role,
//!   organisation or purpose): `401` or `403`, whatever the id asked about. They say nothing
//!   about whether anything exists.
//! * **By what the records say** (no relationship with this person, an organisation that holds
//!   none of their records): answered exactly as "not found" for that id (`404` with the same
//!   body, or a search that finds nothing), and recorded in the ledger as refused.

use actix_web::{FromRequest, Handler, Route, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::answer::Disclosed;
use crate::error::GatewayError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: it carries no person data (the CapabilityStatement, health,
    /// the ledger's public proofs, SMART discovery).
    Open,
    /// A registered SMART client with a signed assertion (`/auth/token`).
    Client,
    /// An adapter delivering its events, with a token signed by its own event key.
    EventSender,
    /// A caller whose token says who and why (role, organisation, purpose), with a legitimate
    /// relationship to the person the route names, decided by the disclosure pipeline.
    Relationship,
    /// A search: a caller who says who and why; each person found is decided by the pipeline,
    /// and one the caller has no relationship with is answered as not found.
    Search,
    /// A privacy officer (role `privacy-officer`) of an organisation whose records are
    /// concerned; the area's privacy officers are concerned with every person in the area.
    PrivacyOfficer,
    /// A privacy officer as above (the whole report), or a professional with a current
    /// relationship to the person (who looked and when, not what was withheld from others).
    AccessReport,
    /// A safeguarding professional or a privacy officer of an organisation: the flags'
    /// oversight report, of the people the organisation is concerned with (the area's: all).
    Oversight,
    /// Whoever a Task is addressed to: a notification's owning organisation's professionals in
    /// its role (and, once escalated, the lead it went to); an override review's privacy
    /// officers. A Task addressed to someone else is answered exactly as one that does not
    /// exist.
    TaskOwner,
    /// A registered system client (a token from `/auth/token`), for its own subscriptions, the
    /// organisations and the endpoints it is registered for; anyone else's subscription is
    /// answered as one that does not exist.
    Subscriber,
    /// A person signed in to the dashboard (`/app/`, a session cookie): the page's data comes
    /// only from this table's API routes, called with a token of the signed-in user's, so each
    /// disclosure on a page is decided and recorded there, never here.
    Session,
    /// An identity steward (role `identity-steward`) of an organisation that holds one of the
    /// records concerned, giving a reason; each change is in the access report of every person
    /// it concerns.
    IdentitySteward,
}

impl Access {
    /// Whether the route may answer with person, audit or identity data (and so answers only
    /// with a [`Disclosed`], built from its ledger receipt).
    pub fn discloses(self) -> bool {
        !matches!(
            self,
            Access::Open | Access::Client | Access::EventSender | Access::Session
        )
    }
}

/// One route's declared policy.
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path as OpenAPI writes it (`/Patient/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What the ledger records for it.
    pub records: &'static str,
    route: fn() -> Route,
    /// The largest body it reads, where that differs from the gateway's default.
    body_limit: Option<usize>,
}

/// Registers a handler for a guarded route: it must answer with a [`Disclosed`], which only a
/// ledger receipt builds.
pub(crate) fn guarded<F, Args>(route: Route, handler: F) -> Route
where
    F: Handler<Args, Output = Result<Disclosed, GatewayError>>,
    Args: FromRequest + 'static,
{
    route.to(handler)
}

/// One table row: `route!(GET "/path", Access, "what the ledger records", handler)`. Rows for
/// routes that disclose go through [`guarded`]; the others cannot carry person data.
macro_rules! route {
    (GET $path:literal, $access:ident, $records:literal, $handler:path) => {
        route!(@ "GET", get, $path, $access, $records, $handler)
    };
    (POST $path:literal, $access:ident, $records:literal, $handler:path) => {
        route!(@ "POST", post, $path, $access, $records, $handler)
    };
    (@ $method:literal, $verb:ident, $path:literal, Open, $records:literal, $handler:path) => {
        route!(@plain $method, $verb, $path, Open, $records, $handler)
    };
    (@ $method:literal, $verb:ident, $path:literal, Client, $records:literal, $handler:path) => {
        route!(@plain $method, $verb, $path, Client, $records, $handler)
    };
    (@ $method:literal, $verb:ident, $path:literal, EventSender, $records:literal, $handler:path) => {
        route!(@plain $method, $verb, $path, EventSender, $records, $handler)
    };
    (@ $method:literal, $verb:ident, $path:literal, Session, $records:literal, $handler:path) => {
        route!(@plain $method, $verb, $path, Session, $records, $handler)
    };
    (@plain $method:literal, $verb:ident, $path:literal, $access:ident, $records:literal, $handler:path) => {
        RoutePolicy {
            method: $method,
            path: $path,
            access: Access::$access,
            records: $records,
            route: || web::$verb().to($handler),
            body_limit: None,
        }
    };
    (@ $method:literal, $verb:ident, $path:literal, $access:ident, $records:literal, $handler:path) => {
        RoutePolicy {
            method: $method,
            path: $path,
            access: Access::$access,
            records: $records,
            route: || guarded(web::$verb(), $handler),
            body_limit: None,
        }
    };
}

/// The gateway's routes and their policies. The API's own description (`/openapi.json` and
/// `/docs/`) is open too and carries no data.
pub static ROUTES: &[RoutePolicy] = &[
    route!(GET "/metadata", Open, "nothing", crate::routes::metadata),
    route!(GET "/health", Open, "nothing", crate::routes::health),
    route!(GET "/metrics", Open, "nothing (counts and times by route, agency, rule and team; no person data)", crate::metrics_routes::scrape),
    route!(GET "/.well-known/smart-configuration", Open, "nothing", crate::smart::smart_configuration),
    route!(POST "/auth/token", Client, "the token issued (to which client, with which scopes)", crate::smart::token),
    RoutePolicy {
        body_limit: Some(crate::events::MAX_DELIVERY_BYTES),
        ..route!(POST "/events", EventSender, "each identity link or change the events make", crate::events::receive)
    },
    route!(GET "/ledger/v1/get-sth", Open, "nothing (no person data: sizes, roots, signatures)", kinfold_audit::http::get_sth),
    route!(GET "/ledger/v1/get-sth-consistency", Open, "nothing (hashes only)", kinfold_audit::http::get_sth_consistency),
    route!(GET "/ledger/v1/get-proof-by-hash", Open, "nothing (hashes only)", kinfold_audit::http::get_proof_by_hash),
    route!(GET "/ledger/v1/get-entries", Open, "nothing (leaf inputs: positions, times, hashes)", kinfold_audit::http::get_entries),
    route!(GET "/ledger/v1/public-key", Open, "nothing", kinfold_audit::http::public_key),
    route!(GET "/Patient", Search, "each person found and the records linked, or the search refused", crate::routes::patient_search),
    route!(GET "/Patient/{id}", Relationship, "the records linked, the relationship's rule", crate::routes::patient_read),
    route!(GET "/Patient/{id}/$everything", Relationship, "each record disclosed, overridden or withheld, per person", crate::routes::patient_everything),
    route!(GET "/Group/{id}/$everything", Relationship, "each record disclosed, overridden or withheld, per person", crate::routes::group_everything),
    route!(GET "/Binary/{id}", Relationship, "the original disclosed, or the read refused", crate::routes::binary_read),
    route!(GET "/Patient/{id}/$growth", Relationship, "each measurement disclosed", crate::growth::growth),
    route!(GET "/Patient/{id}/$growth-chart", Relationship, "each measurement disclosed", crate::growth::growth_chart),
    route!(GET "/Patient/{id}/$chronology", Relationship, "each entry's record disclosed, per person", crate::chronology::chronology),
    route!(GET "/Person/{id}", Relationship, "the agency records linked", crate::identity_routes::person_read),
    route!(GET "/Patient/{id}/$family", Relationship, "each family member shown", crate::identity_routes::family),
    route!(GET "/Consent", Relationship, "the consent decisions shown", crate::consents::search),
    route!(POST "/Consent", Relationship, "the decision recorded", crate::consents::record),
    route!(POST "/Consent/{id}/$withdraw", Relationship, "the decision withdrawn, with the reason", crate::consents::withdraw),
    route!(POST "/Flag", Relationship, "the flag raised, for its person", crate::flags::raise),
    route!(GET "/Flag", Relationship, "the flags shown", crate::flags::search),
    route!(POST "/Flag/{id}/$resolve", Relationship, "the flag resolved with the reason, or the attempt refused and by which rule", crate::flags::resolve),
    route!(GET "/Flag/$oversight-report", Oversight, "the report read, for each person in it", crate::flags::oversight),
    route!(GET "/AuditEvent", PrivacyOfficer, "the audit search, and whom it was about", crate::audit_routes::audit_events),
    route!(GET "/AuditEvent/{id}/$why", PrivacyOfficer, "which entry was asked about", crate::audit_routes::why),
    route!(GET "/Patient/{id}/$access-report", AccessReport, "the report read, by whom", crate::audit_routes::access_report),
    route!(GET "/Task", TaskOwner, "the notifications shown, for each child; or the review queue read", crate::inbox::search),
    route!(GET "/Task/{id}", TaskOwner, "the notification shown, for its child", crate::inbox::read),
    route!(POST "/Task/{id}/$acknowledge", TaskOwner, "the acknowledgement, by whom, for the child", crate::inbox::acknowledge),
    route!(POST "/Subscription", Subscriber, "the subscription made, by which client, for which organisation and endpoint", crate::subscriptions::create),
    route!(GET "/Subscription/{id}/$status", Subscriber, "the status read", crate::subscriptions::status),
    route!(GET "/Subscription/{id}/$events", Subscriber, "each notification sent again, for its child", crate::subscriptions::events),
    route!(GET "/$notification-report", Oversight, "the report read (counts per rule and team, no person)", crate::inbox::report),
    route!(POST "/Task/{id}/$complete", TaskOwner, "the action taken, by whom, for the child; or the review's outcome", crate::inbox::complete),
    route!(GET "/identity/reviews", IdentitySteward, "each pair shown, in the access report of each person", crate::identity_routes::reviews),
    route!(POST "/identity/reviews/{id}/$accept", IdentitySteward, "the link, with the reason, for both people", crate::identity_routes::review_accept),
    route!(POST "/identity/reviews/{id}/$reject", IdentitySteward, "the refusal, with the reason, for both people", crate::identity_routes::review_reject),
    route!(POST "/Person/{id}/$link", IdentitySteward, "the link, with the reason, for both people", crate::identity_routes::person_link),
    route!(POST "/Person/{id}/$unlink", IdentitySteward, "the split, with the reason, for both people", crate::identity_routes::person_unlink),
    route!(POST "/family-edges", IdentitySteward, "the edge, with the reason, for both people", crate::identity_routes::edge_assert),
    route!(POST "/family-edges/{id}/$retract", IdentitySteward, "the edge taken back, with the reason, for both people", crate::identity_routes::edge_retract),
    // The dashboard's pages: each one's data from the API routes above, with the signed-in
    // user's own token (`kinfold-dashboard`).
    route!(GET "/app", Open, "nothing (to the sign-in page or the worklist)", kinfold_dashboard::home),
    route!(GET "/app/", Open, "nothing (to the sign-in page or the worklist)", kinfold_dashboard::home),
    route!(GET "/app/sign-in", Open, "nothing (the demo's users: names, organisations, roles)", kinfold_dashboard::sign_in_page),
    route!(POST "/app/sign-in", Open, "nothing here; each API token the session is given, when it is issued", kinfold_dashboard::sign_in),
    route!(POST "/app/sign-out", Session, "nothing", kinfold_dashboard::sign_out),
    route!(GET "/app/worklist", Session, "what GET /Task records", kinfold_dashboard::worklist_page),
    route!(POST "/app/tasks/{id}/acknowledge", Session, "what POST /Task/{id}/$acknowledge records", kinfold_dashboard::acknowledge),
    route!(POST "/app/tasks/{id}/complete", Session, "what POST /Task/{id}/$complete records", kinfold_dashboard::complete),
    route!(GET "/app/child/{id}", Session, "what each API read on the page records (Patient/{id} and each family member's, $family, $chronology, $access-report; the chart is its own request)", kinfold_dashboard::child_page),
    route!(GET "/app/child/{id}/chart.svg", Session, "what GET /Patient/{id}/$growth-chart records", kinfold_dashboard::child_chart),
    route!(POST "/app/child/{id}/override", Session, "the same reads as the child page, with purpose override and the reason", kinfold_dashboard::child_override),
    route!(GET "/app/search", Session, "what GET /Patient records", kinfold_dashboard::search_page),
];

/// Registers every route of [`ROUTES`] (the only place the gateway's routes are registered).
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    for policy in ROUTES {
        // actix-web matches `{id}` segments the way OpenAPI writes them.
        match policy.body_limit {
            Some(limit) => {
                config.service(
                    web::resource(policy.path)
                        .app_data(web::PayloadConfig::new(limit))
                        .route((policy.route)()),
                );
            }
            None => {
                config.route(policy.path, (policy.route)());
            }
        }
    }
}

/// Documents each route's refusals from its policy, so that the OpenAPI document says what the
/// table says: `401` and `403` for who the caller is, `404` for what the records say (answered
/// exactly as not found), `429` for a source that keeps being refused, `503` when the ledger
/// cannot record. A route's own words for a status come first.
#[derive(Debug)]
pub(crate) struct PolicyResponses;

impl Modify for PolicyResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, ResponseBuilder};
        let outcome = |description: String| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/fhir+json",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().build()))
                            .build(),
                    )
                    .build(),
            )
        };
        for policy in ROUTES {
            let Some(item) = openapi.paths.paths.get_mut(policy.path) else {
                continue;
            };
            let operation = match policy.method {
                "GET" => item.get.as_mut(),
                _ => item.post.as_mut(),
            };
            let Some(operation) = operation else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            let own = |status: &str,
                       responses: &std::collections::BTreeMap<
                String,
                RefOr<utoipa::openapi::Response>,
            >| {
                match responses.get(status) {
                    Some(RefOr::T(response)) => {
                        format!("{}. ", response.description.trim_end_matches('.'))
                    }
                    _ => String::new(),
                }
            };
            responses.insert(
                "429".into(),
                outcome("Too many refused requests from this address (`too-many-refusals`, with Retry-After): every refusal is counted, by source, into the ledger".into()),
            );
            if !policy.access.discloses() {
                continue;
            }
            responses.insert(
                "401".into(),
                outcome("No bearer token, or one that is malformed, forged, expired, for another gateway, or names nobody or a role or purpose Kinfold does not know (`token-*`)".into()),
            );
            let for_whom = match policy.access {
                Access::PrivacyOfficer => {
                    "Not a privacy officer with an organisation (`role-not-permitted`)"
                }
                Access::IdentitySteward => {
                    "Not an identity steward with an organisation (`role-not-permitted`)"
                }
                Access::Oversight => {
                    "Neither a safeguarding professional nor a privacy officer with an organisation (`role-not-permitted`)"
                }
                Access::Subscriber => {
                    "Not a system client's token (`role-not-permitted`), or an organisation or endpoint the client is not registered for (`subscription-organisation`, `subscription-endpoint`)"
                }
                Access::TaskOwner => {
                    "The token lacks role, organisation or purpose of use (`who-and-why`); for an override review, not a privacy officer (`role-not-permitted`)"
                }
                Access::AccessReport => {
                    "Neither a privacy officer nor a token with role, organisation and purpose of use (`who-and-why`), or an override whose justification is too short (`override.justification-too-short`)"
                }
                _ => {
                    "The token lacks role, organisation or purpose of use (`who-and-why`), or an override's justification has fewer letters than the policy asks (`override.justification-too-short`)"
                }
            };
            let whole_trail = if policy.path == "/AuditEvent" {
                "; an organisation's officer searching without `patient` (`patient-required`: the whole trail is for the area's privacy officers)"
            } else {
                ""
            };
            let forbidden = format!(
                "{for_whom}{whole_trail}; or a system client's token without patient scopes (`insufficient-scope`), or its requester speaking for an organisation the client is not registered for (`requester-organisation`)"
            );
            responses.insert("403".into(), outcome(forbidden));
            let by_records = match policy.access {
                Access::Search => None,
                Access::Relationship | Access::AccessReport => Some(
                    "a caller with no legitimate relationship to the person in the records is answered exactly so (the refusal is recorded)",
                ),
                Access::PrivacyOfficer => Some(
                    "an officer whose organisation is not concerned is answered exactly so (the refusal is recorded)",
                ),
                Access::IdentitySteward => Some(
                    "a steward whose organisation holds none of the records concerned is answered exactly so (the refusal is recorded)",
                ),
                Access::TaskOwner => {
                    Some("a Task addressed to someone else is answered exactly so")
                }
                _ => None,
            };
            // A search answers a refusal as finding nothing; a read, as not found.
            if let Some(by_records) = by_records.filter(|_| policy.path.contains("{id}")) {
                let mut not_found = own("404", responses);
                if not_found.is_empty() {
                    not_found.push_str("Not found. ");
                }
                if !not_found.contains("answered exactly so") {
                    not_found.push_str(&format!("Also: {by_records}"));
                }
                responses.insert("404".into(), outcome(not_found));
            }
            responses.entry("503".into()).or_insert_with(|| {
                outcome(
                    "The ledger cannot record this, so nothing is answered (`ledger-unavailable`)"
                        .into(),
                )
            });
        }
    }
}

/// The gateway's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Kinfold gateway",
        description = "The one door to every agency's child-health records. FHIR R4 JSON; every error is an OperationOutcome; every data route needs a bearer JWT (a system client also sends a Kinfold-Requester JWT saying who is asking and why; see /.well-known/smart-configuration)."
    ),
    paths(
        crate::routes::metadata, crate::routes::health, crate::metrics_routes::scrape, crate::routes::patient_search, crate::routes::patient_read,
        crate::routes::patient_everything, crate::routes::group_everything, crate::routes::binary_read,
        crate::identity_routes::person_read, crate::identity_routes::family, crate::identity_routes::reviews,
        crate::identity_routes::review_accept, crate::identity_routes::review_reject,
        crate::identity_routes::person_link, crate::identity_routes::person_unlink,
        crate::identity_routes::edge_assert, crate::identity_routes::edge_retract,
        crate::inbox::search, crate::inbox::read, crate::inbox::acknowledge, crate::inbox::complete, crate::inbox::report, crate::subscriptions::create, crate::subscriptions::status, crate::subscriptions::events, crate::consents::record, crate::consents::search, crate::consents::withdraw, crate::audit_routes::why,
        crate::audit_routes::audit_events, crate::audit_routes::access_report,
        crate::growth::growth, crate::growth::growth_chart, crate::chronology::chronology, crate::events::receive,
        crate::flags::raise, crate::flags::search, crate::flags::resolve, crate::flags::oversight,
        crate::smart::token, crate::smart::smart_configuration,
        kinfold_audit::http::get_sth, kinfold_audit::http::get_sth_consistency,
        kinfold_audit::http::get_proof_by_hash, kinfold_audit::http::get_entries,
        kinfold_audit::http::public_key
    ),
    modifiers(&BearerAuth, &PolicyResponses)
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_is_declared_once() {
        let mut seen = BTreeSet::new();
        for policy in ROUTES {
            assert!(
                seen.insert((policy.method, policy.path)),
                "{} {} is declared twice",
                policy.method,
                policy.path
            );
            assert!(!policy.records.is_empty());
        }
    }

    #[test]
    fn only_guarded_routes_may_disclose() {
        for policy in ROUTES {
            let open = policy.path == "/metadata"
                || policy.path == "/health"
                || policy.path == "/metrics"
                || policy.path.starts_with("/ledger/v1/")
                || policy.path.starts_with("/.well-known/")
                || policy.path == "/auth/token"
                || policy.path == "/events"
                || policy.path.starts_with("/app");
            assert_eq!(
                policy.access.discloses(),
                !open,
                "{} {}",
                policy.method,
                policy.path
            );
        }
    }
}
