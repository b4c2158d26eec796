//! `kinfold import --agency NAME FILE`: feeds a file to an agency's running adapter through
//! the same ingest pipeline as its live feed, with a progress bar on a terminal and a summary.
//!
//! * Midwifery, health visiting, school nursing: an extract (JSON Lines, `docs/feeds/`), sent in
//!   chunks of rows to the adapter's `POST /$import`, so that a file of any length is never
//!   held in one request.
//! * A&E: a file of HL7 v2 messages (one or many, batch segments allowed), sent over MLLP one
//!   message at a time, each answered with its ACK.
//! * GP: a FHIR `transaction` or `batch` Bundle, sent to `POST /`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kinfold_adapter::ingest::extract::{ImportSummary, RejectedRow, takes_extracts};
use kinfold_fhir::Agency;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Rows per request to `POST /$import`.
pub const CHUNK_ROWS: usize = 500;

/// Where the agency's adapter is.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its HTTP base URL.
    pub adapter: String,
    /// Its MLLP address (`host:port`, or `tls://host:port`), for the A&E feed.
    pub mllp: Option<String>,
    /// The feed's client certificate, its key, and the adapters' authority: adapters take
    /// ingest only from their feeds' certificates.
    pub tls: Option<kinfold_http::tls::ClientTls>,
    /// How many MLLP connections to keep busy at once ([`MLLP_CONNECTIONS`] by default).
    pub mllp_connections: usize,
}

impl Target {
    /// An HTTP client that presents the feed's certificate.
    pub fn http(&self, timeout: Duration) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder().timeout(timeout);
        match &self.tls {
            Some(tls) => kinfold_http::tls::client(tls, builder).map_err(|e| e.to_string())?,
            None => builder,
        }
        .build()
        .map_err(|e| e.to_string())
    }
}

/// Imports one file, drawing progress when `show_progress`.
pub async fn import(
    agency: Agency,
    file: &Path,
    target: &Target,
    show_progress: bool,
) -> Result<ImportSummary, String> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    let bar = if show_progress {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {wide_bar} {bytes}/{total_bytes} {per_sec} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let summary = if takes_extracts(agency) {
        extract(file, target, &bar).await
    } else if agency == Agency::Ae {
        hl7v2(file, target, &bar).await
    } else {
        bundle(file, target, &bar).await
    };
    bar.finish_and_clear();
    summary
}

async fn extract(file: &Path, target: &Target, bar: &ProgressBar) -> Result<ImportSummary, String> {
    let http = target.http(Duration::from_secs(120))?;
    let reader = BufReader::new(std::fs::File::open(file).map_err(|e| e.to_string())?);
    let mut total = ImportSummary::default();
    let mut chunk = String::new();
    let mut rows = 0;
    let mut first_line = 1;
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        bar.inc(line.len() as u64 + 1);
        chunk.push_str(&line);
        chunk.push('\n');
        rows += 1;
        if rows == CHUNK_ROWS {
            send_rows(&http, target, &mut chunk, first_line, &mut total).await?;
            first_line = n + 2;
            rows = 0;
            bar.set_message(format!("{} stored", total.stored));
        }
    }
    if rows > 0 {
        send_rows(&http, target, &mut chunk, first_line, &mut total).await?;
    }
    Ok(total)
}

/// Sends rows (JSON Lines) to an adapter's `POST /$import`, adding its answer to `total`.
pub(crate) async fn send_rows(
    http: &reqwest::Client,
    target: &Target,
    chunk: &mut String,
    first_line: usize,
    total: &mut ImportSummary,
) -> Result<(), String> {
    let url = format!(
        "{}/$import?first_line={first_line}",
        target.adapter.trim_end_matches('/')
    );
    let body = std::mem::take(chunk);
    // A busy adapter says so with 503: wait and resend, as a feed should.
    for attempt in 1..=20u64 {
        let response = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && attempt < 20 {
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            continue;
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("the adapter answered {status}: {text}"));
        }
        let part: ImportSummary = serde_json::from_str(&text)
            .map_err(|e| format!("the adapter's answer is not a summary: {e}"))?;
        total.rows += part.rows;
        total.stored += part.stored;
        total.unchanged += part.unchanged;
        total.rejected.extend(part.rejected);
        return Ok(());
    }
    Err("the adapter stayed busy".into())
}

async fn hl7v2(file: &Path, target: &Target, bar: &ProgressBar) -> Result<ImportSummary, String> {
    let address = target
        .mllp
        .as_deref()
        .ok_or("the A&E adapter's MLLP address is not known (--mllp HOST:PORT)")?;
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let text = kinfold_hl7v2::decode(&bytes);
    let messages = kinfold_hl7v2::split_messages(&text);
    bar.set_length(messages.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {wide_bar} {pos}/{len} messages {per_sec} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    send_hl7v2_pipelined(
        address,
        target.tls.as_ref(),
        &messages,
        target.mllp_connections,
        bar,
    )
    .await
}

/// How many MLLP connections `kinfold import` keeps busy at once.
pub const MLLP_CONNECTIONS: usize = 8;

/// What the adapter answered to one message.
enum Acknowledged {
    Stored,
    Unchanged,
    Rejected { field: String, message: String },
}

/// Where a message may go: with its patient's other messages, or alone.
enum Lane {
    /// The first identifier in PID-3 (none: any connection).
    Patient(Option<String>),
    /// A merge (an MRG segment) concerns two patients: it waits for everything before it.
    Alone,
}

fn lane_of(message: &str) -> Lane {
    match kinfold_hl7v2::Message::parse(message) {
        Ok(parsed) if parsed.value("MRG", 1, 1, 1, 1).is_some() => Lane::Alone,
        Ok(parsed) => Lane::Patient(parsed.value("PID", 3, 1, 1, 1)),
        Err(_) => Lane::Patient(None),
    }
}

/// Sends messages over up to `connections` MLLP connections at once, each connection waiting
/// for each ACK. A patient's messages (by the first identifier in PID-3) all go over one
/// connection, in the file's order; a merge waits until every message before it is
/// acknowledged and goes on its own. `bar` moves message by message. Rejections are numbered
/// from 1 in the file's order.
pub(crate) async fn send_hl7v2_pipelined<S: AsRef<str>>(
    address: &str,
    tls: Option<&kinfold_http::tls::ClientTls>,
    messages: &[S],
    connections: usize,
    bar: &ProgressBar,
) -> Result<ImportSummary, String> {
    let connections = connections.max(1);
    let mut answers: Vec<(usize, Acknowledged)> = Vec::with_capacity(messages.len());
    let mut run: Vec<Vec<(usize, &str)>> = vec![Vec::new(); connections];
    for (n, message) in messages.iter().enumerate() {
        let message = message.as_ref();
        match lane_of(message) {
            Lane::Patient(key) => {
                let k = match key {
                    Some(key) => {
                        use std::hash::{Hash, Hasher};
                        let mut hasher = std::hash::DefaultHasher::new();
                        key.hash(&mut hasher);
                        hasher.finish() as usize % connections
                    }
                    None => n % connections,
                };
                run[k].push((n, message));
            }
            Lane::Alone => {
                answers.extend(flush(address, tls, &mut run, bar).await?);
                answers.extend(send_lane(address, tls, &[(n, message)], bar).await?);
            }
        }
    }
    answers.extend(flush(address, tls, &mut run, bar).await?);
    answers.sort_by_key(|(n, _)| *n);
    let mut summary = ImportSummary {
        rows: messages.len(),
        ..ImportSummary::default()
    };
    for (n, answer) in answers {
        match answer {
            Acknowledged::Stored => summary.stored += 1,
            Acknowledged::Unchanged => summary.unchanged += 1,
            Acknowledged::Rejected { field, message } => summary.rejected.push(RejectedRow {
                line: n + 1,
                field,
                message,
            }),
        }
    }
    Ok(summary)
}

/// Sends every lane of a run at once, each over its own connection, and empties them.
async fn flush(
    address: &str,
    tls: Option<&kinfold_http::tls::ClientTls>,
    run: &mut [Vec<(usize, &str)>],
    bar: &ProgressBar,
) -> Result<Vec<(usize, Acknowledged)>, String> {
    let lanes: Vec<Vec<(usize, &str)>> = run
        .iter_mut()
        .map(std::mem::take)
        .filter(|lane| !lane.is_empty())
        .collect();
    let sent =
        futures::future::join_all(lanes.iter().map(|lane| send_lane(address, tls, lane, bar)))
            .await;
    let mut answers = Vec::new();
    for lane in sent {
        answers.extend(lane?);
    }
    Ok(answers)
}

/// One connection's messages, in order, each waiting for its ACK.
async fn send_lane(
    address: &str,
    tls: Option<&kinfold_http::tls::ClientTls>,
    lane: &[(usize, &str)],
    bar: &ProgressBar,
) -> Result<Vec<(usize, Acknowledged)>, String> {
    let mut stream = tokio::io::BufReader::new(
        kinfold_http::tls::connect(address, tls)
            .await
            .map_err(|e| format!("{address}: {e}"))?,
    );
    let mut answers = Vec::with_capacity(lane.len());
    for &(n, message) in lane {
        let mut frame = Vec::with_capacity(message.len() + 3);
        frame.push(0x0b);
        frame.extend_from_slice(message.as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
        let ack = read_frame(&mut stream).await.map_err(|e| {
            if address.starts_with("tls://") {
                e
            } else {
                format!(
                    "{e} (if {address} takes MLLP over TLS, as a production listener does, give it as tls://{address} with --cert, --key and --ca)"
                )
            }
        })?;
        let parsed = kinfold_hl7v2::Message::parse(&ack).map_err(|e| format!("ACK: {e}"))?;
        let answer = match parsed.value("MSA", 1, 1, 1, 1).as_deref() {
            // A resent message is acknowledged "already stored: unchanged" (MSA-3).
            Some("AA" | "CA")
                if parsed
                    .value("MSA", 3, 1, 1, 1)
                    .is_some_and(|text| text.contains("unchanged")) =>
            {
                Acknowledged::Unchanged
            }
            Some("AA" | "CA") => Acknowledged::Stored,
            _ => Acknowledged::Rejected {
                field: parsed
                    .value("ERR", 2, 1, 1, 1)
                    .map(|segment| {
                        let field = parsed.value("ERR", 2, 1, 3, 1).unwrap_or_default();
                        format!("{segment}-{field}")
                    })
                    .unwrap_or_default(),
                message: parsed
                    .value("ERR", 8, 1, 1, 1)
                    .or_else(|| parsed.value("MSA", 3, 1, 1, 1))
                    .unwrap_or_else(|| "refused".into()),
            },
        };
        answers.push((n, answer));
        bar.inc(1);
    }
    Ok(answers)
}

/// Reads one ACK frame (`0x0B … 0x1C 0x0D`), buffered: a read per byte cost more than the
/// adapter's work on it.
async fn read_frame<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<String, String> {
    const LARGEST: u64 = 1024 * 1024;
    let mut frame = Vec::new();
    let read = async {
        loop {
            let room = LARGEST.saturating_sub(frame.len() as u64);
            let n = (&mut *stream)
                .take(room)
                .read_until(0x1c, &mut frame)
                .await
                .map_err(|e| format!("the adapter closed the connection: {e}"))?;
            if frame.len() as u64 >= LARGEST {
                break Err("an ACK over 1 MiB".to_owned());
            }
            if n == 0 {
                break Err("the adapter closed the connection".to_owned());
            }
            if frame.last() == Some(&0x1c) {
                let next = stream
                    .read_u8()
                    .await
                    .map_err(|e| format!("the adapter closed the connection: {e}"))?;
                if next == 0x0d {
                    break Ok::<_, String>(());
                }
                frame.push(next);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .map_err(|_| "no ACK within 30 s".to_owned())??;
    let start = usize::from(frame.first() == Some(&0x0b));
    Ok(String::from_utf8_lossy(&frame[start..frame.len() - 1]).into_owned())
}

async fn bundle(file: &Path, target: &Target, bar: &ProgressBar) -> Result<ImportSummary, String> {
    let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let response = target
        .http(Duration::from_secs(120))?
        .post(format!("{}/", target.adapter.trim_end_matches('/')))
        .header(reqwest::header::CONTENT_TYPE, kinfold_fhir::FHIR_JSON)
        .body(body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    bar.inc(body.len() as u64);
    let status = response.status();
    let answer: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    let mut summary = ImportSummary::default();
    if !status.is_success() {
        let issue = &answer["issue"][0];
        summary.rows = 1;
        summary.rejected.push(RejectedRow {
            line: 0,
            field: issue["expression"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            message: issue["diagnostics"]
                .as_str()
                .unwrap_or("refused")
                .to_owned(),
        });
        return Ok(summary);
    }
    for (n, entry) in answer["entry"].as_array().into_iter().flatten().enumerate() {
        summary.rows += 1;
        let status = entry["response"]["status"].as_str().unwrap_or_default();
        if status.starts_with('2') {
            summary.stored += 1;
        } else {
            let issue = &entry["response"]["outcome"]["issue"][0];
            summary.rejected.push(RejectedRow {
                line: n,
                field: issue["expression"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                message: issue["diagnostics"].as_str().unwrap_or(status).to_owned(),
            });
        }
    }
    Ok(summary)
}
