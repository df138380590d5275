//! The routing cores wired together in memory: one [`IngestCore`] and its
//! [`ShardCore`]s, with the rings replaced by `Vec`s, the sockets by byte
//! buffers and the clock by a simulated one. It runs the same rules the
//! router runs, in the same order (ingest's items reach each shard in stream
//! order, each shard's control messages reach ingest in that shard's order),
//! with no executor, thread or socket: the monitor and request rules are
//! tested here in microseconds per case.
//!
//! What it leaves out is what the drivers add: socket reads and writes
//! (a session's output is taken whole at every [`MemRouter::run`]), ring
//! back-pressure, and the time a real core takes to see an item.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::ids::{Services, SessionId};
use crate::ingest::core::IngestCore;
use crate::link::ToShard;
use crate::metrics::Metrics;
use crate::proto::{frame, DecodeError, Message, Version};
use crate::session::client::reply_invoke_id;
use crate::session::frames::FrameBuffer;
use crate::session::server::CloseReason;
use crate::shard::core::ShardCore;
use crate::shard::outbox::{Cursor, Outbox, MAX_IOV};
use crate::status::PgStatus;

/// One client connection as the router sees it.
struct Client {
    shard: usize,
    /// Bytes sent by the client that its session has not taken yet (the
    /// frames after an OPEN_REQ wait until ingest registered the session).
    input: FrameBuffer,
    /// Bytes the router wrote to the client, not yet taken by the test.
    received: Vec<u8>,
    /// The session ended (its last output is in `received`).
    closed: Option<CloseReason>,
}

/// Ingest and the shards in one address space, driven step by step.
pub struct MemRouter {
    pub ingest: IngestCore<Vec<Vec<ToShard>>>,
    pub shards: Vec<ShardCore>,
    clients: BTreeMap<SessionId, Client>,
    /// The simulated clock.
    now: Instant,
    /// The upstream session's protocol version.
    upstream_version: Version,
    /// The PG status the upstream reports when it is (back) online.
    status: PgStatus,
    spare: Outbox,
    /// Events ingest sent each shard.
    events_to: Vec<u64>,
}

impl MemRouter {
    /// `config.runtime.shards` shards, the upstream online at the newest
    /// version with these peripherals (every shard knows the PG status, so
    /// sessions may open).
    pub fn new(config: Config, peripherals: &[u32]) -> MemRouter {
        let nr_shards = config.runtime.shards.max(1);
        let batch_size = config.runtime.batch_size;
        let call_max_age = Duration::from_secs(config.limits.call_max_age_secs);
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let status = PgStatus::online(peripherals.iter().map(|&p| (p, true)).collect());
        let links = (0..nr_shards).map(|_| Vec::new()).collect();
        let mut ingest = IngestCore::new(links, batch_size, metrics.clone(), call_max_age);
        ingest.set_request_limits(&config.requests);
        ingest.set_status(status.clone());
        let shards = (0..nr_shards)
            .map(|i| ShardCore::new(i, config.clone(), metrics.clone()))
            .collect();
        let mut router = MemRouter {
            ingest,
            shards,
            clients: BTreeMap::new(),
            now: Instant::now(),
            upstream_version: Version::MAX,
            status,
            spare: Outbox::default(),
            events_to: vec![0; nr_shards],
        };
        router.run();
        router
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Move the clock on and let every shard, and ingest's pending
    /// requests, check their timeouts.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        for shard in &mut self.shards {
            shard.tick(self.now);
        }
        self.ingest.expire_requests(self.now);
        self.ingest.expire_server_requests(self.now);
        self.run();
    }

    /// The upstream grants the router `services` (OPEN_CONF
    /// ServicesGranted): the request services among them become available
    /// to sessions that open from now on.
    pub fn upstream_grants(&mut self, services: Services) {
        self.status.upstream_services = services;
        self.ingest.set_status(self.status.clone());
        self.run();
    }

    /// The upstream session is open at `version` (OPEN_CONF at it): events
    /// come and requests go at that version from now on.
    pub fn upstream_opens_at(&mut self, version: Version) {
        self.upstream_version = version;
        self.ingest.upstream_version = version;
    }

    /// The request frames ingest sent the upstream since the last call.
    pub fn upstream_received(&mut self) -> Vec<Vec<u8>> {
        let bytes = std::mem::take(&mut self.ingest.to_upstream);
        let mut frames = Vec::new();
        let mut rest = &bytes[..];
        while let Ok((_, used)) = frame::parse(rest) {
            frames.push(rest[..used].to_vec());
            rest = &rest[used..];
        }
        frames
    }

    /// A client connects to `shard`; returns its session id (`None` when the
    /// shard refused it at once: too many connections not open yet).
    pub fn connect(&mut self, shard: usize) -> Option<SessionId> {
        let port = 40000 + self.clients.len() as u16;
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        let id = self.shards[shard].admit(peer, self.now)?;
        self.clients.insert(
            id,
            Client {
                shard,
                input: FrameBuffer::for_client(),
                received: Vec::new(),
                closed: None,
            },
        );
        Some(id)
    }

    /// Client `id` sends `message` encoded at `version`, then everything runs.
    pub fn send(&mut self, id: SessionId, version: Version, message: impl Into<Message>) {
        let frame = message
            .into()
            .to_frame(version)
            .expect("a test message encodes");
        self.send_raw(id, &frame);
    }

    /// Client `id` sends raw bytes (any split of frames), then everything runs.
    pub fn send_raw(&mut self, id: SessionId, bytes: &[u8]) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.input.extend(bytes);
        }
        self.run();
    }

    /// The upstream sends `message` (encoded at the upstream's version).
    pub fn upstream(&mut self, message: impl Into<Message>) {
        let frame = message
            .into()
            .to_frame(self.upstream_version)
            .expect("an upstream message encodes");
        self.upstream_raw(&frame)
            .expect("an upstream message ingest can route");
    }

    /// The upstream sends one whole frame: a reply goes to ingest's reply
    /// path, anything else is an event, as on the upstream link
    /// (`ClientCore::on_frame`). A frame ingest cannot route is reported
    /// (the real upstream session would be dropped).
    pub fn upstream_raw(&mut self, frame: &[u8]) -> Result<(), DecodeError> {
        let (parsed, _) = frame::parse(frame)?;
        let result = match reply_invoke_id(parsed.message_type, parsed.body)? {
            Some(invoke_id) => {
                self.ingest.on_reply(invoke_id, frame, self.now);
                Ok(())
            }
            None => self
                .ingest
                .push_frame(self.upstream_version, frame, self.now)
                .map(|_| ()),
        };
        self.run();
        result
    }

    /// The upstream session was lost (design §4.12), and later comes back.
    pub fn upstream_lost(&mut self) {
        self.ingest.upstream_lost(self.now);
        self.run();
    }

    pub fn upstream_back(&mut self) {
        self.ingest.upstream_back(self.status.clone(), self.now);
        self.run();
    }

    /// The client of session `id` goes away.
    pub fn disconnect(&mut self, id: SessionId) {
        if let Some(client) = self.clients.get_mut(&id) {
            if client.closed.is_none() {
                client.closed = Some(CloseReason::Disconnected);
                let shard = client.shard;
                self.shards[shard].remove(id, CloseReason::Disconnected);
            }
        }
        self.run();
    }

    /// How many events ingest has sent `shard` (it sends a shard only the
    /// events some session there wants).
    pub fn events_sent_to(&self, shard: usize) -> u64 {
        self.events_to[shard]
    }

    /// Whether session `id` has ended, and why.
    pub fn closed(&self, id: SessionId) -> Option<CloseReason> {
        self.clients.get(&id).and_then(|c| c.closed)
    }

    /// The whole frames client `id` received since the last call.
    pub fn received(&mut self, id: SessionId) -> Vec<Vec<u8>> {
        let Some(client) = self.clients.get_mut(&id) else {
            return Vec::new();
        };
        let mut frames = Vec::new();
        let mut at = 0;
        while let Ok(len) = frame::check(&client.received[at..]) {
            frames.push(client.received[at..at + len].to_vec());
            at += len;
        }
        client.received.drain(..at);
        frames
    }

    /// Run until nothing moves: ingest's staged items to the shards, the
    /// shards' control messages to ingest, waiting client bytes into their
    /// sessions, and every session's output out to its client.
    pub fn run(&mut self) {
        loop {
            let mut moved = false;
            for (index, shard) in self.shards.iter_mut().enumerate() {
                let items = std::mem::take(&mut self.ingest.links[index]);
                moved |= !items.is_empty();
                for item in items {
                    self.events_to[index] += matches!(item, ToShard::Event(_)) as u64;
                    shard.on_ingest(item);
                }
                shard.end_batch();
            }
            self.ingest.count_published();
            for shard in &mut self.shards {
                for item in shard.to_ingest.drain(..) {
                    moved = true;
                    self.ingest.on_control(item, self.now);
                }
            }
            moved |= self.feed_clients();
            moved |= self.deliver();
            if !moved {
                return;
            }
        }
    }

    /// Client bytes into sessions that are not waiting for ingest.
    fn feed_clients(&mut self) -> bool {
        let mut moved = false;
        for (&id, client) in &mut self.clients {
            let shard = &mut self.shards[client.shard];
            let waiting = client.input.buffered();
            if waiting == 0 || client.closed.is_some() || shard.is_held(id) {
                continue;
            }
            shard.on_bytes(id, &mut client.input, self.now);
            moved |= client.input.buffered() != waiting;
        }
        moved
    }

    /// Every session's output to its client; sessions that are closing
    /// (or cut) end once their output is out, as the writer ends them.
    fn deliver(&mut self) -> bool {
        let mut moved = false;
        for (&id, client) in &mut self.clients {
            if client.closed.is_some() {
                continue;
            }
            let shard = &mut self.shards[client.shard];
            let killed = shard.sessions.kill.contains(&id);
            if !killed {
                while shard.take_output(id, &mut self.spare) {
                    moved = true;
                    copy_out(&self.spare, &mut client.received);
                    self.spare.clear();
                    shard.written(id);
                }
            }
            if let Some(reason) = shard.closing_reason(id) {
                moved = true;
                client.closed = Some(reason);
                shard.remove(id, reason);
            }
        }
        for shard in &mut self.shards {
            let sessions = &mut shard.sessions;
            sessions.delivered.clear();
            sessions.wake.clear();
            sessions.activated.clear();
            sessions.kill.clear();
        }
        moved
    }
}

/// Append everything `out` holds to `to`, as the writer would send it.
fn copy_out(out: &Outbox, to: &mut Vec<u8>) {
    let mut at = Cursor::default();
    while !out.done(at) {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let n = out.fill(at, &mut iov);
        let mut written = 0;
        for slice in &iov[..n] {
            to.extend_from_slice(slice);
            written += slice.len();
        }
        at = out.advance(at, written);
    }
}
