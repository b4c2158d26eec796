//! SMART Backend Services and hostile tokens, end to end: a registered system client gets an
//! access token with a signed assertion (ES384 and RS384) and reads with a requester JWT;
//! every malformed or hostile assertion, requester and bearer token is refused with 401.

mod common;

use common::TestDemo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const RSA_KEY: &str = include_str!("../fixtures/smart/rsa-test-client-key.pem");
const RSA_JWKS: &str = include_str!("../fixtures/smart/rsa-test-client.jwks.json");
const RSA_CLIENT: &str = "rsa-test-client";

async fn demo() -> TestDemo {
    TestDemo::start_with(1, |o| {
        o.smart_clients.push(kinfold_gateway::smart::SmartClient {
            client_id: RSA_CLIENT.into(),
            jwks: serde_json::from_str(RSA_JWKS).expect("jwks"),
            scopes: vec!["system/Patient.rs".into()],
            organisations: vec!["Q99".into()],
            endpoints: Vec::new(),
            endpoint_tls: None,
        });
    })
    .await
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signed")
}

/// The demo client's key.
fn ec_key(t: &TestDemo) -> EncodingKey {
    let pem = std::fs::read(&t.demo.info.smart_client.private_key).expect("the client's key");
    EncodingKey::from_ec_pem(&pem).expect("an EC key")
}

fn assertion_claims(t: &TestDemo, client: &str) -> Value {
    let now = now();
    json!({"iss": client, "sub": client, "aud": t.demo.info.smart_client.token_endpoint,
        "exp": now + 240, "iat": now, "jti": uuid::Uuid::new_v4().to_string()})
}

fn assertion(t: &TestDemo) -> String {
    sign(
        Algorithm::ES384,
        Some(&t.demo.info.smart_client.kid),
        &assertion_claims(t, &t.demo.info.smart_client.client_id),
        &ec_key(t),
    )
}

async fn ask_token(t: &TestDemo, assertion: &str, scope: &str) -> (u16, Value) {
    let response = t
        .http
        .post(&t.demo.info.smart_client.token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", scope)
                .append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", assertion)
                .finish(),
        )
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn requester_claims(client: &str, org: &str) -> Value {
    let now = now();
    json!({"iss": client, "aud": "kinfold-gateway", "iat": now, "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": "dr-ehr-user", "name": "Dr Test", "role": "safeguarding-professional",
        "org": org, "purpose": "safeguarding"})
}

async fn everything(t: &TestDemo, token: &str, requester: Option<&str>) -> (u16, Value) {
    let mut request = t
        .http
        .get(t.gateway(&format!(
            "/Patient/{}/$everything",
            t.demo.info.example_patient.id
        )))
        .bearer_auth(token);
    if let Some(requester) = requester {
        request = request.header("Kinfold-Requester", requester);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn code(outcome: &Value) -> &str {
    outcome["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_registered_client_reads_with_its_token_and_a_requester() {
    let t = demo().await;
    let (status, config) = common::get_json(
        &t.http,
        &t.gateway("/.well-known/smart-configuration"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        config["token_endpoint"],
        t.demo.info.smart_client.token_endpoint
    );
    assert!(
        config["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("ES384")) && a.contains(&json!("RS384")))
    );

    // ES384 (the demo client).
    let (status, answer) = ask_token(&t, &assertion(&t), "system/Patient.rs").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["scope"], "system/Patient.rs");
    assert!(answer["expires_in"].as_u64().is_some_and(|s| s <= 300));
    let token = answer["access_token"].as_str().expect("token").to_owned();
    let requester = sign(
        Algorithm::ES384,
        Some(&t.demo.info.smart_client.kid),
        &requester_claims(&t.demo.info.smart_client.client_id, "Q99"),
        &ec_key(&t),
    );
    let (status, bundle) = everything(&t, &token, Some(&requester)).await;
    assert_eq!(status, 200, "{bundle}");
    assert!(bundle["total"].as_u64().is_some_and(|n| n > 0), "{bundle}");
    // A requester is good for one request: the same token and requester again read nothing.
    let (status, outcome) = everything(&t, &token, Some(&requester)).await;
    assert_eq!(
        (status, code(&outcome)),
        (401, "requester-replayed"),
        "{outcome}"
    );
    // Nor does a requester without a jti.
    let mut claims = requester_claims(&t.demo.info.smart_client.client_id, "Q99");
    claims.as_object_mut().expect("claims").remove("jti");
    let no_jti = sign(
        Algorithm::ES384,
        Some(&t.demo.info.smart_client.kid),
        &claims,
        &ec_key(&t),
    );
    let (status, outcome) = everything(&t, &token, Some(&no_jti)).await;
    assert_eq!(
        (status, code(&outcome)),
        (401, "requester-invalid"),
        "{outcome}"
    );

    // The access is recorded as the practitioner, through the client.
    let (status, report) = common::get_json(
        &t.http,
        &t.gateway(&format!(
            "/AuditEvent?patient={}&_count=50",
            t.demo.info.example_patient.id
        )),
        Some(&t.officer_token()),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report
            .to_string()
            .contains("dr-ehr-user (through demo-ehr)"),
        "{report}"
    );

    // RS384 (a client registered with an RSA key).
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).expect("rsa key");
    let claims = assertion_claims(&t, RSA_CLIENT);
    let (status, answer) = ask_token(
        &t,
        &sign(Algorithm::RS384, Some("rsa-test-1"), &claims, &rsa),
        "system/Patient.rs",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().expect("token").to_owned();
    let requester = sign(
        Algorithm::RS384,
        Some("rsa-test-1"),
        &requester_claims(RSA_CLIENT, "Q99"),
        &rsa,
    );
    let (status, bundle) = everything(&t, &token, Some(&requester)).await;
    assert_eq!(status, 200, "{bundle}");
    t.demo.shutdown().await;
}

#[tokio::test]
async fn every_hostile_assertion_is_refused() {
    let t = demo().await;
    let client = t.demo.info.smart_client.client_id.clone();
    let kid = t.demo.info.smart_client.kid.clone();
    let key = ec_key(&t);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = assertion_claims(&t, &client);
        change(&mut claims);
        sign(Algorithm::ES384, Some(&kid), &claims, &key)
    };
    // The client's public key, as an attacker who read the JWKS would use it for HS256.
    let jwks = std::fs::read_to_string(t.pki.dir.join("smart-client.jwks.json")).expect("jwks");
    let public = kinfold::pki::DemoPki::create(&t.pki.dir)
        .and_then(|p| p.smart_client())
        .map(|(path, _)| {
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(path).expect("key"))
                .expect("key")
                .public_key_pem()
        })
        .expect("public key");
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&assertion_claims(&t, &client))
    );
    let replayed = assertion(&t);
    let (status, _) = ask_token(&t, &replayed, "system/Patient.rs").await;
    assert_eq!(status, 200, "the first use is accepted");
    let now = now();
    let hostile: Vec<(&str, String)> = vec![
        ("alg none", unsigned),
        (
            "HS256 signed with the public key (key confusion)",
            sign(
                Algorithm::HS256,
                Some(&kid),
                &assertion_claims(&t, &client),
                &EncodingKey::from_secret(public.as_bytes()),
            ),
        ),
        (
            "HS256 signed with the JWKS text",
            sign(
                Algorithm::HS256,
                Some(&kid),
                &assertion_claims(&t, &client),
                &EncodingKey::from_secret(jwks.as_bytes()),
            ),
        ),
        (
            "wrong aud",
            with(&|c| c["aud"] = json!("https://elsewhere.example/token")),
        ),
        ("wrong iss", with(&|c| c["iss"] = json!("another-client"))),
        (
            "sub not the client",
            with(&|c| c["sub"] = json!("someone-else")),
        ),
        (
            "expired",
            with(&|c| {
                c["exp"] = json!(now - 600);
                c["iat"] = json!(now - 900);
            }),
        ),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 200))),
        ("exp too far ahead", with(&|c| c["exp"] = json!(now + 3600))),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().expect("claims").remove("jti");
            }),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().expect("claims").remove("exp");
            }),
        ),
        ("replayed jti", replayed),
        (
            "unknown client",
            sign(
                Algorithm::ES384,
                Some(&kid),
                &assertion_claims(&t, "nobody-registered"),
                &key,
            ),
        ),
        (
            "unknown key",
            sign(
                Algorithm::ES384,
                Some("not-a-registered-kid"),
                &assertion_claims(&t, &client),
                &key,
            ),
        ),
        (
            "the client's key id, another key",
            sign(
                Algorithm::RS384,
                Some(&kid),
                &assertion_claims(&t, &client),
                &EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).expect("rsa"),
            ),
        ),
        (
            "oversized",
            with(&|c| c["padding"] = json!("x".repeat(5_000))),
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (what, jwt) in hostile {
        let (status, answer) = ask_token(&t, &jwt, "system/Patient.rs").await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"], "invalid_client", "{what}: {answer}");
        assert!(answer.get("access_token").is_none(), "{what}");
        if what == "wrong aud" {
            // The refusal says which audience is expected: the token endpoint's URL.
            assert!(
                answer["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&t.demo.info.smart_client.token_endpoint)),
                "{answer}"
            );
        }
    }
    // A scope the client is not registered for is no token either.
    let (status, answer) = ask_token(&t, &assertion(&t), "system/Patient.cruds").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    t.demo.shutdown().await;
}

#[tokio::test]
async fn every_hostile_bearer_token_gets_401_and_an_operation_outcome() {
    let t = demo().await;
    let (_, answer) = ask_token(&t, &assertion(&t), "system/Patient.rs").await;
    let system_token = answer["access_token"].as_str().expect("token").to_owned();
    let client = t.demo.info.smart_client.client_id.clone();
    let kid = t.demo.info.smart_client.kid.clone();
    let key = ec_key(&t);
    let secret = std::fs::read_to_string(t.dir.path().join("demo-token-secret")).expect("secret");
    let gateway_key = EncodingKey::from_secret(secret.trim().as_bytes());
    let now = now();
    let person = |extra: Value| {
        let mut claims = json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x",
            "iat": now, "exp": now + 600, "org": "Q99", "role": "safeguarding-professional",
            "purpose": "safeguarding"});
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                claims.as_object_mut().expect("claims").remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        sign(Algorithm::HS256, Some("demo"), &claims, &gateway_key)
    };
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let public = std::fs::read_to_string(t.pki.dir.join("smart-client.jwks.json")).expect("jwks");
    let hostile: Vec<(&str, String, Option<String>)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": "demo"})),
                b64(
                    &json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "exp": now + 600})
                )
            ),
            None,
        ),
        (
            "HS256 signed with a client's public key (key confusion)",
            sign(
                Algorithm::HS256,
                Some(&kid),
                &json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "exp": now + 600}),
                &EncodingKey::from_secret(public.as_bytes()),
            ),
            None,
        ),
        (
            "ES384 signed by a client, as if it were an access token",
            sign(
                Algorithm::ES384,
                Some(&kid),
                &json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "exp": now + 600}),
                &key,
            ),
            None,
        ),
        ("wrong iss", person(json!({"iss": "someone-else"})), None),
        ("wrong aud", person(json!({"aud": "another-service"})), None),
        (
            "expired",
            person(json!({"iat": now - 7200, "exp": now - 3600})),
            None,
        ),
        ("not yet valid", person(json!({"nbf": now + 3600})), None),
        ("no sub", person(json!({"sub": null})), None),
        (
            "unknown key",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("another-kid".into());
                jsonwebtoken::encode(&header, &json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "exp": now + 600}), &gateway_key).expect("signed")
            },
            None,
        ),
        (
            "oversized",
            person(json!({"padding": "x".repeat(5_000)})),
            None,
        ),
        (
            "a system token without a requester",
            system_token.clone(),
            None,
        ),
        (
            "a system token with an unsigned requester",
            system_token.clone(),
            Some(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": kid})),
                b64(&requester_claims(&client, "Q99"))
            )),
        ),
        (
            "a system token with an expired requester",
            system_token.clone(),
            Some(sign(
                Algorithm::ES384,
                Some(&kid),
                &{
                    let mut c = requester_claims(&client, "Q99");
                    c["exp"] = json!(now - 600);
                    c["iat"] = json!(now - 700);
                    c
                },
                &key,
            )),
        ),
        (
            "a system token with another client's requester",
            system_token.clone(),
            Some(sign(
                Algorithm::RS384,
                Some("rsa-test-1"),
                &requester_claims(RSA_CLIENT, "Q99"),
                &EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).expect("rsa"),
            )),
        ),
        (
            "a system token with a requester missing its purpose",
            system_token.clone(),
            Some(sign(
                Algorithm::ES384,
                Some(&kid),
                &{
                    let mut c = requester_claims(&client, "Q99");
                    c.as_object_mut().expect("claims").remove("purpose");
                    c
                },
                &key,
            )),
        ),
    ];
    for (what, token, requester) in hostile {
        let (status, outcome) = everything(&t, &token, requester.as_deref()).await;
        assert_eq!(status, 401, "{what}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{what}");
        assert!(outcome["entry"].is_null(), "{what}: no data");
    }

    // A token too large for any header is refused before it is read (431), still with an
    // OperationOutcome and no data.
    let (status, outcome) =
        everything(&t, &person(json!({"padding": "x".repeat(10_000)})), None).await;
    assert_eq!(
        (status, outcome["resourceType"].as_str()),
        (431, Some("OperationOutcome"))
    );

    // A requester speaking for an organisation the client is not registered for: 403.
    let requester = sign(
        Algorithm::ES384,
        Some(&kid),
        &requester_claims(&client, "B99999"),
        &key,
    );
    let (status, outcome) = everything(&t, &system_token, Some(&requester)).await;
    assert_eq!((status, code(&outcome)), (403, "requester-organisation"));
    t.demo.shutdown().await;
}
