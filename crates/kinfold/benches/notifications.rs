//! Notifications under load (issue 27): children's A&E attendances over MLLP into a running
//! demo (release build), each an infant's fracture that the rules tell three services about
//! (the GP practice, the health visitor, the hospital's paediatric liaison team; for these new
//! children the records name no GP or health visitor, so those two go to the area's
//! safeguarding lead, which is the same work).
//!
//!   cargo bench -p kinfold --bench notifications
//!
//! Prints Markdown rows for BENCHMARKS.md:
//! * Steady load: 100 attendances a second for 60 s (four connections, each sending every
//!   40 ms and waiting for its ACK). For each, the time from sending it to its notifications
//!   being durable, which is when an inbox shows them: the gateway's database is watched every
//!   2 ms for the notification cursor passing the attendance's event (the cursor moves in the
//!   transaction that keeps the notifications). Median and p99; every notification counted.
//! * A burst: 2,000 attendances sent as fast as 16 connections are acknowledged; the time from
//!   the first sent until every notification is durable, as events and notifications a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{exchange, framed, nhs_number};
use kinfold_store::Store;

mod common;

const RATE_CONNECTIONS: usize = 4;
const INTERVAL: Duration = Duration::from_millis(40);
const SECONDS: u64 = 60;
const BURST: usize = 2000;
const BURST_CONNECTIONS: usize = 16;
/// Each attendance's notifications: GP, health visitor, liaison.
const PER_EVENT: usize = 3;

fn attendance(n: u32) -> Vec<u8> {
    let nhs = nhs_number(500_000 + n);
    framed(&format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261203100000||ADT^A04^ADT_A01|NOTE-{n}|P|2.4\rPID|1||{nhs}^^^NHS^NH||Bench^Infant{n}||20260305|2\rPV1|1|E|AE^^^RXX||||||||||||||||NV{n}|||||||||||||||||||||||||20261203093000+0000\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT",
        nhs = nhs.as_str()
    ))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// When each attendance was sent, by its message control id.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

/// Watches the gateway's database until `count` attendances' notifications are durable:
/// the time each took from its sending.
async fn watch(store: &Store, sent: &Sent, from_seq: i64, count: usize) -> Vec<f64> {
    let mut last = from_seq;
    let mut waiting: BTreeMap<i64, String> = BTreeMap::new();
    let mut taken = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(SECONDS * 4);
    while taken.len() < count {
        for event in store.events_after(last, 1000).await.expect("events") {
            last = event.seq;
            let payload: serde_json::Value =
                serde_json::from_str(&event.payload).expect("an event is JSON");
            if let Some(id) = payload["sourceMessageId"].as_str()
                && id.starts_with("NOTE-")
            {
                waiting.insert(event.seq, id.to_owned());
            }
        }
        let cursor = store.notify_cursor().await.expect("cursor");
        let now = Instant::now();
        while let Some(entry) = waiting.first_entry() {
            if *entry.key() > cursor {
                break;
            }
            let id = entry.remove();
            let at = sent.lock().expect("sent").get(&id).copied();
            if let Some(at) = at {
                taken.push(now.duration_since(at).as_secs_f64() * 1000.0);
            }
        }
        assert!(Instant::now() < deadline, "notifications made in time");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    taken
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = kinfold::demo::DemoOptions::new(dir.path().to_path_buf(), 0);
    options.population.families = 1;
    let demo = kinfold::demo::start(options)
        .await
        .expect("the demo starts");
    let address = demo.info.mllp["ae"].clone();
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("gateway.db").display()
    ))
    .await
    .expect("the gateway's database");
    // The demo's own families first: every event it sent read into notifications.
    let mut start_seq = 0;
    loop {
        let last = store
            .events_after(start_seq, 1_000_000)
            .await
            .expect("events")
            .last()
            .map_or(start_seq, |e| e.seq);
        let cursor = store.notify_cursor().await.expect("cursor");
        if last == start_seq && cursor >= last {
            break;
        }
        start_seq = last;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = store
        .notifications_between(0, i64::MAX, 1)
        .await
        .expect("count")
        .1;

    // Steady: 100 a second for 60 s.
    let sent: Sent = Arc::default();
    let per_connection = (SECONDS * 1000 / INTERVAL.as_millis() as u64) as u32;
    let mut senders = Vec::new();
    for c in 0..RATE_CONNECTIONS {
        let address = address.clone();
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            let mut stream = kinfold_http::tls::connect(&address, None)
                .await
                .expect("connects");
            // Spread the connections across the interval.
            tokio::time::sleep(INTERVAL / RATE_CONNECTIONS as u32 * c as u32).await;
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for k in 0..per_connection {
                tick.tick().await;
                let n = k * RATE_CONNECTIONS as u32 + c as u32;
                let message = attendance(n);
                sent.lock()
                    .expect("sent")
                    .insert(format!("NOTE-{n}"), Instant::now());
                assert!(exchange(&mut stream, &message).await, "accepted");
            }
        }));
    }
    let steady_count = per_connection as usize * RATE_CONNECTIONS;
    let steady_started = Instant::now();
    let taken = watch(&store, &sent, start_seq, steady_count).await;
    for sender in senders {
        sender.await.expect("sender");
    }
    let steady_seconds = steady_started.elapsed().as_secs_f64();
    let mut sorted = taken.clone();
    sorted.sort_by(f64::total_cmp);
    // Where the time goes: the gateway's own histogram of event arrival to notifications kept
    // (a diagnostic line for the reader, not a table row).
    if let Ok(response) = reqwest::get(format!("{}/metrics", demo.info.gateway)).await
        && let Ok(text) = response.text().await
    {
        for line in text
            .lines()
            .filter(|l| l.starts_with("kinfold_event_to_notification_seconds"))
        {
            eprintln!("diagnostic: {line}");
        }
    }
    let after_steady = store
        .notifications_between(0, i64::MAX, 1)
        .await
        .expect("count")
        .1;
    let made = usize::try_from(after_steady - before).unwrap_or(0);
    assert_eq!(
        made,
        steady_count * PER_EVENT,
        "every notification made, none twice"
    );

    // A burst.
    let burst_seq = store
        .events_after(0, 1_000_000)
        .await
        .expect("events")
        .last()
        .map_or(0, |e| e.seq);
    let burst_sent: Sent = Arc::default();
    let base = steady_count as u32;
    let burst_started = Instant::now();
    let mut senders = Vec::new();
    for c in 0..BURST_CONNECTIONS {
        let address = address.clone();
        let sent = burst_sent.clone();
        senders.push(tokio::spawn(async move {
            let mut stream = kinfold_http::tls::connect(&address, None)
                .await
                .expect("connects");
            for k in 0..BURST / BURST_CONNECTIONS {
                let n = base + (k * BURST_CONNECTIONS + c) as u32;
                sent.lock()
                    .expect("sent")
                    .insert(format!("NOTE-{n}"), Instant::now());
                assert!(exchange(&mut stream, &attendance(n)).await, "accepted");
            }
        }));
    }
    let burst_taken = watch(&store, &burst_sent, burst_seq, BURST).await;
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    for sender in senders {
        sender.await.expect("sender");
    }
    let after_burst = store
        .notifications_between(0, i64::MAX, 1)
        .await
        .expect("count")
        .1;
    assert_eq!(
        usize::try_from(after_burst - after_steady).unwrap_or(0),
        BURST * PER_EVENT,
        "every notification of the burst made, none twice"
    );
    let mut burst_sorted = burst_taken;
    burst_sorted.sort_by(f64::total_cmp);

    println!(
        "| steady load: {steady_count} attendances at 100 a second over {steady_seconds:.0} s; send to notifications durable (an inbox shows them) | median {:.1} ms, p99 {:.1} ms ({made} notifications, none lost or twice) | p99 ≤ 100 ms, nothing lost |",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99)
    );
    println!(
        "| a burst of {BURST} attendances over {BURST_CONNECTIONS} connections, first sent to every notification durable | {burst_seconds:.1} s: {:.0} events/s, {:.0} notifications/s (the last attendance's after {:.0} ms) | (reported) |",
        BURST as f64 / burst_seconds,
        (BURST * PER_EVENT) as f64 / burst_seconds,
        percentile(&burst_sorted, 1.0)
    );
}
