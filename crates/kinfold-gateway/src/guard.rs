//! Who a guarded route is for, beyond a token: the roles of the audit and identity routes, and
//! the organisations concerned with a person (the area's, and each agency's holding one of
//! their records). The route table ([`crate::policy`]) says which route needs which.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use kinfold_consent::Role;
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::GatewayState;

/// The refusal of a caller whose role the route is not for.
fn wrong_role(route_is_for: &str) -> GatewayError {
    GatewayError::Refused(ApiError::refused(
        StatusCode::FORBIDDEN,
        IssueType::Forbidden,
        "role-not-permitted",
        format!(
            "This route is for {route_is_for}; the token's role and organisation (ODS code) say who you are."
        ),
    ))
}

/// The caller's organisation, if their token names `role` and an organisation; otherwise a
/// refusal by who they are.
fn organisation_in_role(
    caller: &Caller,
    role: Role,
    route_is_for: &str,
) -> Result<String, GatewayError> {
    let in_role = caller.role.as_deref().and_then(|r| r.parse::<Role>().ok()) == Some(role);
    match (&caller.organisation, in_role) {
        (Some(org), true) => Ok(org.to_string()),
        _ => Err(wrong_role(route_is_for)),
    }
}

/// A privacy officer's organisation (`Access::PrivacyOfficer`), or `403`.
pub(crate) fn privacy_officer(caller: &Caller) -> Result<String, GatewayError> {
    organisation_in_role(
        caller,
        Role::PrivacyOfficer,
        "privacy officers (role privacy-officer) of an organisation whose records are concerned",
    )
}

/// An identity steward's organisation (`Access::IdentitySteward`), or `403`.
pub(crate) fn identity_steward(caller: &Caller) -> Result<String, GatewayError> {
    organisation_in_role(
        caller,
        Role::IdentitySteward,
        "identity stewards (role identity-steward) of an organisation that holds one of the records concerned",
    )
}

impl GatewayState {
    /// The organisations concerned with these people: the area's, and the organisation of
    /// every agency holding one of their records (as the record locator knows them).
    pub(crate) async fn organisations_concerned(
        &self,
        people: &[kinfold_identity::PersonId],
    ) -> Result<BTreeSet<String>, GatewayError> {
        let agencies: Vec<kinfold_fhir::Agency> = self
            .identities
            .read(&self.store, &self.ledger, |inner| {
                people
                    .iter()
                    .filter_map(|p| inner.current(p))
                    .flat_map(|p| inner.locate(&p))
                    .map(|key| key.agency)
                    .collect()
            })
            .await?;
        let mut organisations: BTreeSet<String> = agencies
            .into_iter()
            .map(|agency| self.disclosure.owner_of(agency))
            .collect();
        organisations.insert(self.disclosure.area.clone());
        Ok(organisations)
    }

    /// Whether `organisation` is concerned with any of these people.
    pub(crate) async fn is_concerned(
        &self,
        organisation: &str,
        people: &[kinfold_identity::PersonId],
    ) -> Result<bool, GatewayError> {
        if organisation == self.disclosure.area {
            return Ok(true);
        }
        Ok(self
            .organisations_concerned(people)
            .await?
            .contains(organisation))
    }
}
