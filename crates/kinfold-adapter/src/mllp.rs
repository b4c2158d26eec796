//! The A&E feed's door: HL7 v2 over MLLP, as hospital EPRs send it.
//!
//! A connection carries frames `0x0B message 0x1C 0x0D`; each message gets one framed ACK or
//! NAK on the same connection, in order. A frame may hold a batch (`FHS`/`BHS`): each message
//! in it is answered. Every message goes through the same [`AdapterState::apply`] as a FHIR
//! ingest, so it is in the ledger with what it stores and is stored whole or not at all.
//!
//! Bounds, whoever connects: at most `mllp_max_connections` connections (more are closed at
//! once); a frame over [`kinfold_hl7v2::MAX_MESSAGE_BYTES`] is read past without being kept and
//! answered with a NAK; a connection that sends more than 4 KiB outside any frame, takes longer
//! than `mllp_frame_timeout_ms` over one frame, or stays silent for `mllp_idle_timeout_ms`, is
//! closed. A fault in one connection never touches another.
//!
//! Over TLS (the default), the handshake must present a client certificate signed by the
//! client authority and naming one of the adapter's `feed_names`, within the frame timeout;
//! anything else is closed before a byte of HL7 is read, and counted into the adapter's
//! ledger as a refusal. Plain MLLP is taken only where configuration says `mllp_plain`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use kinfold_hl7v2::{AckCode, Hl7Error, Message};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ingest::{self, Source};
use crate::{AdapterError, AdapterState};

const START: u8 = 0x0b;
const END: u8 = 0x1c;
const CARRIAGE_RETURN: u8 = 0x0d;
/// Bytes outside any frame a connection may send before it is closed.
const MAX_OUTSIDE_FRAMES: usize = 4096;

/// How long the listener waits, and how many it serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MllpLimits {
    pub(crate) frame_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// The TLS side of the listener.
#[derive(Debug, Clone)]
pub(crate) struct MllpTls {
    /// Requires a client certificate signed by the client authority.
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// The names a feed's certificate may carry.
    pub(crate) feeds: Vec<String>,
    /// Where refused handshakes are counted.
    pub(crate) refusals: Arc<kinfold_audit::Refusals>,
}

/// The route refused MLLP connections are counted under.
const ROUTE: &str = "MLLP";

/// Serves MLLP connections until the task is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    state: web::Data<AdapterState>,
    limits: MllpLimits,
    tls: Option<MllpTls>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("MLLP connection refused: as many connections as allowed are open");
            drop(stream);
            continue;
        };
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let served = match tls {
                None => connection(stream, &state, limits).await,
                Some(tls) => match handshake(stream, &tls, limits).await {
                    Ok(stream) => connection(stream, &state, limits).await,
                    Err(reason) => Err(reason),
                },
            };
            if let Err(reason) = served {
                tracing::info!(%reason, "MLLP connection closed");
            }
        });
    }
}

/// What one read of a frame gave.
enum Frame {
    Message(Vec<u8>),
    TooLarge,
    Closed,
}

/// Runs the TLS handshake within the frame timeout and admits only a feed's certificate.
async fn handshake(
    stream: tokio::net::TcpStream,
    tls: &MllpTls,
    limits: MllpLimits,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, &'static str> {
    let source = stream.peer_addr().ok().map(|a| a.ip());
    let refuse = |code: &str| {
        tls.refusals.note(source, code, ROUTE);
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let stream = match tokio::time::timeout(limits.frame_timeout, acceptor.accept(stream)).await {
        Err(_) => {
            refuse("tls-handshake-timeout");
            return Err("the TLS handshake took too long");
        }
        Ok(Err(_)) => {
            refuse("tls-handshake-failed");
            return Err(
                "the TLS handshake failed (no client certificate, or one not signed by the client authority)",
            );
        }
        Ok(Ok(stream)) => stream,
    };
    let allowed = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| kinfold_http::tls::PeerCertificate::new(cert.clone().into_owned()))
        .is_some_and(|cert| cert.names_any(&tls.feeds));
    if !allowed {
        refuse("client-not-allowed");
        return Err("the client certificate names none of this adapter's feeds");
    }
    Ok(stream)
}

async fn connection<S: AsyncRead + AsyncWrite>(
    stream: S,
    state: &AdapterState,
    limits: MllpLimits,
) -> Result<(), &'static str> {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    loop {
        let frame = read_frame(&mut read, limits).await?;
        let replies = match frame {
            Frame::Closed => return Ok(()),
            Frame::TooLarge => vec![nak_unread(&format!(
                "the message is over {} bytes, the most one frame may carry; it was not read",
                kinfold_hl7v2::MAX_MESSAGE_BYTES
            ))],
            Frame::Message(bytes) => answer(state, &bytes).await,
        };
        for reply in replies {
            let mut framed = Vec::with_capacity(reply.len() + 3);
            framed.push(START);
            framed.extend_from_slice(reply.as_bytes());
            framed.extend_from_slice(&[END, CARRIAGE_RETURN]);
            write
                .write_all(&framed)
                .await
                .map_err(|_| "the sender went away")?;
        }
    }
}

/// Reads one frame: waits for its start (at most the idle timeout), then reads it whole within
/// the frame timeout, keeping at most the largest message Kinfold reads.
async fn read_frame<R: AsyncBufReadExt + AsyncReadExt + Unpin>(
    read: &mut R,
    limits: MllpLimits,
) -> Result<Frame, &'static str> {
    let mut outside = 0;
    loop {
        let byte = match tokio::time::timeout(limits.idle_timeout, read.read_u8()).await {
            Err(_) => return Err("idle for too long"),
            Ok(Err(_)) => return Ok(Frame::Closed),
            Ok(Ok(byte)) => byte,
        };
        if byte == START {
            break;
        }
        outside += 1;
        if outside > MAX_OUTSIDE_FRAMES {
            return Err("too much sent outside any frame");
        }
    }
    // The body is read a buffer at a time, up to each end byte, keeping at most the largest
    // message Kinfold reads.
    let body = async {
        let mut body = Vec::new();
        let mut too_large = false;
        loop {
            let chunk = read.fill_buf().await.map_err(|_| "the frame was cut off")?;
            if chunk.is_empty() {
                return Err("the frame was cut off");
            }
            let end = chunk.iter().position(|&b| b == END);
            let take = end.unwrap_or(chunk.len());
            if !too_large {
                if body.len() + take > kinfold_hl7v2::MAX_MESSAGE_BYTES {
                    too_large = true;
                    body = Vec::new();
                } else {
                    body.extend_from_slice(&chunk[..take]);
                }
            }
            let found = end.is_some();
            read.consume(take + usize::from(found));
            if found {
                let next = read.read_u8().await.map_err(|_| "the frame was cut off")?;
                if next == CARRIAGE_RETURN {
                    break;
                }
                if !too_large {
                    body.extend_from_slice(&[END, next]);
                }
            }
        }
        Ok::<_, &'static str>(if too_large {
            Frame::TooLarge
        } else {
            Frame::Message(body)
        })
    };
    tokio::time::timeout(limits.frame_timeout, body)
        .await
        .map_err(|_| "a frame took too long")?
}

/// Each message in a frame, answered.
async fn answer(state: &AdapterState, bytes: &[u8]) -> Vec<String> {
    let text = kinfold_hl7v2::decode(bytes);
    let parts = kinfold_hl7v2::split_messages(&text);
    if parts.is_empty() {
        return vec![nak_unread("the frame holds no message (no MSH segment)")];
    }
    let mut replies = Vec::with_capacity(parts.len());
    for part in parts {
        replies.push(match Message::parse(part) {
            Err(error) => reply(None, AckCode::Reject, Some(&error)),
            Ok(message) => match store(state, &message, part).await {
                Ok((warnings, changed)) => {
                    let now = chrono::Utc::now().format("%Y%m%d%H%M%S%z").to_string();
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    kinfold_hl7v2::ack_with_warnings(
                        Some(&message),
                        &warnings,
                        // A resent message is stored once: the sender is told it was already.
                        (!changed).then_some(ALREADY_STORED),
                        ("KINFOLD", "AE"),
                        &now,
                        &id[..20],
                    )
                }
                Err((code, error)) => reply(Some(&message), code, Some(&error)),
            },
        });
    }
    replies
}

/// `MSA-3` of the acceptance of a message already stored (a resend): nothing was changed.
pub const ALREADY_STORED: &str = "already stored: unchanged";

/// Plans and applies one message; an error says whether it is a rejection or an error.
async fn store(
    state: &AdapterState,
    message: &Message<'_>,
    text: &str,
) -> Result<(Vec<Hl7Error>, bool), (AckCode, Hl7Error)> {
    let adt = ingest::hl7v2::read_adt(message, state.hl7_zone).map_err(|e| {
        let code = if e.segment.as_deref() == Some("MSH") {
            AckCode::Reject
        } else {
            AckCode::Error
        };
        (code, e)
    })?;
    let (code, event) = message.kind();
    let source = Source {
        kind: format!("HL7 v2 {code}^{event}"),
        door: "MLLP".into(),
        request_id: message.control_id().map(str::to_owned),
        origin: ingest::hl7v2::origin_of(message, text, state.hl7_zone),
    };
    let stored = state
        .queue
        .apply(adt.plan, source)
        .await
        .map_err(|e| located(&e))?;
    // A whole plan either is stored or fails above; a failed entry here would be a bug.
    match stored.entries.into_iter().find_map(Result::err) {
        Some(e) => Err(located(&e)),
        None => Ok((adt.warnings, stored.changed)),
    }
}

/// An adapter error as an HL7 error, located at the segment its entry came from.
fn located(error: &AdapterError) -> (AckCode, Hl7Error) {
    let api = error.to_api_error();
    let message = api
        .outcome
        .issue
        .first()
        .and_then(|i| i.diagnostics.clone())
        .unwrap_or_else(|| "the message could not be stored".into());
    let segment = match error {
        AdapterError::BadEntry { path, .. } if path.starts_with("Bundle.entry[1]") => Some("PV1"),
        AdapterError::BadEntry { .. } => Some("PID"),
        _ => None,
    };
    let error = Hl7Error {
        segment: segment.map(str::to_owned),
        sequence: None,
        field: None,
        message,
    };
    (AckCode::Error, error)
}

fn reply(message: Option<&Message<'_>>, code: AckCode, error: Option<&Hl7Error>) -> String {
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S%z").to_string();
    let id = uuid::Uuid::new_v4().simple().to_string();
    kinfold_hl7v2::ack(message, code, error, ("KINFOLD", "AE"), &now, &id[..20])
}

fn nak_unread(why: &str) -> String {
    let error = Hl7Error {
        segment: None,
        sequence: None,
        field: None,
        message: why.to_owned(),
    };
    reply(None, AckCode::Reject, Some(&error))
}
