//! Finding a child: by NHS number, or by name and date of birth, showing every candidate the
//! person index offers with its score (never silently the first). A child the signed-in user
//! has no relationship with is not among them, and nothing says so: a miss is a miss.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{Answer, Purpose, encode};
use crate::app::{Dashboard, html, problem, require};
use crate::child::{name_of, nhs_number_of};
use crate::layout::{page, purpose_field};

/// The search form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    nhs: Option<String>,
    name: Option<String>,
    birthdate: Option<String>,
    purpose: Option<String>,
}

/// An NHS number as typed (spaces and dashes allowed), as ten digits.
fn digits(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// `GET /app/search`.
pub async fn search_page(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    query: web::Query<SearchQuery>,
) -> HttpResponse {
    let (reference, session) = match require(&dashboard, &request) {
        Ok(signed_in) => signed_in,
        Err(to_sign_in) => return *to_sign_in,
    };
    let nhs = query.nhs.as_deref().map(str::trim).unwrap_or("");
    let name = query.name.as_deref().map(str::trim).unwrap_or("");
    let birthdate = query.birthdate.as_deref().map(str::trim).unwrap_or("");
    let purpose = Purpose::chosen(query.purpose.as_deref());
    let mut error = None;
    let path = if !nhs.is_empty() {
        match digits(nhs) {
            Some(number) => Some(format!(
                "/Patient?identifier={}",
                encode(&format!("https://fhir.nhs.uk/Id/nhs-number|{number}"))
            )),
            None => {
                error = Some("An NHS number has ten digits.");
                None
            }
        }
    } else if !name.is_empty() || !birthdate.is_empty() {
        if name.is_empty() || birthdate.is_empty() {
            error = Some("Give both the name and the date of birth.");
            None
        } else {
            Some(format!(
                "/Patient?name={}&birthdate={}",
                encode(name),
                encode(birthdate)
            ))
        }
    } else {
        None
    };
    let mut found: Option<Vec<Value>> = None;
    if let Some(path) = path {
        let token = match dashboard
            .token(&request, &reference, &session, &purpose)
            .await
        {
            Ok(token) => token,
            Err(refused) => return *refused,
        };
        match dashboard.api.get(&token, &path).await {
            Answer::Json(bundle) => {
                found = Some(
                    bundle["entry"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|e| e["resource"]["resourceType"] == "Patient")
                        .cloned()
                        .collect(),
                );
            }
            Answer::NotFound => found = Some(Vec::new()),
            Answer::Refused(400, words) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    Some(&session),
                    "Find a child",
                    &words,
                );
            }
            Answer::Refused(status, words) => {
                return problem(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    Some(&session),
                    "Find a child",
                    &format!("The search could not be made: {words}"),
                );
            }
            _ => found = Some(Vec::new()),
        }
    }
    let chosen = purpose.code();
    let body = html! {
        form method="get" action="/app/search" class="panel" {
            h2 { "By NHS number" }
            div class="inline" {
                div {
                    label for="nhs" { "NHS number" }
                    input type="text" id="nhs" name="nhs" inputmode="numeric" autocomplete="off" value=(nhs);
                }
            }
            h2 { "Or by name and date of birth" }
            div class="inline" {
                div {
                    label for="name" { "Name (given and family)" }
                    input type="text" id="name" name="name" autocomplete="off" value=(name);
                }
                div {
                    label for="birthdate" { "Date of birth" }
                    input type="date" id="birthdate" name="birthdate" value=(birthdate);
                }
            }
            (purpose_field("search-purpose", chosen))
            p { button class="primary" type="submit" { "Search" } }
        }
        @if let Some(error) = error {
            div class="banner warn" role="alert" { p { (error) } }
        }
        @if let Some(found) = &found {
            section aria-labelledby="results" {
                h2 id="results" { "Results" }
                @if found.is_empty() {
                    p { "No child found." }
                } @else {
                    p { (found.len()) " found: check each against what you know before opening one." }
                    table {
                        caption class="visually-hidden" { "People found" }
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Born" } th scope="col" { "NHS number" } th scope="col" { "Match score" } } }
                        tbody {
                            @for entry in found {
                                @let patient = &entry["resource"];
                                @let id = patient["id"].as_str().unwrap_or("");
                                tr {
                                    td { a href=(format!("/app/child/{}?purpose={chosen}", encode(id))) { (name_of(patient)) } }
                                    td { (patient["birthDate"].as_str().unwrap_or("")) }
                                    td { (nhs_number_of(patient).unwrap_or_else(|| "not known".into())) }
                                    td {
                                        @match entry["search"]["score"].as_f64() {
                                            Some(score) => (format!("{score:.2}")),
                                            None => "exact (NHS number)",
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, page("Find a child", Some(&session), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_are_read_as_typed() {
        assert_eq!(digits("999 900 0010").as_deref(), Some("9999000010"));
        assert_eq!(digits("999-900-0010").as_deref(), Some("9999000010"));
        assert_eq!(digits("99990001"), None);
        assert_eq!(digits("99990001x0"), None);
    }
}
