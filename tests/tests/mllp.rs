//! The A&E adapter's HL7 v2 feed over a real MLLP socket: every real ADT message is stored or
//! NAKed with where it went wrong, every input that broke other parsers is NAKed with the
//! connection still usable, a resend is stored once, an oversized frame is refused unread, and
//! a stalled connection is closed without touching another. What is stored is visible through
//! the gateway at once (G4, G5, G12).

mod common;

use std::time::Duration;

use common::{TestDemo, conformance_dir};
use kinfold_hl7v2::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(t: &TestDemo) -> TcpStream {
    let address = t
        .demo
        .info
        .mllp
        .get("ae")
        .expect("the A&E adapter takes MLLP");
    TcpStream::connect(address).await.expect("connects")
}

/// Sends one framed message and reads the framed reply.
async fn exchange(stream: &mut TcpStream, message: &[u8]) -> String {
    let mut framed = vec![0x0b];
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&framed).await.expect("sent");
    read_reply(stream).await
}

async fn read_reply(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let read = async {
        loop {
            let byte = stream.read_u8().await.expect("a reply");
            reply.push(byte);
            if reply.ends_with(&[0x1c, 0x0d]) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the reply comes");
    assert_eq!(reply.first(), Some(&0x0b), "framed");
    String::from_utf8(reply[1..reply.len() - 2].to_vec()).expect("UTF-8")
}

fn code_of(reply: &str) -> String {
    let m = Message::parse(reply).unwrap_or_else(|e| panic!("the reply reads: {e:?}: {reply:?}"));
    m.raw("MSA", 1).unwrap_or("").to_owned()
}

fn files(folder: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(conformance_dir().join(folder))
        .expect("folder")
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
    files
}

#[tokio::test]
async fn every_real_message_is_stored_or_nakked_and_bad_input_leaves_the_connection_usable() {
    let t = TestDemo::start(1).await;
    let mut stream = connect(&t).await;
    let mut accepted = 0;
    let mut warned = Vec::new();
    for (name, bytes) in files("hl7v2") {
        let reply = exchange(&mut stream, &bytes).await;
        match code_of(&reply).as_str() {
            "AA" => {
                accepted += 1;
                let m = Message::parse(&reply).expect("reads");
                if m.count("ERR") > 0 {
                    // Taken with a value left out: each warning says what and where.
                    assert_eq!(
                        m.value("ERR", 4, 1, 1, 1).as_deref(),
                        Some("W"),
                        "{reply:?}"
                    );
                    assert!(m.value("ERR", 8, 1, 1, 1).is_some(), "{name}: {reply:?}");
                    warned.push(name.clone());
                }
            }
            "AE" | "AR" => {
                let m = Message::parse(&reply).expect("reads");
                assert!(m.count("ERR") == 1, "{name}: a NAK says why: {reply:?}");
                assert!(m.value("ERR", 8, 1, 1, 1).is_some(), "{name}: {reply:?}");
            }
            other => panic!("{name}: MSA-1 {other}"),
        }
    }
    assert_eq!(
        accepted, 16,
        "every real ADT message is taken (A01, A03, A04, A05, A08, A28, A31, A40)"
    );
    // The NHS ITK A28 and A31 examples give a date of birth in month 13: left out, with a
    // warning, the person still filed.
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(
        warned
            .iter()
            .all(|n| n.contains("A28") || n.contains("A31")),
        "{warned:?}"
    );

    let good = &files("hl7v2")
        .into_iter()
        .find(|(n, _)| n.ends_with("nhs-itk-v24_A01_example.hl7"))
        .expect("the A01 example")
        .1;
    for (name, bytes) in files("hl7v2/malformed") {
        let reply = exchange(&mut stream, &bytes).await;
        assert_ne!(code_of(&reply), "AA", "{name} is refused");
        let reply = exchange(&mut stream, good).await;
        assert_eq!(
            code_of(&reply),
            "AA",
            "after {name}, the connection still works"
        );
    }
    t.demo.shutdown().await;
}

#[tokio::test]
async fn a_stored_attendance_is_visible_through_the_gateway_and_a_resend_is_stored_once() {
    let t = TestDemo::start(1).await;
    let nhs = "9434765919";
    let message = format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A01^ADT_A01|MLLP-T1|P|2.4\rPID|1||{nhs}^^^NHS^NH||Nowak^Zofia||20190305|2\rPV1|1|E|AE^^^RXX||||||||||||||||V900|||||||||||||||||||||||||20250611093000+0100\rDG1|1||125605004^Fracture of bone^SCT\rOBX|1|CE|nai-considered^Non-accidental injury considered^KINFOLD-SG||Y"
    );
    let mut stream = connect(&t).await;
    assert_eq!(
        code_of(&exchange(&mut stream, message.as_bytes()).await),
        "AA"
    );
    let (status, found) = t
        .get(&t.gateway(&format!(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
        )))
        .await;
    assert_eq!(status, 200, "{found}");
    let id = found["entry"][0]["resource"]["id"]
        .as_str()
        .expect("a person")
        .to_owned();
    let (_, everything) = t
        .get(&t.gateway(&format!("/Patient/{id}/$everything")))
        .await;
    let encounter = common::resources(&everything)
        .into_iter()
        .find(|r| r["resourceType"] == "Encounter")
        .expect("the attendance is visible at once")
        .clone();
    assert_eq!(encounter["class"]["code"], "EMER");
    assert_eq!(encounter["meta"]["source"], "urn:kinfold:agency:ae");
    assert_eq!(encounter["meta"]["versionId"], "1");
    // G5: the ED safeguarding assessment is in the record the GP queries, not only in a letter.
    let considered = common::resources(&everything)
        .into_iter()
        .find(|r| r["code"]["coding"][0]["code"] == "nai-considered")
        .expect("the safeguarding assessment is visible");
    assert_eq!(considered["valueBoolean"], true);
    assert!(
        common::resources(&everything)
            .iter()
            .any(|r| r["resourceType"] == "Condition"
                && r["code"]["coding"][0]["code"] == "125605004"),
        "the diagnosis is visible"
    );

    // The EPR resends (it never saw the ACK): acknowledged again, stored once.
    assert_eq!(
        code_of(&exchange(&mut stream, message.as_bytes()).await),
        "AA"
    );
    let (_, again) = t.get(&t.adapter("ae", "/Encounter/visit-V900")).await;
    assert_eq!(again["meta"]["versionId"], "1", "no second version");
    t.demo.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_garbage_and_stalls_are_handled_per_connection() {
    // Long enough for a 2 MiB frame on a loaded machine; short enough to see a stall closed.
    let t = TestDemo::start_with(1, |o| o.mllp_frame_timeout = Duration::from_millis(2000)).await;
    let mut stream = connect(&t).await;
    // Over the 1 MiB message limit: refused without being kept, connection still usable.
    let big = format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A01|BIG|P|2.4\rNTE|1||{}",
        "x".repeat(2 * 1024 * 1024)
    );
    let reply = exchange(&mut stream, big.as_bytes()).await;
    assert_eq!(code_of(&reply), "AR", "{reply:?}");
    assert!(reply.contains("not read"), "{reply:?}");

    // A stalled frame: that connection is closed after the frame timeout.
    let mut stalled = connect(&t).await;
    stalled
        .write_all(&[0x0b, b'M', b'S', b'H'])
        .await
        .expect("sent");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut byte))
        .await
        .expect("closed within the timeout");
    assert!(matches!(closed, Ok(0) | Err(_)), "closed, not answered");

    // Garbage outside any frame: closed.
    let mut garbage = connect(&t).await;
    garbage.write_all(&vec![b'z'; 8192]).await.expect("sent");
    let closed = tokio::time::timeout(Duration::from_secs(5), garbage.read(&mut byte))
        .await
        .expect("closed");
    assert!(matches!(closed, Ok(0) | Err(_)));

    // The first connection is untouched by the others.
    let good = "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A04|OK1|P|2.4\rPID|1||9434765870^^^NHS||Kowalska^Ewa||20200101|F";
    assert_eq!(code_of(&exchange(&mut stream, good.as_bytes()).await), "AA");
    t.demo.shutdown().await;
}
