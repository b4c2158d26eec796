//! HL7 v2 messages as hospital EPRs send them (ADT from A&E, versions 2.3 to 2.8): parsed,
//! their text decoded, batches split, and each answered with an ACK or a NAK that says what
//! was wrong and where.
//!
//! Reading is lazy and copies nothing: a message is its text cut into segments (CR, LF or CR
//! LF between them, a UTF-8 byte order mark dropped), and a field, repetition, component or
//! subcomponent is found by splitting on the message's own separators only when asked for.
//! The `hl7-parser` crate was tried first: it builds every segment's whole tree up front
//! (13,000 messages a second here, against a target of 30,000), treats LF-separated files as one
//! segment unless told otherwise, and mis-decodes escapes beside non-ASCII text. Escape
//! sequences are decoded by [`unescape`], by byte position, so that text in any script next to
//! an escape is never split.
//!
//! Invariants: no I/O; every input gives a message or an [`Hl7Error`], never a panic (a fuzz
//! target checks).

mod ack;
mod escape;

pub use ack::{AckCode, ack, ack_with_warnings};
pub use escape::unescape;

/// Why a message cannot be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Hl7Error {
    /// The segment at fault (`MSH`, `PID`), if known.
    pub segment: Option<String>,
    /// Its position in the message, from 1.
    pub sequence: Option<usize>,
    /// The field at fault, from 1.
    pub field: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl Hl7Error {
    fn whole(message: impl Into<String>) -> Self {
        Self {
            segment: None,
            sequence: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error at one field of one segment.
    pub fn at(segment: &str, sequence: usize, field: usize, message: impl Into<String>) -> Self {
        Self {
            segment: Some(segment.to_owned()),
            sequence: Some(sequence),
            field: Some(field),
            message: message.into(),
        }
    }
}

/// A parsed message: its segments, and the separators its `MSH` declares.
#[derive(Debug, Clone)]
pub struct Message<'m> {
    text: &'m str,
    segments: Vec<&'m str>,
    separators: [char; 5],
}

/// The largest message Kinfold reads (1 MiB): an ADT message is a few kilobytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

impl<'m> Message<'m> {
    /// Parses one message. `MSH` must come first with its encoding characters; segments may be
    /// separated by CR, LF or CR LF; a leading byte order mark is ignored. Every segment must
    /// start with a three-letter name.
    pub fn parse(text: &'m str) -> Result<Self, Hl7Error> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Hl7Error::whole(format!(
                "the message is {} bytes; at most {MAX_MESSAGE_BYTES} are read",
                text.len()
            )));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = text.trim_end_matches(['\r', '\n', ' ']);
        if !text.starts_with("MSH") {
            return Err(Hl7Error::whole(
                "the message does not start with an MSH segment",
            ));
        }
        let mut declared = text[3..].chars();
        let mut separators = ['|', '^', '~', '\\', '&'];
        for slot in &mut separators {
            *slot = declared.next().unwrap_or('\r');
        }
        let distinct = separators
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct < 5
            || separators
                .iter()
                .any(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || c.is_control())
        {
            return Err(Hl7Error::at(
                "MSH",
                1,
                2,
                "MSH-1 and MSH-2 must give five distinct separator characters (|^~\\&)",
            ));
        }
        let segments: Vec<&str> = text
            .split(['\r', '\n'])
            .filter(|s| !s.trim().is_empty())
            .collect();
        for (n, segment) in segments.iter().enumerate() {
            let name = segment.get(..3).unwrap_or("");
            let named = name.len() == 3
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && segment[3..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == separators[0]);
            if !named {
                return Err(Hl7Error {
                    segment: None,
                    sequence: Some(n + 1),
                    field: None,
                    message: format!(
                        "segment {} does not start with a segment name and a field separator",
                        n + 1
                    ),
                });
            }
        }
        let message = Self {
            text,
            segments,
            separators,
        };
        for field in [9, 10, 12] {
            if message.raw("MSH", field).is_none_or(str::is_empty) {
                return Err(Hl7Error::at(
                    "MSH",
                    1,
                    field,
                    format!("MSH-{field} is required"),
                ));
            }
        }
        Ok(message)
    }

    /// The whole text of the message (byte order mark and trailing line breaks dropped).
    pub fn text(&self) -> &'m str {
        self.text
    }

    /// The segments, in order: (name, position from 1).
    pub fn segments(&self) -> impl Iterator<Item = (&'m str, usize)> + '_ {
        self.segments
            .iter()
            .enumerate()
            .map(|(n, s)| (&s[..3], n + 1))
    }

    /// How many segments have this name.
    pub fn count(&self, segment: &str) -> usize {
        self.segments
            .iter()
            .filter(|s| s.starts_with(segment))
            .count()
    }

    /// The raw (still escaped) text of a field of the first segment with this name. Fields
    /// are numbered as HL7 numbers them: `MSH-9` is the message type.
    pub fn raw(&self, segment: &str, field: usize) -> Option<&'m str> {
        self.raw_n(segment, 1, field)
    }

    /// As [`Message::raw`], in the `n`th segment with this name (from 1).
    pub fn raw_n(&self, segment: &str, n: usize, field: usize) -> Option<&'m str> {
        let found = self
            .segments
            .iter()
            .filter(|s| s.get(..3) == Some(segment))
            .nth(n.checked_sub(1)?)?;
        if field == 0 {
            return None;
        }
        if segment == "MSH" {
            // MSH-1 is the field separator itself, so MSH-2 is the first text after it.
            return match field {
                1 => found.get(3..3 + self.separators[0].len_utf8()),
                _ => found.split(self.separators[0]).nth(field - 1),
            };
        }
        found.split(self.separators[0]).nth(field)
    }

    /// A decoded value: segment, field, repetition, component and subcomponent (each from 1),
    /// with escape sequences decoded. `None` when absent or empty.
    pub fn value(
        &self,
        segment: &str,
        field: usize,
        repetition: usize,
        component: usize,
        subcomponent: usize,
    ) -> Option<String> {
        self.value_n(segment, 1, field, repetition, component, subcomponent)
    }

    /// As [`Message::value`], in the `n`th segment with this name (from 1).
    pub fn value_n(
        &self,
        segment: &str,
        n: usize,
        field: usize,
        repetition: usize,
        component: usize,
        subcomponent: usize,
    ) -> Option<String> {
        let raw = self.raw_n(segment, n, field)?;
        let [
            _,
            component_separator,
            repetition_separator,
            _,
            subcomponent_separator,
        ] = self.separators;
        let raw = raw
            .split(repetition_separator)
            .nth(repetition.checked_sub(1)?)?;
        let raw = raw
            .split(component_separator)
            .nth(component.checked_sub(1)?)?;
        let raw = raw
            .split(subcomponent_separator)
            .nth(subcomponent.checked_sub(1)?)?;
        // `""` is HL7's explicit null: the sender says the value is empty (it clears what
        // was there), which reads as no value, not as two quotation marks.
        if raw == "\"\"" {
            return None;
        }
        let decoded = unescape(raw, self.separators());
        (!decoded.is_empty()).then_some(decoded)
    }

    /// How many repetitions a field has (0 when empty).
    pub fn repetitions(&self, segment: &str, field: usize) -> usize {
        self.repetitions_n(segment, 1, field)
    }

    /// As [`Message::repetitions`], in the `n`th segment with this name (from 1).
    pub fn repetitions_n(&self, segment: &str, n: usize, field: usize) -> usize {
        self.raw_n(segment, n, field)
            .filter(|r| !r.is_empty())
            .map_or(0, |r| r.split(self.separators[2]).count())
    }

    /// The separators in use: field, component, repetition, escape, subcomponent.
    pub fn separators(&self) -> [char; 5] {
        self.separators
    }

    /// `MSH-10`, the message control id, by which a resent message is known.
    pub fn control_id(&self) -> Option<&'m str> {
        self.raw("MSH", 10)
    }

    /// `MSH-9` as (message code, trigger event), e.g. (`ADT`, `A01`).
    pub fn kind(&self) -> (String, String) {
        (
            self.value("MSH", 9, 1, 1, 1).unwrap_or_default(),
            self.value("MSH", 9, 1, 2, 1).unwrap_or_default(),
        )
    }

    /// `MSH-12`, the HL7 version (`2.4`).
    pub fn version(&self) -> Option<String> {
        self.value("MSH", 12, 1, 1, 1)
    }
}

/// A message's bytes as text: UTF-8 when they are (a byte order mark dropped), otherwise
/// ISO 8859-1, the other character set A&E systems here send (`MSH-18` `8859/1`).
pub fn decode(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(bytes.iter().copied().map(char::from).collect()),
    }
}

/// Splits a file or stream of messages into its messages: a batch (`FHS`/`BHS` ... `BTS`/`FTS`)
/// or messages one after another. Returns each message's text, from its `MSH` to the next.
pub fn split_messages(text: &str) -> Vec<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut starts: Vec<usize> = Vec::new();
    let mut ends_of_batch: Vec<usize> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive(['\r', '\n']) {
        if line.starts_with("MSH") {
            starts.push(offset);
        } else if ["FHS", "BHS", "BTS", "FTS"]
            .iter()
            .any(|s| line.starts_with(s))
        {
            ends_of_batch.push(offset);
        }
        offset += line.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let next = starts.get(i + 1).copied().unwrap_or(text.len());
            let end = ends_of_batch
                .iter()
                .copied()
                .find(|&e| e > start && e < next)
                .unwrap_or(next);
            &text[start..end]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A01: &str = "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A01^ADT_A01|MSG0001|P|2.4\rEVN|A01|20250611100000\rPID|1||9434765919^^^NHS^NH~H123^^^RXX^MR||Nowak-W\\E\\ójcik^Łucja^^^Miss||20210811|F\rPV1|1|E|AE^^^RXX||||||||||||||||V123\rZU1|custom|kept";

    #[test]
    fn an_adt_message_reads_field_by_field() {
        let m = Message::parse(A01).expect("parses");
        assert_eq!(m.kind(), ("ADT".into(), "A01".into()));
        assert_eq!(m.control_id(), Some("MSG0001"));
        assert_eq!(m.version().as_deref(), Some("2.4"));
        assert_eq!(m.raw("MSH", 1), Some("|"));
        assert_eq!(m.raw("MSH", 2), Some("^~\\&"));
        assert_eq!(m.value("PID", 3, 1, 1, 1).as_deref(), Some("9434765919"));
        assert_eq!(m.value("PID", 3, 2, 4, 1).as_deref(), Some("RXX"));
        assert_eq!(m.repetitions("PID", 3), 2);
        assert_eq!(
            m.value("PID", 5, 1, 1, 1).as_deref(),
            Some("Nowak-W\\ójcik")
        );
        assert_eq!(m.value("PID", 5, 1, 2, 1).as_deref(), Some("Łucja"));
        assert_eq!(m.count("ZU1"), 1, "a Z-segment is kept");
        assert_eq!(m.value("PID", 9, 1, 1, 1), None);
    }

    #[test]
    fn lf_crlf_and_a_byte_order_mark_read_the_same_as_cr() {
        let lf = A01.replace('\r', "\n");
        let crlf = A01.replace('\r', "\r\n");
        let bom = format!("\u{feff}{A01}\r\n");
        for text in [lf.as_str(), crlf.as_str(), bom.as_str()] {
            let m = Message::parse(text).expect("parses");
            assert_eq!(m.segments().count(), 5, "{text:?}");
            assert_eq!(m.value("PID", 5, 1, 2, 1).as_deref(), Some("Łucja"));
        }
    }

    #[test]
    fn what_cannot_be_a_message_is_refused_with_where() {
        assert!(Message::parse("").is_err());
        assert!(Message::parse("PID|1").is_err());
        let err = Message::parse("MSH|^^^^|A").unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("MSH"), Some(2)));
        let err =
            Message::parse("MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611||ADT^A01||P|2.4").unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("MSH"), Some(10)));
    }

    #[test]
    fn batches_split_into_their_messages() {
        let second = A01.replace("MSG0001", "MSG0002");
        let batch = format!("FHS|^~\\&|EPR\rBHS|^~\\&|EPR\r{A01}\r{second}\rBTS|2\rFTS|1\r");
        let messages = split_messages(&batch);
        assert_eq!(messages.len(), 2);
        let ids: Vec<_> = messages
            .iter()
            .map(|m| Message::parse(m).unwrap().control_id().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["MSG0001", "MSG0002"]);
        assert_eq!(split_messages(A01).len(), 1);
    }
}
