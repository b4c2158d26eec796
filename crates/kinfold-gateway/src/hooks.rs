//! The HTTP clients that post to subscribers' endpoints (`crate::subscriptions`).

use std::time::Duration;

use serde_json::Value;

/// The HTTP clients that post to subscribers: no redirects, a deadline; for a client whose
/// endpoints take only mutual TLS, its own, presenting the certificate registered for it.
#[derive(Debug)]
pub(crate) struct Hooks {
    http: reqwest::Client,
    mutual: std::collections::HashMap<String, reqwest::Client>,
}

fn hook_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
}

impl Hooks {
    /// `mutual`: each client whose endpoints take only mutual TLS, with its certificate.
    pub(crate) fn new<'a>(
        mutual_tls: impl IntoIterator<Item = (&'a str, &'a kinfold_http::tls::ClientTls)>,
    ) -> Result<Self, crate::error::StartError> {
        let mut mutual = std::collections::HashMap::new();
        for (client, tls) in mutual_tls {
            let built = kinfold_http::tls::client(tls, hook_client())?.build()?;
            mutual.insert(client.to_owned(), built);
        }
        Ok(Self {
            http: hook_client().build()?,
            mutual,
        })
    }

    pub(crate) async fn post(&self, client: &str, endpoint: &str, bundle: &Value) -> bool {
        match self
            .mutual
            .get(client)
            .unwrap_or(&self.http)
            .post(endpoint)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await
        {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }
}
