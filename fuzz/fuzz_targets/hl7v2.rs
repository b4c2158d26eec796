//! The HL7 v2 reader on any bytes: a message or a located error, never a panic, and whatever
//! is read can be answered with an ACK or NAK that itself reads.
#![no_main]

use kinfold_hl7v2::{AckCode, Message, ack, decode, split_messages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = decode(data);
    for part in split_messages(&text).into_iter().chain([text.as_ref()]) {
        let reply = match Message::parse(part) {
            Ok(m) => {
                let _ = (m.kind(), m.control_id(), m.value("PID", 5, 1, 1, 1));
                ack(Some(&m), AckCode::Accept, None, ("K", "AE"), "20260101000000", "A")
            }
            Err(e) => ack(None, AckCode::Reject, Some(&e), ("K", "AE"), "20260101000000", "A"),
        };
        assert!(Message::parse(&reply).is_ok(), "every answer reads: {reply:?}");
    }
});
