//! Support for the black-box request tests (`versions`, `failover`, `load`):
//! a fake CTI Server on [`FakePg::scripted`] that opens at a chosen version,
//! records every request the router proxies to it and answers each by a
//! rule the test gives ([`Answer`]), and writes whatever the test hands it
//! ([`ProxyPg::send`]) on its current connection, in order with its answers.
//! Also the router's config for such a fake, and the barrier every session
//! sees in stream order ([`ProxyPg::barrier`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::msg;
use ctirouter::proto::msg::{CloseConf, HeartbeatConf, SystemEvent};
use ctirouter::proto::{decode_frame, DecodeOptions, Message, Version};
use testkit::*;

/// What the fake does with one request.
pub enum Answer {
    /// Send these (encoded at the fake's version) right away.
    Reply(Vec<Message>),
    /// Nothing (yet).
    Silent,
    /// Close the connection without a word (the upstream is lost).
    Drop,
    /// Answer nothing more on this connection, heartbeats included, and
    /// keep it open until the router closes it.
    Hang,
}

/// One request the fake read: on which of its connections (0, 1, …), the
/// whole frame as the router wrote it.
#[derive(Clone)]
pub struct Seen {
    pub conn: usize,
    pub frame: Vec<u8>,
}

impl Seen {
    pub fn invoke_id(&self) -> u32 {
        be32(&self.frame, 8)
    }
}

enum Command {
    Send(Vec<u8>),
}

/// The answering rule: (connection index, the request decoded at the
/// fake's version) → what to do.
type Rule = dyn FnMut(usize, &Message) -> Answer + Send;

/// A fake CTI Server that answers the router's proxied requests.
pub struct ProxyPg {
    pub version: Version,
    seen: Arc<Mutex<Vec<Seen>>>,
    commands: mpsc::Sender<Command>,
    /// Commands written so far.
    done: Arc<AtomicUsize>,
    queued: AtomicUsize,
    /// Dropped last: stops and joins the fake's thread.
    pub fake: FakePg,
}

impl ProxyPg {
    /// Opens every connection at `version`, granting what the router asks for.
    pub fn start(
        version: Version,
        rule: impl FnMut(usize, &Message) -> Answer + Send + 'static,
    ) -> ProxyPg {
        Self::start_gated(version, None, rule)
    }

    /// Like [`ProxyPg::start`], but the OPEN_REQ of each connection from
    /// the `gate.0`th on (0, 1, …) waits for `gate.1` (at most 10 s) before
    /// it is confirmed: meanwhile the router's upstream is not open.
    pub fn start_gated(
        version: Version,
        gate: Option<(usize, Arc<AtomicBool>)>,
        rule: impl FnMut(usize, &Message) -> Answer + Send + 'static,
    ) -> ProxyPg {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let (commands, inbox) = mpsc::channel::<Command>();
        let mut rule: Box<Rule> = Box::new(rule);
        let fake = {
            let (seen, done) = (seen.clone(), done.clone());
            FakePg::scripted(move |index, conn| {
                let gate = gate
                    .as_ref()
                    .filter(|(from, _)| index >= *from)
                    .map(|(_, gate)| &**gate);
                serve(index, conn, version, gate, &mut *rule, &seen, &inbox, &done)
            })
        };
        ProxyPg {
            version,
            seen,
            commands,
            done,
            queued: AtomicUsize::new(0),
            fake,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.fake.addr
    }

    /// Every request read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `n` requests have been read (panics after `timeout`).
    pub fn wait_seen(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "the fake CTI Server read {} requests of {n} within {timeout:?}",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Write `m` (at the fake's version) on the current connection, after
    /// everything handed over before; returns once it is written.
    pub fn send(&self, m: impl Into<Message>) {
        self.send_raw(m.into().to_frame(self.version).expect("encodable"));
    }

    pub fn send_raw(&self, frame: Vec<u8>) {
        self.commands.send(Command::Send(frame)).unwrap();
        let n = self.queued.fetch_add(1, Ordering::SeqCst) + 1;
        let deadline = Instant::now() + WAIT;
        while self.done.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the fake CTI Server did not write within {WAIT:?} (no connection?)"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A SYSTEM_EVENT(SYS_TEXT_FYI) with `text` and PGStatus 0: it reaches
    /// every open session, in order with the replies sent before it.
    pub fn barrier(&self, text: &str) {
        self.send(SystemEvent {
            pg_status: 0,
            system_event_id: SYS_TEXT_FYI,
            event_device_type: 0xFFFF,
            text: Some(text.into()),
            ..Default::default()
        });
    }
}

/// SystemEventID SYS_TEXT_FYI (docs/protocol.md §5.8): changes no status.
pub const SYS_TEXT_FYI: u32 = 5;

/// Whether `frame` is the barrier `text` ([`ProxyPg::barrier`]) at `version`.
pub fn is_barrier(frame: &[u8], version: Version, text: &str) -> bool {
    frame_type(frame) == msg::SYSTEM_EVENT
        && matches!(
            decode_strict(frame, version),
            Message::SystemEvent(e) if e.system_event_id == SYS_TEXT_FYI
                && e.text.as_ref().is_some_and(|t| t.as_bytes() == text.as_bytes())
        )
}

#[allow(clippy::too_many_arguments)]
fn serve(
    index: usize,
    conn: &mut FakeConn,
    version: Version,
    gate: Option<&AtomicBool>,
    rule: &mut Rule,
    seen: &Mutex<Vec<Seen>>,
    inbox: &mpsc::Receiver<Command>,
    done: &AtomicUsize,
) {
    let open = conn.expect_open();
    if let Some(gate) = gate {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gate.load(Ordering::SeqCst) && Instant::now() < deadline && !conn.stopping() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    conn.accept_open_granting(version, open.services_requested);
    let mut hung = false;
    while !conn.stopping() && !conn.eof {
        while let Ok(Command::Send(frame)) = inbox.try_recv() {
            conn.send(&frame);
            done.fetch_add(1, Ordering::SeqCst);
        }
        let Some(frame) = conn.read_frame(Duration::from_millis(10)) else {
            continue;
        };
        let invoke_id = be32(&frame, 8);
        let t = frame_type(&frame);
        if hung {
            if !matches!(t, msg::HEARTBEAT_REQ | msg::CLOSE_REQ) {
                seen.lock().unwrap().push(Seen { conn: index, frame });
            }
            continue;
        }
        let reply: Message = match t {
            msg::HEARTBEAT_REQ => HeartbeatConf { invoke_id }.into(),
            msg::CLOSE_REQ => {
                let conf = Message::from(CloseConf { invoke_id });
                conn.send(&conf.to_frame(version).unwrap());
                return;
            }
            _ => {
                seen.lock().unwrap().push(Seen {
                    conn: index,
                    frame: frame.clone(),
                });
                // A request that does not decode gets no answer: the test
                // decodes what was seen and says why.
                let Ok((request, _)) = decode_frame(&frame, version, DecodeOptions::STRICT) else {
                    continue;
                };
                match rule(index, &request) {
                    Answer::Reply(replies) => {
                        for reply in replies {
                            conn.send(&reply.to_frame(version).expect("encodable reply"));
                        }
                    }
                    Answer::Silent => {}
                    Answer::Drop => return,
                    Answer::Hang => hung = true,
                }
                continue;
            }
        };
        conn.send(&reply.to_frame(version).unwrap());
    }
}

/// The router's config: the upstream at `sides`, opened at `version`,
/// heartbeats every 200 ms, and `extra` (client entries, `[requests]`).
pub fn config(sides: &[SocketAddr], version: Version, extra: &str) -> String {
    format!(
        "{}version = {}\n\n{extra}",
        upstream_toml(sides, 200),
        version.number()
    )
}

/// A `[[clients]]` entry with these services.
pub fn client_entry(client_id: &str, services: &[&str]) -> String {
    let list: Vec<String> = services.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[clients]]\nclient_id = \"{client_id}\"\nservices = [{}]\n\n",
        list.join(", ")
    )
}

/// Open `spec` once the router's upstream is up (PGStatus without
/// CTI_SERVER_OFFLINE; retried for up to 10 s); the frames after OPEN_CONF
/// stay in the client's log.
pub fn open_when_up(
    addr: SocketAddr,
    spec: &OpenSpec,
) -> (Client, ctirouter::proto::msg::OpenConf) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = Client::connect(addr);
        let conf = client.open(spec);
        if conf.pg_status & 0x08 == 0 {
            return (client, conf);
        }
        assert!(Instant::now() < deadline, "the upstream never came up");
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A desktop's OPEN: Client Events + Client Control at `version` for agent
/// `agent_id` on `instrument`, ClientID `client_id`, PeripheralID [`PID`].
pub fn desk_spec(version: Version, client_id: &str, agent_id: &str, instrument: &str) -> OpenSpec {
    OpenSpec {
        agent_id: Some(agent_id.into()),
        agent_instrument: Some(instrument.into()),
        peripheral_id: PID,
        ..OpenSpec::new(
            version,
            ctirouter::proto::constants::service::CLIENT_EVENTS
                | ctirouter::proto::constants::service::CLIENT_CONTROL,
        )
        .client(client_id, b"")
    }
}

/// Wait (bounded by [`WAIT`]) for the barrier `text` on `client`; returns
/// the frames before it since the cursor (the cursor moves past it).
pub fn until_barrier(client: &mut Client, text: &str) -> Vec<Vec<u8>> {
    let start = client.cursor;
    let version = client.version;
    let i = client.expect(&format!("barrier {text:?}"), |f| {
        is_barrier(f, version, text)
    });
    client.log[start..i].to_vec()
}
