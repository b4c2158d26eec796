//! What the feed benchmarks share: test-range NHS numbers and one MLLP exchange.

use kinfold_fhir::NhsNumber;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `n`th NHS number from the 943 test range whose check digit is not 10.
pub fn nhs_number(n: u32) -> NhsNumber {
    let mut k = n;
    loop {
        let digits = format!("943{:06}", k % 1_000_000);
        let mut first = [0u8; 9];
        for (slot, byte) in first.iter_mut().zip(digits.bytes()) {
            *slot = byte - b'0';
        }
        if let Some(number) = NhsNumber::from_first_nine(first) {
            return number;
        }
        k += 1_000_000 - 1;
    }
}

/// An HL7 v2 message in its MLLP frame.
pub fn framed(text: &str) -> Vec<u8> {
    let mut framed = vec![0x0b];
    framed.extend_from_slice(text.as_bytes());
    framed.extend_from_slice(&[0x1c, 0x0d]);
    framed
}

/// Sends one framed message and waits for its ACK: whether it was accepted (`AA`).
pub async fn exchange(stream: &mut Box<dyn kinfold_http::tls::Duplex>, framed: &[u8]) -> bool {
    stream.write_all(framed).await.expect("sent");
    // One message is outstanding per connection, so whatever arrives is this ACK: read it in
    // as few calls as it came in, as a sending EPR would (a read per byte cost the machine
    // more than the adapter's parsing).
    let mut reply = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while !reply.ends_with(&[0x1c, 0x0d]) {
        let n = stream.read(&mut chunk).await.expect("reply");
        assert!(n > 0, "the adapter closed the connection");
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).contains("MSA|AA|")
}
