//! `ctirouter record` → file → `serve --replay`: sessions receive exactly
//! the recorded event frames (at their own version), paced by the recorded
//! times × speed; a truncated file serves every good record, then the
//! router reports the byte offset and keeps serving.

use crate::BIN;
use std::fs::File;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::msg;
use ctirouter::proto::msg::AgentStateEvent;
use ctirouter::proto::transcode::{transcode, Transcoded};
use ctirouter::proto::{Message, Version};
use ctirouter::tools::recording::{Header, Reader, Writer, HEADER_LEN, RECORD_HEADER_LEN};
use testkit::*;

const V24: Version = Version::MAX;

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

/// Every frame of a recording, with its time.
fn read_recording(path: &str) -> (Header, Vec<(Duration, Vec<u8>)>) {
    let mut reader =
        Reader::new(File::open(path).expect("the recording exists")).expect("a valid header");
    let mut records = Vec::new();
    while let Some(r) = reader.next_record().expect("a well-formed recording") {
        records.push((r.at, r.frame.to_vec()));
    }
    (reader.header(), records)
}

/// Open an All Events session on a replaying router. (A session that opens
/// before ingest has started may still see the initial offline status.)
fn open(addr: std::net::SocketAddr, version: Version) -> Client {
    let mut client = Client::connect(addr);
    client.open(&OpenSpec::new(version, 0x10).client("replay-test", b""));
    client
}

/// `n` frames, or panic after `timeout`.
fn take(client: &mut Client, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    while frames.len() < n {
        match client.next(deadline.saturating_duration_since(Instant::now())) {
            Recv::Frame(_, f) => frames.push(f),
            other => panic!("after {} of {n} frames: {other:?}", frames.len()),
        }
    }
    frames
}

fn at_version(frame: &[u8], version: Version) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match transcode(frame, V24, version, &mut out).expect("recorded frames parse") {
        Transcoded::Written(_) => Some(out),
        Transcoded::NotInVersion => None,
    }
}

fn replay_toml(path: &str, speed: f64, sessions: usize) -> String {
    format!("[replay]\npath = \"{path}\"\nspeed = {speed:?}\nwait_for_sessions = {sessions}\n")
}

#[test]
fn record_then_replay_serves_the_recorded_bytes() {
    let pg = sim_pg(BIN, &["--calls-per-sec", "40", "--speed", "3"]);
    let file = TempFile::new(".ctirec");
    let mut rec = Proc::spawn(
        BIN,
        &[
            "record",
            "--upstream",
            &pg.addr().to_string(),
            "--out",
            file.path(),
        ],
    );
    assert!(
        rec.wait_stderr("session open", Duration::from_secs(5)),
        "{}",
        rec.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(1200));
    rec.signal(libc::SIGINT);
    assert!(
        rec.wait_exit(Duration::from_secs(5)).success(),
        "{}",
        rec.stderr_text()
    );
    assert!(
        rec.stderr_text().contains("CLOSE_CONF received"),
        "{}",
        rec.stderr_text()
    );

    let (header, records) = read_recording(file.path());
    assert_eq!(header.version, V24);
    assert_eq!(
        frame_type(&records[0].1),
        msg::OPEN_CONF,
        "OPEN_CONF comes first"
    );
    assert!(
        records.windows(2).all(|w| w[0].0 <= w[1].0),
        "times never go back"
    );
    let events: Vec<Vec<u8>> = records[1..].iter().map(|(_, f)| f.clone()).collect();
    assert!(events.len() >= 30, "only {} events recorded", events.len());
    assert!(events.iter().all(|f| frame_type(f) != msg::HEARTBEAT_CONF));

    // As fast as possible, once both sessions are open.
    let router = router(BIN, &replay_toml(file.path(), 0.0, 2), &[]);
    let mut c24 = open(router.addr(), V24);
    let mut c19 = open(router.addr(), v(19));
    let got24 = take(&mut c24, events.len(), Duration::from_secs(10));
    assert!(
        got24 == events,
        "v24 session: the replay differs from the recording"
    );
    let want19: Vec<Vec<u8>> = events.iter().filter_map(|f| at_version(f, v(19))).collect();
    let got19 = take(&mut c19, want19.len(), Duration::from_secs(10));
    assert!(
        got19 == want19,
        "v19 session: the replay differs from the recording"
    );
    c24.expect_no_reply(Duration::from_millis(300));
    // The status follows the recorded OPEN_CONF: online, peripheral 5000.
    let mut late = Client::connect(router.addr());
    let conf = late.open(&OpenSpec::new(V24, 0x10).client("late", b""));
    assert_eq!(conf.pg_status, 0);
    assert_eq!(conf.peripherals[0].peripheral_id, Some(5000));
    eprintln!("{} recorded frames replayed byte for byte", events.len());
}

/// A recording of `n` AGENT_STATE_EVENTs `gap` apart.
fn synthetic(path: &str, n: usize, gap: Duration) -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            Message::from(AgentStateEvent {
                peripheral_id: 5000,
                agent_state: 3,
                agent_id: Some(format!("{}", 1000 + i).into()),
                ..Default::default()
            })
            .to_frame(V24)
            .unwrap()
        })
        .collect();
    let mut w = Writer::new(File::create(path).unwrap(), Header::now(V24)).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_frame(gap * i as u32, f).unwrap();
    }
    frames
}

#[test]
fn replay_is_paced_by_the_recorded_times_times_speed() {
    let file = TempFile::new(".ctirec");
    // 21 events 50 ms apart: 1 s as recorded, 0.5 s at speed 2.
    let frames = synthetic(file.path(), 21, Duration::from_millis(50));
    let router = router(BIN, &replay_toml(file.path(), 2.0, 1), &[]);
    let mut client = open(router.addr(), V24);
    let first = take(&mut client, 1, Duration::from_secs(5));
    let started = Instant::now();
    let rest = take(&mut client, frames.len() - 1, Duration::from_secs(5));
    let took = started.elapsed();
    assert_eq!(first[0], frames[0]);
    assert_eq!(rest, frames[1..]);
    eprintln!("1 s of recording replayed at speed 2 in {took:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn truncated_recording_serves_the_good_records_then_reports_the_offset() {
    let file = TempFile::new(".ctirec");
    let frames = synthetic(file.path(), 10, Duration::ZERO);
    let good_len: usize = HEADER_LEN
        + frames
            .iter()
            .map(|f| RECORD_HEADER_LEN + f.len())
            .sum::<usize>();
    // Half of an eleventh record.
    let mut bytes = std::fs::read(file.path()).unwrap();
    assert_eq!(bytes.len(), good_len);
    let mut partial = Vec::new();
    ctirouter::tools::recording::encode_record(Duration::ZERO, &frames[0], &mut partial);
    bytes.extend_from_slice(&partial[..partial.len() / 2]);
    std::fs::write(file.path(), &bytes).unwrap();

    let router = router(BIN, &replay_toml(file.path(), 0.0, 1), &[]);
    let mut client = open(router.addr(), V24);
    let got = take(&mut client, frames.len(), Duration::from_secs(5));
    assert_eq!(got, frames);
    let needle = format!("byte {good_len}");
    assert!(
        router.wait_stderr(&needle, Duration::from_secs(5)),
        "no error naming {needle}:\n{}",
        router.stderr_text()
    );
    // The router goes on serving its sessions.
    client.heartbeat(Duration::from_secs(2));
}
