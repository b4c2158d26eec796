//! The dashboard's only way to data: the gateway's own API, over HTTP, with a token that says
//! who is signed in and why. Every answer a page shows went through the disclosure pipeline and
//! left its entry in the ledger, exactly as it would for any other client; this crate holds no
//! store and no ledger.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::session::User;

/// Why a signed-in user is asking (the token's purpose of use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Caring for the child.
    DirectCare,
    /// Safeguarding the child.
    Safeguarding,
    /// Overriding a refusal, with the reason (reviewed by the privacy officers).
    Override(String),
}

impl Purpose {
    /// The claim's value.
    pub fn code(&self) -> &'static str {
        match self {
            Purpose::DirectCare => "direct-care",
            Purpose::Safeguarding => "safeguarding",
            Purpose::Override(_) => "override",
        }
    }

    /// A purpose a page may be asked for (an override has its own form).
    pub(crate) fn chosen(code: Option<&str>) -> Purpose {
        match code {
            Some("safeguarding") => Purpose::Safeguarding,
            _ => Purpose::DirectCare,
        }
    }

    /// The justification of an override.
    pub fn justification(&self) -> Option<&str> {
        match self {
            Purpose::Override(why) => Some(why),
            _ => None,
        }
    }
}

/// A future of a minted token.
pub type Minting = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Mints the short-lived API tokens of signed-in users: the gateway's own issuer, which
/// records each token issued in the ledger. An OpenID Connect deployment keeps this: the
/// provider tells who signed in; the token for each purpose is still minted here.
pub trait Tokens: Send + Sync {
    /// A token for `user` and `purpose`, valid for `valid_for`.
    fn mint(&self, user: &User, purpose: &Purpose, valid_for: Duration) -> Minting;
}

/// An answer from the API.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `2xx` with a JSON body.
    Json(Value),
    /// `2xx` with another body (an SVG chart).
    Text(String),
    /// Not found: an unknown id and one the caller has no relationship with alike.
    NotFound,
    /// Refused for who the caller is (`401`, `403`): the role cannot use this.
    Forbidden,
    /// Another refusal, with the API's own words (`OperationOutcome` diagnostics).
    Refused(u16, String),
}

impl Answer {
    pub(crate) fn json(&self) -> Option<&Value> {
        match self {
            Answer::Json(value) => Some(value),
            _ => None,
        }
    }
}

/// Who a call is for: the signed-in user's token, and their browser's address (refusals are
/// counted against it, as if the browser had called the API itself).
#[derive(Debug)]
pub(crate) struct Who {
    pub(crate) token: String,
    pub(crate) from: Option<std::net::IpAddr>,
}

/// The API client.
#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
    pub(crate) tokens: Arc<dyn Tokens>,
    /// The key proving to the gateway that a call comes from inside its process.
    internal_key: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish()
    }
}

/// The words of an `OperationOutcome`.
fn outcome_words(body: &Value) -> String {
    body["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|issue| issue["diagnostics"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Api {
    pub(crate) fn new(
        base: String,
        tokens: Arc<dyn Tokens>,
        root: Option<reqwest::Certificate>,
        internal_key: String,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(root) = root {
            builder = builder.tls_certs_merge([root]);
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: builder.build()?,
            tokens,
            internal_key,
        })
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let text = response.text().await.unwrap_or_default();
        match status {
            200..=299 if is_json => serde_json::from_str(&text)
                .map(Answer::Json)
                .unwrap_or_else(|_| Answer::Refused(502, "The API's answer was not JSON.".into())),
            200..=299 => Answer::Text(text),
            404 => Answer::NotFound,
            401 | 403 => Answer::Forbidden,
            _ => {
                let words = serde_json::from_str::<Value>(&text)
                    .map(|v| outcome_words(&v))
                    .unwrap_or_default();
                Answer::Refused(status, words)
            }
        }
    }

    fn unavailable(error: &reqwest::Error) -> Answer {
        tracing::warn!(error = %error, "dashboard: the API did not answer");
        Answer::Refused(503, "The gateway did not answer.".into())
    }

    fn request(&self, request: reqwest::RequestBuilder, who: &Who) -> reqwest::RequestBuilder {
        let request = request
            .bearer_auth(&who.token)
            .header(kinfold_http::INTERNAL_KEY, &self.internal_key);
        match who.from {
            Some(address) => request.header(kinfold_http::ON_BEHALF_OF, address.to_string()),
            None => request,
        }
    }

    /// `GET path` (with its query) as this token's holder.
    pub(crate) async fn get(&self, who: &Who, path_and_query: &str) -> Answer {
        match self
            .request(self.http.get(format!("{}{path_and_query}", self.base)), who)
            .send()
            .await
        {
            Ok(response) => Self::answer(response).await,
            Err(error) => Self::unavailable(&error),
        }
    }

    /// `POST path` with a JSON body as this token's holder.
    pub(crate) async fn post(&self, who: &Who, path: &str, body: &Value) -> Answer {
        match self
            .request(self.http.post(format!("{}{path}", self.base)), who)
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
        {
            Ok(response) => Self::answer(response).await,
            Err(error) => Self::unavailable(&error),
        }
    }
}

/// Percent-encodes one query value.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
