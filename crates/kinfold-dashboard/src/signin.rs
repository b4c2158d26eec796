//! Signing in and out. The demo lists its users, each with their organisation and role; a
//! deployment puts an OpenID Connect provider in front of the same session (`ARCHITECTURE.md`).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

use crate::app::{Dashboard, html, problem, see_other};
use crate::layout::{page, role_words};
use crate::session::{COOKIE, SIGN_IN_COOKIE, random_reference, same_secret};

fn cookie(name: &str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name.to_owned(), value)
        .path("/app/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

fn removed(name: &str, secure: bool) -> Cookie<'static> {
    let mut gone = cookie(name, String::new(), secure);
    gone.make_removal();
    gone
}

/// `GET /app/`: the worklist when signed in, else the sign-in page.
pub async fn home(dashboard: web::Data<Dashboard>, request: HttpRequest) -> HttpResponse {
    match dashboard.signed_in(&request) {
        Some(_) => see_other("/app/worklist"),
        None => see_other("/app/sign-in"),
    }
}

/// `GET /app/sign-in`: who may sign in.
pub async fn sign_in_page(dashboard: web::Data<Dashboard>) -> HttpResponse {
    let Ok(token) = random_reference() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Sign in",
            "The sign-in page cannot be made just now.",
        );
    };
    let body = html! {
        @if dashboard.users.is_empty() {
            div class="banner warn" role="alert" {
                p { "No sign-in is set up for this Kinfold. Ask your administrator." }
            }
        } @else {
            div class="banner" {
                p { "Demonstration: choose who you are. Every page you open is recorded in the audit ledger under this name, as any other access is." }
            }
            form method="post" action="/app/sign-in" {
                input type="hidden" name="csrf" value=(token);
                ul class="users" aria-label="Demonstration users" {
                    @for user in &dashboard.users {
                        li {
                            button type="submit" name="user" value=(user.key) {
                                strong { (user.name) }
                                (role_words(&user.role)) br;
                                @if user.organisation_name.is_empty() {
                                    (user.organisation)
                                } @else {
                                    (user.organisation_name) " (" (user.organisation) ")"
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut response = html(StatusCode::OK, page("Sign in", None, body));
    let _ = response.add_cookie(&cookie(SIGN_IN_COOKIE, token, dashboard.secure_cookies));
    response
}

/// `POST /app/sign-in`: starts a session for the chosen user.
pub async fn sign_in(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let fields: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let expected = request
        .cookie(SIGN_IN_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let given = fields.get("csrf").map(String::as_str).unwrap_or("");
    if expected.is_empty() || !same_secret(given, &expected) {
        return problem(
            StatusCode::FORBIDDEN,
            None,
            "Sign in",
            "This sign-in form did not come from this browser's sign-in page. Open the sign-in page again.",
        );
    }
    let chosen = fields.get("user").map(String::as_str).unwrap_or("");
    let Some(user) = dashboard.users.iter().find(|u| u.key == chosen) else {
        return problem(
            StatusCode::BAD_REQUEST,
            None,
            "Sign in",
            "Choose one of the users listed on the sign-in page.",
        );
    };
    let Ok(reference) = dashboard.sessions.start(user.clone()) else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Sign in",
            "A session cannot be started just now.",
        );
    };
    tracing::info!(subject = %user.subject, "dashboard: signed in");
    let mut response = see_other("/app/worklist");
    let _ = response.add_cookie(&cookie(COOKIE, reference, dashboard.secure_cookies));
    let _ = response.add_removal_cookie(&removed(SIGN_IN_COOKIE, dashboard.secure_cookies));
    response
}

/// `POST /app/sign-out`: ends the session.
pub async fn sign_out(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Some((reference, session)) = dashboard.signed_in(&request) else {
        return see_other("/app/sign-in");
    };
    if let Err(refused) = crate::app::form_of(&session, &body) {
        return *refused;
    }
    dashboard.sessions.end(&reference);
    let mut response = see_other("/app/sign-in");
    let _ = response.add_removal_cookie(&removed(COOKIE, dashboard.secure_cookies));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_strict_for_app_and_secure_over_tls() {
        let over_tls = cookie(COOKIE, "reference".into(), true).to_string();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/app/", "Secure"] {
            assert!(over_tls.contains(attribute), "{over_tls}");
        }
        let plain = cookie(COOKIE, "reference".into(), false).to_string();
        assert!(!plain.contains("Secure"), "{plain}");
        let gone = removed(COOKIE, true).to_string();
        assert!(gone.contains("Max-Age=0"), "{gone}");
    }
}
