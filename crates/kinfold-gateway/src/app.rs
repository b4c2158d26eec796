//! The liaison dashboard (`kinfold-dashboard`), mounted under `/app/`: its token issuer, which
//! signs each signed-in user's short-lived API tokens with the gateway's own key and records
//! each token issued in the ledger first (no ledger, no token, no page).

use std::sync::Arc;
use std::time::Duration;

use kinfold_dashboard::{Dashboard, DashboardConfig, Minting, Purpose, Tokens, User};

use crate::auth::{AuthConfig, TokenFor, issue_token_for};
use kinfold_audit::Ledger;

/// Who signs the dashboard's tokens, in the ledger.
pub(crate) const ISSUER: &str = "kinfold-dashboard";

struct GatewayTokens {
    auth: AuthConfig,
    ledger: Ledger,
}

impl Tokens for GatewayTokens {
    fn mint(&self, user: &User, purpose: &Purpose, valid_for: Duration) -> Minting {
        let token = issue_token_for(
            &self.auth,
            &TokenFor {
                subject: &user.subject,
                name: Some(&user.name),
                org: Some(&user.organisation),
                role: Some(&user.role),
                purpose: Some(purpose.code()),
                justification: purpose.justification(),
            },
            valid_for.as_secs(),
        )
        .map_err(|e| e.to_string());
        let record = crate::audit::token_issued(
            ISSUER,
            None,
            &user.subject,
            Some(&user.organisation),
            Some(&user.role),
        );
        let ledger = self.ledger.clone();
        Box::pin(async move {
            let token = token?;
            ledger
                .record(vec![record])
                .await
                .map_err(|e| format!("the ledger could not record the token issued: {e}"))?;
            Ok(token)
        })
    }
}

/// The dashboard for this gateway: `api_url` is where it calls the API.
pub(crate) fn dashboard(
    config: &DashboardConfig,
    auth: &AuthConfig,
    ledger: &Ledger,
    api_url: String,
    secure_cookies: bool,
    internal_key: String,
) -> Result<Dashboard, kinfold_dashboard::DashboardError> {
    Dashboard::new(
        config,
        api_url,
        Arc::new(GatewayTokens {
            auth: auth.clone(),
            ledger: ledger.clone(),
        }),
        secure_cookies,
        internal_key,
    )
}
