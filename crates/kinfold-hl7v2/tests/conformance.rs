//! Real HL7 v2 ADT messages from other projects (`tests/conformance/hl7v2/`, sources and
//! licences in its `SOURCES.md`): every one reads, field by field, and every input that
//! crashed or hung other parsers is answered without a panic.

use std::path::PathBuf;

use kinfold_hl7v2::{AckCode, Message, ack, decode, split_messages};

fn folder(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("KINFOLD_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
        })
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no messages in {}", dir.display());
    files
}

/// The ACK (if the text reads) or NAK (if not) that the text would get.
fn answer(text: &str) -> String {
    match Message::parse(text) {
        Ok(m) => ack(
            Some(&m),
            AckCode::Accept,
            None,
            ("K", "AE"),
            "20260101000000",
            "A",
        ),
        Err(e) => ack(
            None,
            AckCode::Reject,
            Some(&e),
            ("K", "AE"),
            "20260101000000",
            "A",
        ),
    }
}

#[test]
fn every_real_adt_message_reads_with_its_type_control_id_and_patient() {
    for (name, bytes) in folder("hl7v2") {
        let text = decode(&bytes);
        let messages = split_messages(&text);
        assert_eq!(messages.len(), 1, "{name}");
        let m = Message::parse(messages[0]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let (code, event) = m.kind();
        assert_eq!(code, "ADT", "{name}");
        assert!(event.starts_with('A'), "{name}: {event}");
        assert!(m.control_id().is_some_and(|c| !c.is_empty()), "{name}");
        assert!(m.version().is_some_and(|v| v.starts_with('2')), "{name}");
        assert_eq!(m.count("PID"), 1, "{name}");
        let reply = ack(
            Some(&m),
            AckCode::Accept,
            None,
            ("KINFOLD", "AE"),
            "20260101000000",
            "A1",
        );
        let reply = Message::parse(&reply).expect("the ACK reads");
        assert_eq!(reply.raw("MSA", 2), m.control_id(), "{name}");
    }
}

#[test]
fn names_in_other_scripts_and_escapes_are_decoded() {
    let files = folder("hl7v2");
    let (_, bytes) = files
        .iter()
        .find(|(n, _)| n.ends_with("nhapi_issue191_ADT_A08_v23_nonascii_ZBE.hl7"))
        .expect("the non-ASCII example");
    let text = decode(bytes);
    let m = Message::parse(&text).expect("reads");
    let all: String = m
        .segments()
        .map(|(name, _)| name.to_owned())
        .collect::<Vec<_>>()
        .join(",");
    assert!(all.ends_with("ZBE"), "the Z-segment is kept: {all}");
    assert!(text.contains('ö') || text.contains('ü'));
}

#[test]
fn inputs_that_broke_other_parsers_are_answered_not_panicked_on() {
    for (name, bytes) in folder("hl7v2/malformed") {
        let text = decode(&bytes);
        for part in split_messages(&text).into_iter().chain([text.as_ref()]) {
            let reply = answer(part);
            assert!(Message::parse(&reply).is_ok(), "{name}: the answer reads");
        }
    }
}

#[test]
fn fuzz_found_inputs_are_answered_with_a_readable_reply() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-found");
    for entry in std::fs::read_dir(&dir).expect("fuzz-found inputs") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        let text = decode(&bytes);
        for part in split_messages(&text).into_iter().chain([text.as_ref()]) {
            let reply = answer(part);
            if let Err(e) = Message::parse(&reply) {
                panic!(
                    "{}: the reply {reply:?} does not read: {e:?}",
                    path.display()
                );
            }
        }
    }
}
