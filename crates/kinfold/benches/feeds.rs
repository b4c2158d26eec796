//! The A&E feed end to end: HL7 v2 over MLLP into a running demo (release build), every
//! message acknowledged only once it is durably stored and in the ledger.
//!
//!   cargo bench -p kinfold --bench feeds
//!
//! Prints Markdown rows for BENCHMARKS.md:
//! * MLLP throughput: 16 connections, each sending 600 ADT^A04 messages (a new patient and an
//!   attendance each) and waiting for each ACK before the next, as an EPR's interface engine
//!   does; the median of three runs. Messages from all connections share group commits.
//! * File import: a health visiting extract of 20,000 growth rows (2,000 children) through
//!   `kinfold import`'s code path (`POST /$import` in chunks of 500 rows); rows per second.
//! * Ingest to visible: 200 times, one message for a new patient, then the gateway asked
//!   (`Patient?identifier=` and `$everything`) until the attendance is there; median and p99
//!   of the time from sending to seeing it. Target (issue 10): at least 2,000 durable messages
//!   a second.
//! * The A&E adapter on its own (no gateway; its events wait in its outbox), the same MLLP load
//!   with plain MLLP and over TLS with the feed's certificate. `FEEDS_BENCH=adapter` runs only
//!   this part.

use std::time::{Duration, Instant};

use common::{exchange, nhs_number};
use kinfold_fhir::NhsNumber;

mod common;

const CONNECTIONS: usize = 16;
const PER_CONNECTION: usize = 600;
const IMPORT_ROWS: usize = 20_000;
const LATENCY_PATIENTS: u32 = 200;
/// The idle time before the second latency run.
const SETTLE: Duration = Duration::from_secs(3);

fn message(n: u32, nhs: &NhsNumber) -> Vec<u8> {
    common::framed(&format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A04^ADT_A01|BENCH-{n}|P|2.4\rPID|1||{nhs}^^^NHS^NH||Bench^Child{n}||20190305|2\rPV1|1|E|AE^^^RXX||||||||||||||||V{n}|||||||||||||||||||||||||20250611093000+0100",
        nhs = nhs.as_str()
    ))
}

/// A GET at the gateway with the demo's token, as JSON.
async fn get(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// Three runs of CONNECTIONS × PER_CONNECTION messages at `address` (over TLS with `tls`),
/// each message waiting for its ACK; the rates, sorted.
async fn mllp_rates(
    address: &str,
    tls: Option<&kinfold_http::tls::ClientTls>,
    next: &mut u32,
) -> Vec<f64> {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut senders = Vec::new();
        for c in 0..CONNECTIONS {
            let address = address.to_owned();
            let tls = tls.cloned();
            let base = *next + u32::try_from(c * PER_CONNECTION).unwrap_or(0);
            senders.push(tokio::spawn(async move {
                let mut stream = kinfold_http::tls::connect(&address, tls.as_ref())
                    .await
                    .expect("connects");
                let mut accepted = 0usize;
                for k in 0..PER_CONNECTION {
                    let n = base + u32::try_from(k).unwrap_or(0);
                    if exchange(&mut stream, &message(n, &nhs_number(n))).await {
                        accepted += 1;
                    }
                }
                accepted
            }));
        }
        let mut accepted = 0;
        for sender in senders {
            accepted += sender.await.expect("sender");
        }
        *next += u32::try_from(CONNECTIONS * PER_CONNECTION).unwrap_or(0);
        assert_eq!(
            accepted,
            CONNECTIONS * PER_CONNECTION,
            "every message accepted"
        );
        rates.push(accepted as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates
}

/// The A&E adapter on its own (no gateway: its events wait in its outbox), its MLLP listener
/// plain on loopback or over TLS; returns its MLLP address.
async fn lone_adapter(dir: &std::path::Path, pki: &kinfold::pki::DemoPki, tls: bool) -> String {
    let store = kinfold_store::Store::open_sqlite(&dir.join(format!("ae-{tls}.db")))
        .await
        .expect("store");
    let ledger = kinfold_audit::Ledger::open(
        store.clone(),
        &kinfold_audit::LedgerConfig {
            signing_key: Some(kinfold_audit::Secret::new(kinfold_ledger::b64(&[4u8; 32]))),
            ..kinfold_audit::LedgerConfig::default()
        },
    )
    .await
    .expect("ledger");
    let config = kinfold_adapter::AdapterConfig {
        agency: Some(kinfold_fhir::Agency::Ae),
        mllp_bind: Some("127.0.0.1:0".into()),
        mllp_plain: !tls,
        tls: Some(kinfold_adapter::AdapterTls {
            cert: pki.adapter_cert.clone(),
            key: pki.adapter_key.clone(),
            client_ca: pki.ca.clone(),
            gateway_names: vec![kinfold::pki::GATEWAY_NAME.into()],
            feed_names: vec![kinfold::pki::FEED_NAME.into()],
        }),
        ..kinfold_adapter::AdapterConfig::default()
    };
    let app =
        kinfold_adapter::build(kinfold_fhir::Agency::Ae, store, ledger, &config).expect("adapter");
    let port = app.mllp_port().expect("MLLP");
    tokio::spawn(app.run_until_stopped());
    if tls {
        format!("tls://127.0.0.1:{port}")
    } else {
        format!("127.0.0.1:{port}")
    }
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut next = 0u32;
    // FEEDS_BENCH=adapter measures only the A&E adapter on its own; FEEDS_BENCH=gateway only
    // the demo with its gateway.
    let only = std::env::var("FEEDS_BENCH").unwrap_or_default();
    if only != "adapter" {
        with_gateway(dir.path(), &mut next).await;
    }
    if only == "gateway" {
        return;
    }
    // The A&E adapter on its own, plain and over TLS: what its feed can send when the gateway's
    // work (reading the events into the person index) is on another machine.
    let pki = kinfold::pki::DemoPki::create(&dir.path().join("lone-pki")).expect("pki");
    let plain = lone_adapter(dir.path(), &pki, false).await;
    let alone = mllp_rates(&plain, None, &mut next).await;
    let tls = lone_adapter(dir.path(), &pki, true).await;
    let alone_tls = mllp_rates(&tls, Some(&pki.feed), &mut next).await;
    println!(
        "| the A&E adapter on its own (its events wait in the outbox), plain MLLP, {CONNECTIONS} connections × {PER_CONNECTION} (median of 3) | {:.0} messages/s | ≥ 2,000 /s |",
        alone[1]
    );
    println!(
        "| the same, MLLP over TLS with the feed's certificate (median of 3) | {:.0} messages/s | ≥ 2,000 /s |",
        alone_tls[1]
    );
}

/// The demo: MLLP into it, ingest to visible through the gateway, and a file import.
async fn with_gateway(dir: &std::path::Path, next: &mut u32) {
    let mut options = kinfold::demo::DemoOptions::new(dir.to_path_buf(), 0);
    options.population.families = 1;
    let demo = kinfold::demo::start(options)
        .await
        .expect("the demo starts");
    let address = demo.info.mllp["ae"].clone();

    let rates = mllp_rates(&address, None, next).await;
    // The time until the last message's attendance is visible through the gateway. (The
    // gateway may find it by asking the agencies, before its person index has read the event.)
    let http = reqwest::Client::new();
    let last_sent = nhs_number(*next - 1);
    let burst_ended = Instant::now();
    visible(&http, &demo.info, &last_sent, "Encounter").await;
    let last_visible_ms = burst_ended.elapsed().as_secs_f64() * 1000.0;

    // File import: an extract written to disk, then imported as `kinfold import` does.
    let extract = dir.join("health-visiting-growth.ndjson");
    let mut rows = String::new();
    for r in 0..IMPORT_ROWS {
        let child = u32::try_from(r % 2000).unwrap_or(0) + 500_000;
        let nhs = nhs_number(child);
        let day = 1 + r / 2000;
        rows.push_str(&format!(
            "{{\"record\":\"growth\",\"row_id\":\"G-{r}\",\"recorded_at\":\"2026-03-01T10:00:00Z\",\"child\":{{\"nhs_number\":\"{}\",\"family\":\"Bench\",\"given\":[\"Child{child}\"],\"birth_date\":\"2024-01-01\"}},\"date\":\"2026-02-{day:02}\",\"weight_kg\":{}.{}}}\n",
            nhs.as_str(),
            8 + r % 5,
            r % 10
        ));
    }
    std::fs::write(&extract, rows).expect("extract written");
    let target = kinfold::import::Target {
        adapter: demo.info.adapters["health-visiting"].clone(),
        mllp: None,
        tls: Some(demo.info.client_tls.clone()),
        mllp_connections: kinfold::import::MLLP_CONNECTIONS,
    };
    let started = Instant::now();
    let summary = kinfold::import::import(
        kinfold_fhir::Agency::HealthVisiting,
        &extract,
        &target,
        false,
    )
    .await
    .expect("imported");
    let import_seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        summary.stored,
        IMPORT_ROWS,
        "every row stored: {:?}",
        summary.rejected.first()
    );

    // Wait until the import's last child is visible, so that the latencies below do not count
    // the import itself.
    let last_child = nhs_number(u32::try_from((IMPORT_ROWS - 1) % 2000).unwrap_or(0) + 500_000);
    visible(&http, &demo.info, &last_child, "Observation").await;
    let import_visible_ms = started.elapsed().as_secs_f64() * 1000.0 - import_seconds * 1000.0;
    let mut stream = kinfold_http::tls::connect(&address, None)
        .await
        .expect("connects");
    // Right after the bursts above, the adapters' outboxes are still delivering their events,
    // and an identity answer first reads every event received (a pass of 200 holds the person
    // index for tens of milliseconds): the tail shows it. After a few idle seconds, the
    // pipeline alone.
    let after_burst = latencies(&http, &demo.info, &mut stream, 900_000).await;
    tokio::time::sleep(SETTLE).await;
    let settled = latencies(&http, &demo.info, &mut stream, 901_000).await;
    println!(
        "| A&E HL7 v2 over MLLP, durable (ACK after the ledger and the store commit), {CONNECTIONS} connections × {PER_CONNECTION} ADT^A04 (median of 3) | {:.0} messages/s | ≥ 2,000 /s |",
        rates[1]
    );
    println!(
        "| the last message of those bursts visible through the gateway, after its ACK | {last_visible_ms:.0} ms | (reported) |"
    );
    println!(
        "| ingest to visible through the gateway (send, ACK, `Patient?identifier=` and `$everything` until the attendance is there), {LATENCY_PATIENTS} new patients, right after the file import below (its last row visible {import_visible_ms:.0} ms after it ended; the adapters' outboxes still delivering the bursts' events) | {after_burst} | (reported) |"
    );
    println!(
        "| the same, {LATENCY_PATIENTS} more after {} s idle | {settled} | (reported) |",
        SETTLE.as_secs()
    );
    println!(
        "| file import (`kinfold import`): health visiting extract, {IMPORT_ROWS} growth rows for 2,000 children, chunks of 500 rows, each row whole with its provenance and event | {:.0} rows/s | (reported) |",
        IMPORT_ROWS as f64 / import_seconds
    );
    demo.shutdown().await;
}

/// Waits (at most 10 s) until the person with this NHS number is found through the gateway
/// and their `$everything` holds a record of this type.
async fn visible(
    http: &reqwest::Client,
    demo: &kinfold::demo::DemoInfo,
    nhs: &NhsNumber,
    resource_type: &str,
) {
    let started = Instant::now();
    loop {
        let found = get(
            http,
            &format!(
                "{}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{}",
                demo.gateway,
                nhs.as_str()
            ),
            &demo.token,
        )
        .await;
        if let Some(id) = found["entry"][0]["resource"]["id"].as_str() {
            let everything = get(
                http,
                &format!("{}/Patient/{id}/$everything", demo.gateway),
                &demo.token,
            )
            .await;
            let seen = everything["entry"].as_array().is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| e["resource"]["resourceType"] == resource_type)
            });
            if seen {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "visible in time"
        );
    }
}

/// Sends `LATENCY_PATIENTS` new patients one at a time, each waited for until visible through
/// the gateway: the median and 99th percentile, as table text.
async fn latencies(
    http: &reqwest::Client,
    demo: &kinfold::demo::DemoInfo,
    stream: &mut Box<dyn kinfold_http::tls::Duplex>,
    first: u32,
) -> String {
    let mut latencies = Vec::new();
    for n in first..first + LATENCY_PATIENTS {
        let nhs = nhs_number(n);
        let started = Instant::now();
        assert!(exchange(stream, &message(n, &nhs)).await);
        visible(http, demo, &nhs, "Encounter").await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, p99 {:.1} ms",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 99 / 100])
    )
}
