//! FHIR Subscriptions end to end (issue 27): a real subscriber (a small HTTP server written
//! here, not Kinfold's code) registered for the area's notifications. It answers the
//! handshake, receives each notification numbered, notices a number it never got (it answered
//! one delivery but lost it), and recovers it with `$events`; while it is down for an hour of
//! the gateway's clock the events wait, and when it returns they arrive in order; with nothing
//! to send it gets heartbeats. People's tokens, unregistered endpoints and organisations are
//! refused. Two gateways on one PostgreSQL database post each event once.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::Utc;
use common::TestDemo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kinfold_time::ManualClock;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RSA_KEY: &str = include_str!("../fixtures/smart/rsa-test-client-key.pem");
const RSA_JWKS: &str = include_str!("../fixtures/smart/rsa-test-client.jwks.json");
const CLIENT: &str = "rsa-test-client";
const TOPIC: &str = "https://kinfold.example/fhir/SubscriptionTopic/notification";

/// The subscriber: what it was sent, whether it is down, and the one event it will lose.
#[derive(Default)]
struct Subscriber {
    received: Mutex<Vec<Value>>,
    down: AtomicBool,
    refused_while_down: AtomicUsize,
    lose: Mutex<Option<i64>>,
}

/// Starts a subscriber on a free loopback port: its endpoint.
fn start_subscriber(subscriber: &web::Data<Subscriber>) -> String {
    let data = subscriber.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(hook))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("a port");
    let endpoint = format!("http://{}/hook", server.addrs()[0]);
    tokio::spawn(server.run());
    endpoint
}

fn registration(endpoint: &str) -> kinfold_gateway::smart::SmartClient {
    kinfold_gateway::smart::SmartClient {
        client_id: CLIENT.into(),
        jwks: serde_json::from_str(RSA_JWKS).expect("jwks"),
        scopes: vec!["system/Patient.rs".into()],
        organisations: vec!["Q99".into()],
        endpoints: vec![endpoint.to_owned()],
        endpoint_tls: None,
    }
}

fn status_of(bundle: &Value) -> &Value {
    &bundle["entry"][0]["resource"]
}

fn parameter<'a>(parameters: &'a Value, name: &str) -> Option<&'a Value> {
    parameters["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn kind(bundle: &Value) -> String {
    parameter(status_of(bundle), "type")
        .and_then(|p| p["valueCode"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The event numbers a notification Bundle carries.
fn numbers(bundle: &Value) -> Vec<i64> {
    status_of(bundle)["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "notification-event")
        .filter_map(|p| {
            p["part"]
                .as_array()?
                .iter()
                .find(|part| part["name"] == "event-number")?["valueString"]
                .as_str()?
                .parse()
                .ok()
        })
        .collect()
}

async fn hook(subscriber: web::Data<Subscriber>, body: web::Bytes) -> HttpResponse {
    if subscriber.down.load(Ordering::SeqCst) {
        subscriber.refused_while_down.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::ServiceUnavailable().finish();
    }
    let Ok(bundle) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut lose = subscriber.lose.lock().expect("lose");
    if lose.is_some() && numbers(&bundle).first() == lose.as_ref() {
        // Taken, then lost (a crash before it was filed): the subscriber must notice.
        *lose = None;
        return HttpResponse::Ok().finish();
    }
    subscriber.received.lock().expect("received").push(bundle);
    HttpResponse::Ok().finish()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("rsa-test-1".into());
    let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).expect("rsa key");
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

/// Who is asking, for one request (a requester is good once).
fn requester() -> String {
    requester_of(CLIENT)
}

/// Who is asking, through this client.
fn requester_of(client: &str) -> String {
    let now = now();
    sign(
        &json!({"iss": client, "aud": "kinfold-gateway", "iat": now, "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(), "sub": "integration-engine",
        "name": "EHR integration", "role": "safeguarding-professional", "org": "Q99",
        "purpose": "safeguarding"}),
    )
}

async fn system_token(http: &reqwest::Client, token_endpoint: &str) -> String {
    token_of(http, token_endpoint, CLIENT).await
}

async fn token_of(http: &reqwest::Client, token_endpoint: &str, client: &str) -> String {
    let now = now();
    let assertion = sign(&json!({"iss": client, "sub": client,
        "aud": token_endpoint, "exp": now + 240, "iat": now,
        "jti": uuid::Uuid::new_v4().to_string()}));
    let response = http
        .post(token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", "system/Patient.rs")
                .append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", &assertion)
                .finish(),
        )
        .send()
        .await
        .expect("answered");
    let answer: Value = response.json().await.expect("json");
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {answer}"))
        .to_owned()
}

async fn call(
    t: &TestDemo,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = t.gateway(path);
    let build = || {
        let mut request = match method {
            "GET" => t.http.get(&url),
            _ => t.http.post(&url),
        }
        .bearer_auth(token);
        // A system client's request says who is asking; a person's token says it itself.
        if token != t.demo.info.token {
            request = request.header("Kinfold-Requester", requester());
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/fhir+json")
                .body(body.to_string());
        }
        request
    };
    // A kept-alive connection the server closed while idle fails before any answer: a GET is
    // asked again, as any client would.
    let response = match build().send().await {
        Ok(response) => response,
        Err(error) if method == "GET" && error.is_request() => {
            build().send().await.expect("answered")
        }
        Err(error) => panic!("answered: {error}"),
    };
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn subscription(endpoint: &str, owner: &str) -> Value {
    json!({"resourceType": "Subscription", "status": "requested", "reason": "Safeguarding notifications for the EHR",
        "criteria": TOPIC,
        "_criteria": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": format!("Task?owner={owner}")}]},
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
            "extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": 60}]}})
}

/// An infant nobody knows at A&E with a fracture: the area's lead is told twice (no GP, no
/// health visitor), the liaison team once.
async fn attendance(t: &TestDemo, n: u32) {
    let nhs = ["9990002045", "9990002053", "9990002061"][n as usize];
    let message = format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261203100000||ADT^A04^ADT_A01|SUB-{n}|P|2.4\rPID|1||{nhs}^^^NHS^NH||Sub^Infant{n}||20260601|F\rPV1|1|E|AE^^^RXX||||||||||||||||SV{n}|||||||||||||||||||||||||20261203093000+0000\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT"
    );
    let mut stream = kinfold_http::tls::connect(&t.demo.info.mllp["ae"], None)
        .await
        .expect("connects");
    let mut framed = vec![0x0b];
    framed.extend_from_slice(message.as_bytes());
    framed.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&framed).await.expect("sent");
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    while !reply.ends_with(&[0x1c, 0x0d]) {
        let read = stream.read(&mut chunk).await.expect("ack");
        assert!(read > 0);
        reply.extend_from_slice(&chunk[..read]);
    }
    assert!(String::from_utf8_lossy(&reply).contains("MSA|AA|"));
}

/// Waits until the subscriber holds event notifications up to `number`.
async fn until_received(subscriber: &Subscriber, number: i64) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<i64> = subscriber
            .received
            .lock()
            .expect("received")
            .iter()
            .filter(|b| kind(b) == "event-notification")
            .flat_map(numbers)
            .collect();
        if got.last().is_some_and(|n| *n >= number) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {number}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_subscriber_is_told_in_order_recovers_a_gap_and_waits_out_an_outage() {
    let subscriber = web::Data::new(Subscriber::default());
    let endpoint = start_subscriber(&subscriber);

    let clock = ManualClock::at(Utc::now());
    let registered = endpoint.clone();
    let gateway_clock = clock.clone();
    let t = TestDemo::start_with(0, move |o| {
        o.smart_clients.push(registration(&registered));
        o.clock = Arc::new(gateway_clock);
    })
    .await;
    let token = system_token(&t.http, &t.demo.info.smart_client.token_endpoint).await;
    // The demo's own story read into notifications first, so that the numbers below are ours.
    let store = kinfold_store::Store::open(&format!(
        "sqlite://{}",
        t.dir.path().join("gateway.db").display()
    ))
    .await
    .expect("the gateway's database");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let last = store
            .events_after(0, 100_000)
            .await
            .expect("events")
            .last()
            .map_or(0, |e| e.seq);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = store
            .events_after(0, 100_000)
            .await
            .expect("events")
            .last()
            .map_or(0, |e| e.seq);
        if last == again && store.notify_cursor().await.expect("cursor") >= last {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo's events read"
        );
    }

    // Refused: a person's token; an endpoint or organisation the client is not registered
    // for. Nothing is posted anywhere for them.
    let (status, _) = call(
        &t,
        &t.demo.info.token,
        "POST",
        "/Subscription",
        Some(&subscription(&endpoint, "Q99")),
    )
    .await;
    assert_eq!(status, 403);
    let (status, refused) = call(
        &t,
        &token,
        "POST",
        "/Subscription",
        Some(&subscription("http://127.0.0.1:1/elsewhere", "Q99")),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = call(
        &t,
        &token,
        "POST",
        "/Subscription",
        Some(&subscription(&endpoint, "RX1")),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert!(subscriber.received.lock().expect("received").is_empty());

    // The handshake, then the subscription.
    let (status, made) = call(
        &t,
        &token,
        "POST",
        "/Subscription",
        Some(&subscription(&endpoint, "Q99")),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["status"], "active");
    let id = made["id"].as_str().expect("id").to_owned();
    {
        let received = subscriber.received.lock().expect("received");
        assert_eq!(received.len(), 1);
        assert_eq!(received[0]["type"], "history");
        assert_eq!(kind(&received[0]), "handshake");
    }

    // Two events; the second is taken and lost.
    *subscriber.lose.lock().expect("lose") = Some(2);
    attendance(&t, 0).await;
    let got = until_received(&subscriber, 1).await;
    assert_eq!(got, vec![1]);
    attendance(&t, 1).await;
    let got = until_received(&subscriber, 4).await;
    assert_eq!(got, vec![1, 3, 4], "event 2 was lost after it was taken");
    // The gap, seen from the numbers, recovered with $events.
    let missing: Vec<i64> = (1..=4).filter(|n| !got.contains(n)).collect();
    assert_eq!(missing, vec![2]);
    let (status, again) = call(
        &t,
        &token,
        "GET",
        &format!("/Subscription/{id}/$events?eventsSinceNumber=2&eventsUntilNumber=2"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(kind(&again), "query-event");
    assert_eq!(numbers(&again), vec![2]);
    let task = &again["entry"][1]["resource"];
    assert_eq!(task["resourceType"], "Task");
    assert_eq!(
        task["owner"]["identifier"]["value"], "Q99",
        "only the organisation's own notifications"
    );
    for bundle in subscriber
        .received
        .lock()
        .expect("received")
        .iter()
        .filter(|b| kind(b) == "event-notification")
    {
        assert_eq!(
            bundle["entry"][1]["resource"]["owner"]["identifier"]["value"],
            "Q99"
        );
        assert_eq!(
            bundle["entry"][1]["resource"]["code"]["coding"][0]["code"],
            "notification"
        );
    }

    // Down for an hour of the gateway's clock: the events wait, retried with back-off.
    subscriber.down.store(true, Ordering::SeqCst);
    attendance(&t, 2).await;
    for _ in 0..12 {
        clock.advance(chrono::Duration::minutes(5));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        subscriber.refused_while_down.load(Ordering::SeqCst) >= 2,
        "tried again while down"
    );
    let (status, report) = call(
        &t,
        &token,
        "GET",
        &format!("/Subscription/{id}/$status"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let events = parameter(
        &report["entry"][0]["resource"],
        "events-since-subscription-start",
    )
    .and_then(|p| p["valueString"].as_str())
    .unwrap_or_default()
    .to_owned();
    assert_eq!(events, "6", "{report}");
    // Back: everything, in order of number, after the back-off.
    subscriber.down.store(false, Ordering::SeqCst);
    clock.advance(chrono::Duration::minutes(10));
    let got = until_received(&subscriber, 6).await;
    assert_eq!(got, vec![1, 3, 4, 5, 6]);

    // Nothing to send for more than the heartbeat period: a heartbeat.
    clock.advance(chrono::Duration::minutes(2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !subscriber
        .received
        .lock()
        .expect("received")
        .iter()
        .any(|b| kind(b) == "heartbeat")
    {
        assert!(tokio::time::Instant::now() < deadline, "a heartbeat");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another client's view of this subscription: not found.
    let (status, _) = call(
        &t,
        &t.demo.info.token,
        "GET",
        &format!("/Subscription/{id}/$status"),
        None,
    )
    .await;
    assert_eq!(status, 403, "a person's token is no client's");
    t.demo.shutdown().await;
}

#[tokio::test]
async fn postgres_two_gateways_post_each_event_once() {
    use common::agencies::{Backend, Kinfold};
    let subscriber = web::Data::new(Subscriber::default());
    let endpoint = start_subscriber(&subscriber);
    let mut k = Kinfold::adapters(Backend::Postgres).await;
    let registered = endpoint.clone();
    k.start_gateway_with(move |config| config.smart.clients.push(registration(&registered)))
        .await;
    // A second gateway on the same database: its delivery task runs beside the first's.
    k.start_another_gateway().await;
    let token = system_token(&k.http, &format!("{}/auth/token", k.gateway_url)).await;
    let response = k
        .http
        .post(format!("{}/Subscription", k.gateway_url))
        .bearer_auth(&token)
        .header("Kinfold-Requester", requester())
        .header("content-type", "application/fhir+json")
        .body(subscription(&endpoint, "Q99").to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 201);
    for n in 0..5u32 {
        let nhs = [
            "9990002045",
            "9990002053",
            "9990002061",
            "9990002088",
            "9990002096",
        ][n as usize];
        k.send_hl7(&format!(
            "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261203100000||ADT^A04^ADT_A01|TWO-{n}|P|2.4\rPID|1||{nhs}^^^NHS^NH||Two^Infant{n}||20260601|F\rPV1|1|E|AE^^^RXX||||||||||||||||TV{n}|||||||||||||||||||||||||20261203093000+0000\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT"
        ))
        .await;
    }
    // Two notifications to the area for each infant: ten events, each posted once, in order.
    let got = until_received(&subscriber, 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_later: Vec<i64> = subscriber
        .received
        .lock()
        .expect("received")
        .iter()
        .filter(|b| kind(b) == "event-notification")
        .flat_map(numbers)
        .collect();
    assert_eq!(got, (1..=10).collect::<Vec<i64>>());
    assert_eq!(got_later, got, "nothing posted twice");
    k.finish().await;
}

/// A client whose endpoint takes only mutual TLS: the gateway presents the certificate
/// registered for that client and trusts only the authority registered for its endpoints; a
/// client registered without them cannot even complete the handshake there.
#[tokio::test]
async fn an_endpoint_behind_mutual_tls_is_reached_with_the_clients_certificate() {
    use common::agencies::{Backend, Kinfold};
    let (pki, _) = common::test_pki();
    let subscriber = web::Data::new(Subscriber::default());
    let data = subscriber.clone();
    let tls = kinfold_http::tls::server_config(
        &kinfold_http::tls::ServerTls {
            cert: pki.adapter_cert.clone(),
            key: pki.adapter_key.clone(),
            client_ca: pki.ca.clone(),
        },
        kinfold_http::tls::ClientCertificates::Required,
    )
    .expect("the subscriber's TLS");
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(hook))
    })
    .workers(1)
    .bind_rustls_0_23("127.0.0.1:0", tls)
    .expect("a port");
    let endpoint = format!("https://{}/hook", server.addrs()[0]);
    tokio::spawn(server.run());

    let mut k = Kinfold::adapters(Backend::Sqlite).await;
    let registered = endpoint.clone();
    k.start_gateway_with(move |config| {
        let mut with_tls = registration(&registered);
        with_tls.endpoint_tls = Some(pki.gateway.clone());
        config.smart.clients.push(with_tls);
        let mut without = registration(&registered);
        without.client_id = "no-certificate-client".into();
        config.smart.clients.push(without);
    })
    .await;
    let token = system_token(&k.http, &format!("{}/auth/token", k.gateway_url)).await;
    let response = k
        .http
        .post(format!("{}/Subscription", k.gateway_url))
        .bearer_auth(&token)
        .header("Kinfold-Requester", requester())
        .header("content-type", "application/fhir+json")
        .body(subscription(&endpoint, "Q99").to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(
        response.status().as_u16(),
        201,
        "the handshake over mutual TLS"
    );
    assert_eq!(
        kind(&subscriber.received.lock().expect("received")[0]),
        "handshake"
    );
    k.send_hl7(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261203100000||ADT^A04^ADT_A01|TLS-1|P|2.4\rPID|1||9990002045^^^NHS^NH||Tls^Infant||20260601|F\rPV1|1|E|AE^^^RXX||||||||||||||||TLSV1|||||||||||||||||||||||||20261203093000+0000\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT",
    )
    .await;
    assert_eq!(until_received(&subscriber, 2).await, vec![1, 2]);
    // The same endpoint for a client registered without a certificate: refused at the
    // handshake, nothing kept.
    let other = token_of(
        &k.http,
        &format!("{}/auth/token", k.gateway_url),
        "no-certificate-client",
    )
    .await;
    let response = k
        .http
        .post(format!("{}/Subscription", k.gateway_url))
        .bearer_auth(&other)
        .header("Kinfold-Requester", requester_of("no-certificate-client"))
        .header("content-type", "application/fhir+json")
        .body(subscription(&endpoint, "Q99").to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 422);
    k.finish().await;
}
