//! What mutual TLS between the gateway and the adapters costs, measured on this machine.
//!
//!   cargo bench -p kinfold --bench mtls
//!
//! Prints Markdown rows for BENCHMARKS.md (`bash bench/mtls.sh` writes them there):
//! * The transport on its own, A against B in one process: a loopback server answers each
//!   200-byte request with one adapter answer's worth of bytes, over plain TCP, over an
//!   established TLS 1.3 session with client certificates (the demo's), and over a new
//!   session per request (a full handshake with client authentication each time).
//! * End to end, on a running demo (release build, 200 children with 20 weight measurements
//!   each): an adapter search with the gateway's certificate on a kept-alive connection and on
//!   a new connection per request, and the gateway's `$everything`, whose adapter calls reuse
//!   pooled connections.
//!
//! Medians and p99 of 2,000 requests each, one at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kinfold_http::tls::{ClientCertificates, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REQUESTS: usize = 2000;
const REQUEST_BYTES: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn median_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99))
}

/// A server that answers each request (REQUEST_BYTES) with `answer` bytes, on any stream.
async fn answer_each<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    answer: usize,
) {
    let mut request = vec![0u8; REQUEST_BYTES];
    let reply = vec![b'x'; answer];
    while stream.read_exact(&mut request).await.is_ok() {
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn round_trip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    answer: usize,
) {
    let request = vec![b'r'; REQUEST_BYTES];
    let mut reply = vec![0u8; answer];
    stream.write_all(&request).await.expect("sent");
    stream.read_exact(&mut reply).await.expect("answered");
}

/// REQUESTS round trips on one connection: the median and p99.
async fn timed(stream: &mut Box<dyn kinfold_http::tls::Duplex>, answer: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        round_trip(stream, answer).await;
        samples.push(started.elapsed());
    }
    median_p99(samples)
}

/// Plain TCP, an established mutual-TLS session, and a new session per request.
async fn transport(pki: &kinfold::pki::DemoPki, answer: usize) -> [(f64, f64); 3] {
    let server_tls = Arc::new(
        kinfold_http::tls::server_config(
            &ServerTls {
                cert: pki.adapter_cert.clone(),
                key: pki.adapter_key.clone(),
                client_ca: pki.ca.clone(),
            },
            ClientCertificates::Required,
        )
        .expect("server config"),
    );
    let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (plain_at, tls_at) = (
        plain.local_addr().expect("addr"),
        tls.local_addr().expect("addr"),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = plain.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(answer_each(stream, answer));
        }
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    tokio::spawn(async move {
        while let Ok((stream, _)) = tls.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    answer_each(stream, answer).await;
                }
            });
        }
    });

    let mut stream = kinfold_http::tls::connect(&plain_at.to_string(), None)
        .await
        .expect("connects");
    let plain = timed(&mut stream, answer).await;
    let address = format!("tls://{tls_at}");
    let mut stream = kinfold_http::tls::connect(&address, Some(&pki.gateway))
        .await
        .expect("handshake");
    let established = timed(&mut stream, answer).await;

    let mut samples = Vec::with_capacity(REQUESTS / 4);
    for _ in 0..REQUESTS / 4 {
        let started = Instant::now();
        let mut stream = kinfold_http::tls::connect(&address, Some(&pki.gateway))
            .await
            .expect("handshake");
        round_trip(&mut stream, answer).await;
        samples.push(started.elapsed());
    }
    let fresh = median_p99(samples);
    [plain, established, fresh]
}

/// One GET after another; the latency of each.
async fn sequential(http: &reqwest::Client, urls: &[String], token: Option<&str>) -> (f64, f64) {
    let mut samples = Vec::with_capacity(REQUESTS);
    for n in 0..REQUESTS {
        let mut request = http.get(&urls[n % urls.len()]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request.send().await.expect("answered");
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.expect("body");
        samples.push(started.elapsed());
    }
    median_p99(samples)
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = kinfold::demo::DemoOptions::new(dir.path().to_path_buf(), 0);
    options.population.families = 100_000;
    options.population.max_children = Some(200);
    options.population.weights_per_child = Some(20);
    let demo = kinfold::demo::start(options)
        .await
        .expect("the demo starts");
    let pki = kinfold::pki::DemoPki::create(&dir.path().join("pki")).expect("pki");
    let as_gateway = |pooled: bool| {
        let builder = reqwest::Client::builder();
        let builder = if pooled {
            builder
        } else {
            builder.pool_max_idle_per_host(0)
        };
        kinfold_http::tls::client(&pki.gateway, builder)
            .expect("credentials")
            .build()
            .expect("client")
    };
    let hv = demo.info.adapters["health-visiting"].clone();
    let children: serde_json::Value = as_gateway(true)
        .get(format!("{hv}/Patient?_count=100"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let ids: Vec<String> = children["entry"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect();
    let search: Vec<String> = ids
        .iter()
        .map(|id| format!("{hv}/Observation?patient=Patient/{id}&code=http://loinc.org%7C29463-7"))
        .collect();
    // One search answer's size, for the transport comparison.
    let answer = as_gateway(true)
        .get(&search[0])
        .send()
        .await
        .expect("answered")
        .bytes()
        .await
        .expect("body")
        .len();

    let [plain, established, fresh] = transport(&pki, answer).await;
    println!(
        "| transport: one request and a {answer}-byte answer, plain TCP | {:.0} µs | {:.0} µs |",
        plain.0, plain.1
    );
    println!(
        "| transport: the same over an established mutual-TLS session | {:.0} µs | {:.0} µs |",
        established.0, established.1
    );
    println!(
        "| transport: the same over a new mutual-TLS session each time (handshake included) | {:.0} µs | {:.0} µs |",
        fresh.0, fresh.1
    );

    let kept = sequential(&as_gateway(true), &search, None).await;
    let new = sequential(&as_gateway(false), &search, None).await;
    println!(
        "| adapter search (20 weights), gateway certificate, kept-alive connection | {:.0} µs | {:.0} µs |",
        kept.0, kept.1
    );
    println!(
        "| adapter search, a new mutual-TLS connection per request | {:.0} µs | {:.0} µs |",
        new.0, new.1
    );

    // The gateway's $everything over the same children (person ids from the index).
    let http = reqwest::Client::new();
    let mut everything = Vec::new();
    for child in children["entry"]
        .as_array()
        .expect("children")
        .iter()
        .take(100)
    {
        let Some(nhs) = child["resource"]["identifier"][0]["value"].as_str() else {
            continue;
        };
        let found: serde_json::Value = http
            .get(format!(
                "{}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}",
                demo.info.gateway
            ))
            .bearer_auth(&demo.info.token)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("json");
        if let Some(id) = found["entry"][0]["resource"]["id"].as_str() {
            everything.push(format!("{}/Patient/{id}/$everything", demo.info.gateway));
        }
    }
    let gateway = sequential(&http, &everything, Some(&demo.info.token)).await;
    println!(
        "| gateway `$everything` (adapter calls over pooled mutual-TLS connections) | {:.0} µs | {:.0} µs |",
        gateway.0, gateway.1
    );
    println!(
        "| derived: an established session's cost per request (row 2 − row 1) | {:.0} µs | |",
        established.0 - plain.0
    );
    println!(
        "| derived: a handshake's cost (row 5 − row 4) | {:.0} µs | |",
        new.0 - kept.0
    );
    demo.shutdown().await;
}
