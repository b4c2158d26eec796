//! The answer to each message: an ACK (`MSA-1` = `AA`) when it was stored, or a NAK (`AE`,
//! `AR`) with an `ERR` segment saying what was wrong and where.

use crate::{Hl7Error, Message};

/// `MSA-1`, the acknowledgement code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// `AA`: accepted and stored (or stored before: a resent message).
    Accept,
    /// `AE`: read, but not stored because of an error in its content.
    Error,
    /// `AR`: rejected: not a message Kinfold can read, or not one it takes.
    Reject,
}

impl AckCode {
    fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// The acknowledgement of `message` (if it could be read at all), from Kinfold's adapter
/// `(application, facility)` at `now` (`YYYYMMDDHHMMSS`), with its own control id. With an
/// error, the `ERR` segment names its segment, position and field (`ERR-2`, and `ERR-1` for
/// senders on v2.3 and v2.4) and says what was wrong (`ERR-8`).
pub fn ack(
    message: Option<&Message<'_>>,
    code: AckCode,
    error: Option<&Hl7Error>,
    from: (&str, &str),
    now: &str,
    control_id: &str,
) -> String {
    let separators = ['|', '^', '~', '\\', '&'];
    let esc = |text: &str| escape(text, separators);
    // Values from the message are re-written in this reply's separators: the sender may use
    // others, and its raw text must never break the reply.
    let field = |segment: &str, n: usize| {
        message
            .and_then(|m| {
                m.raw(segment, n)
                    .map(|raw| transcode(raw, m.separators(), separators))
            })
            .unwrap_or_default()
    };
    let trigger = message.map(|m| m.kind().1).unwrap_or_default();
    let version = message
        .and_then(Message::version)
        .filter(|v| {
            v.starts_with("2.")
                && v.len() <= 8
                && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
        .unwrap_or_else(|| "2.4".into());
    let mut out = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{now}||ACK^{}^ACK|{}|P|{}\rMSA|{}|{}",
        esc(from.0),
        esc(from.1),
        field("MSH", 3),
        field("MSH", 4),
        esc(&trigger),
        esc(control_id),
        esc(&version),
        code.as_str(),
        field("MSH", 10),
    );
    if let Some(error) = error {
        let location = match (&error.segment, error.sequence, error.field) {
            (Some(segment), sequence, field) => format!(
                "{}^{}^{}",
                esc(segment),
                sequence.map(|s| s.to_string()).unwrap_or_default(),
                field.map(|f| f.to_string()).unwrap_or_default()
            ),
            _ => String::new(),
        };
        let (number, text) = match code {
            AckCode::Reject => ("200", "Unsupported message type"),
            _ if error.field.is_some() => ("102", "Data type error"),
            _ => ("207", "Application internal error"),
        };
        let text = if code == AckCode::Reject && error.segment.is_some() {
            ("100", "Segment sequence error").1
        } else {
            text
        };
        out.push_str(&format!(
            "\rERR|{location}^{number}&{text}&HL70357|{location}|{number}^{text}^HL70357|E||||{}",
            esc(&error.message)
        ));
    }
    out.push('\r');
    out
}

/// The `AA` of a message taken with values left out: one `ERR` of severity `W` per value,
/// naming where it was and why it was left out.
/// `note`, when given, is the acknowledgement's text (`MSA-3`), such as "already stored".
pub fn ack_with_warnings(
    message: Option<&Message<'_>>,
    warnings: &[Hl7Error],
    note: Option<&str>,
    from: (&str, &str),
    now: &str,
    control_id: &str,
) -> String {
    let mut out = ack(message, AckCode::Accept, None, from, now, control_id);
    let esc = |text: &str| escape(text, ['|', '^', '~', '\\', '&']);
    if let Some(note) = note
        && let Some(msa) = out.find("\rMSA|")
        && let Some(end) = out[msa + 1..].find('\r').map(|e| e + msa + 1)
    {
        out.insert_str(end, &format!("|{}", esc(note)));
    }
    for warning in warnings {
        let location = match (&warning.segment, warning.sequence, warning.field) {
            (Some(segment), sequence, field) => format!(
                "{}^{}^{}",
                esc(segment),
                sequence.map(|s| s.to_string()).unwrap_or_default(),
                field.map(|f| f.to_string()).unwrap_or_default()
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "ERR|{location}^102&Data type error&HL70357|{location}|102^Data type error^HL70357|W||||{}\r",
            esc(&warning.message)
        ));
    }
    out
}

/// A field's raw text in one message's separators, rewritten in another's: each leaf value
/// decoded, then escaped again, the structure kept.
fn transcode(raw: &str, from: [char; 5], to: [char; 5]) -> String {
    let [_, component, repetition, _, subcomponent] = from;
    raw.split(repetition)
        .map(|rep| {
            rep.split(component)
                .map(|comp| {
                    comp.split(subcomponent)
                        .map(|leaf| escape(&crate::unescape(leaf, from), to))
                        .collect::<Vec<_>>()
                        .join(&to[4].to_string())
                })
                .collect::<Vec<_>>()
                .join(&to[1].to_string())
        })
        .collect::<Vec<_>>()
        .join(&to[2].to_string())
}

/// Writes text safely inside a field: each separator becomes its escape sequence, and line
/// breaks become `\.br\`.
pub fn escape(text: &str, separators: [char; 5]) -> String {
    let [field, component, repetition, escape_char, subcomponent] = separators;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if c == escape_char => out.push_str("\\E\\"),
            c if c == field => out.push_str("\\F\\"),
            c if c == component => out.push_str("\\S\\"),
            c if c == repetition => out.push_str("\\R\\"),
            c if c == subcomponent => out.push_str("\\T\\"),
            '\r' | '\n' => out.push_str("\\.br\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A01: &str = "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A01^ADT_A01|MSG0001|P|2.4\rPID|1||9434765919^^^NHS^NH";

    #[test]
    fn values_left_out_are_warnings_on_an_accept() {
        let message = Message::parse(
            "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611||ADT^A01|M1|P|2.4\rPID|1||1^^^RXX||X||1965131215",
        )
        .expect("parses");
        let warning = Hl7Error::at(
            "PID",
            1,
            7,
            "PID-7 '1965131215' is not a date of birth: left out",
        );
        let reply = ack_with_warnings(
            Some(&message),
            &[warning],
            Some("already stored: unchanged"),
            ("KINFOLD", "AE"),
            "20250611",
            "A1",
        );
        let reply = Message::parse(&reply).expect("a reply that reads");
        assert_eq!(reply.value("MSA", 1, 1, 1, 1).as_deref(), Some("AA"));
        assert_eq!(reply.value("MSA", 2, 1, 1, 1).as_deref(), Some("M1"));
        assert_eq!(
            reply.value("MSA", 3, 1, 1, 1).as_deref(),
            Some("already stored: unchanged")
        );
        assert_eq!(reply.value("ERR", 2, 1, 1, 1).as_deref(), Some("PID"));
        assert_eq!(reply.value("ERR", 2, 1, 3, 1).as_deref(), Some("7"));
        assert_eq!(reply.value("ERR", 4, 1, 1, 1).as_deref(), Some("W"));
        assert!(
            reply
                .value("ERR", 8, 1, 1, 1)
                .is_some_and(|t| t.contains("left out"))
        );
    }

    #[test]
    fn an_accepted_message_is_acknowledged_with_its_control_id() {
        let m = Message::parse(A01).unwrap();
        let text = ack(
            Some(&m),
            AckCode::Accept,
            None,
            ("KINFOLD", "AE"),
            "20250611100001",
            "ACK0001",
        );
        let reply = Message::parse(&text).expect("the ACK is itself a message");
        assert_eq!(reply.kind(), ("ACK".into(), "A01".into()));
        assert_eq!(reply.raw("MSA", 1), Some("AA"));
        assert_eq!(reply.raw("MSA", 2), Some("MSG0001"));
        assert_eq!(reply.raw("MSH", 5), Some("EPR"), "sent back to the sender");
        assert_eq!(reply.count("ERR"), 0);
    }

    #[test]
    fn a_nak_says_what_and_where_with_separators_escaped() {
        let m = Message::parse(A01).unwrap();
        let error = Hl7Error::at("PID", 2, 7, "PID-7 '2021|02|30' is not a date");
        let text = ack(
            Some(&m),
            AckCode::Error,
            Some(&error),
            ("KINFOLD", "AE"),
            "20250611100001",
            "ACK0002",
        );
        let reply = Message::parse(&text).unwrap();
        assert_eq!(reply.raw("MSA", 1), Some("AE"));
        assert_eq!(reply.value("ERR", 2, 1, 1, 1).as_deref(), Some("PID"));
        assert_eq!(reply.value("ERR", 2, 1, 3, 1).as_deref(), Some("7"));
        assert_eq!(reply.value("ERR", 4, 1, 1, 1).as_deref(), Some("E"));
        assert_eq!(
            reply.value("ERR", 8, 1, 1, 1).as_deref(),
            Some("PID-7 '2021|02|30' is not a date")
        );
    }

    #[test]
    fn an_unreadable_message_is_rejected_without_a_control_id() {
        let error = Hl7Error::whole("the message does not start with an MSH segment");
        let text = ack(
            None,
            AckCode::Reject,
            Some(&error),
            ("KINFOLD", "AE"),
            "20250611100001",
            "ACK0003",
        );
        let reply = Message::parse(&text).unwrap();
        assert_eq!(reply.raw("MSA", 1), Some("AR"));
        assert_eq!(reply.raw("MSA", 2), Some(""));
    }
}
