//! The fake CTI Server (PG) of the tests, on a std `TcpListener` on
//! 127.0.0.1 port 0, served by one thread.
//!
//! * [`FakePg::start`] — standard: each connection the router opens is
//!   answered (OPEN_REQ with OPEN_CONF: All Events granted, peripheral
//!   [`PID`] online; HEARTBEAT_REQ; CLOSE_REQ), and the test writes the event
//!   stream with [`FakePg::send`];
//! * [`FakePg::scripted`] — each accepted connection is handed to a script
//!   with its index (0, 1, 2, …) as a [`FakeConn`]; the connection closes
//!   when the script returns.
//!
//! Either way every OPEN_REQ read is recorded ([`FakePg::opens`]). Dropping
//! the fake stops its thread and joins it.
//!
//! [`FakePg::start_tls`] / [`FakePg::scripted_tls`] are the same fakes
//! speaking TLS (a rustls server): the handshake runs as the first frame is
//! read, and a failed one ends the connection (its script sees EOF).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::group::PeripheralEntry;
use ctirouter::proto::msg::{CloseConf, HeartbeatConf, OpenConf, OpenReq, SystemEvent};
use ctirouter::proto::{DecodeOptions, Message, MessageBody, Version};

use crate::frames::{be32, frame_type};
use crate::{v24, PID, PT};

/// What the fake shares with the connection its thread serves.
#[derive(Clone, Default)]
struct Shared {
    stop: Arc<AtomicBool>,
    opens: Arc<Mutex<Vec<(Instant, OpenReq)>>>,
    /// The current connection of a standard fake, for [`FakePg::send`].
    writer: Arc<Mutex<Option<Wire>>>,
    /// A standard fake answered an OPEN_REQ.
    opened: Arc<AtomicBool>,
}

/// A connection's write side: the socket, or the socket through rustls.
struct Wire {
    stream: TcpStream,
    tls: Option<Arc<Mutex<rustls::ServerConnection>>>,
}

impl Wire {
    fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(tls) = &self.tls else {
            return (&self.stream).write_all(bytes);
        };
        let mut tls = tls.lock().unwrap();
        tls.writer().write_all(bytes)?;
        while tls.wants_write() {
            tls.write_tls(&mut &self.stream)?;
        }
        Ok(())
    }
}

/// One accepted connection of the fake, as its script sees it.
pub struct FakeConn {
    /// The socket (on a TLS fake, ciphertext: use [`FakeConn::send`]).
    pub stream: TcpStream,
    tls: Option<Arc<Mutex<rustls::ServerConnection>>>,
    buf: Vec<u8>,
    /// The OPEN_REQ of this connection (read by [`FakeConn::expect_open`]).
    pub open: Option<OpenReq>,
    /// The peer closed the connection (or it failed).
    pub eof: bool,
    shared: Shared,
}

impl FakeConn {
    /// The fake is being dropped: scripts stop waiting.
    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// The next whole frame, `None` on timeout, EOF or the fake stopping.
    pub fn read_frame(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.buf.len() >= 8 {
                let len = 8 + be32(&self.buf, 0) as usize;
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stopping() || self.eof {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(50))))
                .ok()?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return None;
                }
                Ok(n) if self.tls.is_some() => {
                    if !self.take_ciphertext(&chunk[..n]) {
                        self.eof = true;
                        return None;
                    }
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    self.eof = true;
                    return None;
                }
            }
        }
    }

    /// Ciphertext read on a TLS fake: into rustls, its plaintext into the
    /// buffer, its handshake records and alerts out. False when the TLS
    /// session failed (or was closed).
    fn take_ciphertext(&mut self, mut ciphertext: &[u8]) -> bool {
        let Some(tls) = &self.tls else {
            return true;
        };
        let mut tls = tls.lock().unwrap();
        while !ciphertext.is_empty() {
            if tls.read_tls(&mut ciphertext).is_err() {
                return false;
            }
            let processed = tls.process_new_packets();
            while tls.wants_write() && tls.write_tls(&mut &self.stream).is_ok() {}
            if processed.is_err() {
                return false;
            }
            let mut plain = [0u8; 16 * 1024];
            loop {
                match tls.reader().read(&mut plain) {
                    Ok(0) => return false,
                    Ok(n) => self.buf.extend_from_slice(&plain[..n]),
                    Err(_) => break,
                }
            }
        }
        true
    }

    /// Read the OPEN_REQ (decoded at its own version); it is recorded.
    pub fn expect_open(&mut self) -> OpenReq {
        let frame = self
            .read_frame(Duration::from_secs(5))
            .expect("an OPEN_REQ");
        assert_eq!(frame_type(&frame), msg::OPEN_REQ, "first frame is OPEN_REQ");
        self.record_open(&frame)
    }

    fn record_open(&mut self, frame: &[u8]) -> OpenReq {
        let body = &frame[8..];
        let version = Version::new(OpenReq::peek_version(body).unwrap()).expect("a valid version");
        let req =
            OpenReq::decode_body(body, version, DecodeOptions::STRICT).expect("OPEN_REQ decodes");
        self.open = Some(req.clone());
        self.shared
            .opens
            .lock()
            .unwrap()
            .push((Instant::now(), req.clone()));
        req
    }

    /// Write `bytes` (errors ignored: the router may be gone).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.wire().write_all(bytes);
    }

    /// OPEN_CONF (All Events, healthy, peripheral [`PID`]) then the peripheral SYSTEM_EVENT.
    pub fn accept_open(&mut self, version: Version) {
        self.accept_open_granting(version, service::ALL_EVENTS);
    }

    /// [`FakeConn::accept_open`] granting `services`.
    pub fn accept_open_granting(&mut self, version: Version, services: u32) {
        let invoke_id = self.open.as_ref().map_or(1, |r| r.invoke_id);
        let conf = Message::from(OpenConf {
            invoke_id,
            services_granted: services,
            peripheral_online: 1,
            peripheral_type: PT,
            num_peripherals: Some(1),
            peripherals: vec![PeripheralEntry {
                peripheral_id: Some(PID),
                multiline_agent_control: Some(0),
            }],
            session_type: 1,
            ..Default::default()
        });
        self.send(&conf.to_frame(version).unwrap());
        let online = Message::from(SystemEvent {
            system_event_id: 3,
            system_event_arg1: PID,
            event_device_type: 0xFFFF,
            ..Default::default()
        });
        self.send(&online.to_frame(version).unwrap());
    }

    /// Answer heartbeats (and CLOSE_REQ) until EOF or `timeout`; returns the
    /// number of HEARTBEAT_REQs answered.
    pub fn serve_heartbeats(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut answered = 0;
        while let Some(frame) = self.read_frame(deadline.saturating_duration_since(Instant::now()))
        {
            let invoke_id = be32(&frame, 8);
            match frame_type(&frame) {
                msg::HEARTBEAT_REQ => {
                    self.send(
                        &Message::from(HeartbeatConf { invoke_id })
                            .to_frame(Version::MAX)
                            .unwrap(),
                    );
                    answered += 1;
                }
                msg::CLOSE_REQ => {
                    let conf = Message::from(CloseConf { invoke_id });
                    self.send(&conf.to_frame(Version::MAX).unwrap());
                    return answered;
                }
                _ => {}
            }
        }
        answered
    }

    fn wire(&self) -> Wire {
        Wire {
            stream: self.stream.try_clone().expect("clone the fake PG's socket"),
            tls: self.tls.clone(),
        }
    }

    /// The standard fake's service of one connection: [`FakePg::send`]
    /// writes to it; OPEN_REQ gets OPEN_CONF (All Events granted, PGStatus
    /// 0, peripheral [`PID`] online, no SYSTEM_EVENT), HEARTBEAT_REQ and
    /// CLOSE_REQ their confirmations; until EOF or the fake stops.
    pub fn serve_standard(&mut self) {
        *self.shared.writer.lock().unwrap() = Some(self.wire());
        while !self.eof && !self.stopping() {
            let Some(frame) = self.read_frame(Duration::from_millis(20)) else {
                continue;
            };
            let t = frame_type(&frame);
            let invoke_id = be32(&frame, 8);
            let reply: Option<Message> = match t {
                msg::OPEN_REQ => {
                    self.record_open(&frame);
                    Some(
                        OpenConf {
                            invoke_id,
                            services_granted: service::ALL_EVENTS,
                            monitor_id: 0,
                            pg_status: 0,
                            icm_central_controller_time: 1_704_067_200,
                            peripheral_online: 1,
                            peripheral_type: PT,
                            agent_state: 0,
                            department_id: 0,
                            session_type: 1,
                            num_peripherals: Some(1),
                            peripherals: vec![PeripheralEntry {
                                peripheral_id: Some(PID),
                                multiline_agent_control: Some(0),
                            }],
                            ..Default::default()
                        }
                        .into(),
                    )
                }
                msg::HEARTBEAT_REQ => Some(HeartbeatConf { invoke_id }.into()),
                msg::CLOSE_REQ => Some(CloseConf { invoke_id }.into()),
                _ => None,
            };
            if let Some(reply) = reply {
                let bytes = reply.to_frame(v24()).unwrap();
                if let Some(s) = self.shared.writer.lock().unwrap().as_ref() {
                    let _ = s.write_all(&bytes);
                }
                if t == msg::OPEN_REQ {
                    self.shared.opened.store(true, Ordering::Release);
                }
            }
        }
    }
}

/// A fake CTI Server on 127.0.0.1 (see the module's doc).
pub struct FakePg {
    pub addr: SocketAddr,
    shared: Shared,
    /// The OPEN_REQs read, with when each arrived.
    pub opens: Arc<Mutex<Vec<(Instant, OpenReq)>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakePg {
    /// The standard fake: answers the router's upstream session and sends
    /// what the test writes with [`FakePg::send`].
    pub fn start() -> FakePg {
        Self::scripted(|_, conn| conn.serve_standard())
    }

    /// A fake CTI Server that grants what it is asked for (at v24), answers
    /// HEARTBEAT_REQ and CLOSE_REQ (then closes), and every other request
    /// with the replies `answer` gives it (the request's InvokeID as the
    /// router sent it, the request decoded strictly at v24; a request that
    /// does not decode fails the fake's thread).
    pub fn answering(
        mut answer: impl FnMut(u32, &Message) -> Vec<Message> + Send + 'static,
    ) -> FakePg {
        Self::scripted(move |_, conn| {
            let open = conn.expect_open();
            conn.accept_open_granting(v24(), open.services_requested);
            while !conn.stopping() && !conn.eof {
                let Some(frame) = conn.read_frame(Duration::from_millis(50)) else {
                    continue;
                };
                let invoke_id = be32(&frame, 8);
                let replies: Vec<Message> = match frame_type(&frame) {
                    msg::HEARTBEAT_REQ => vec![HeartbeatConf { invoke_id }.into()],
                    msg::CLOSE_REQ => {
                        conn.send(
                            &Message::from(CloseConf { invoke_id })
                                .to_frame(v24())
                                .unwrap(),
                        );
                        return;
                    }
                    _ => match ctirouter::proto::decode_frame(&frame, v24(), DecodeOptions::STRICT)
                    {
                        Ok((request, _)) => answer(invoke_id, &request),
                        Err(e) => panic!("the router sent an undecodable request: {e}"),
                    },
                };
                for reply in replies {
                    conn.send(&reply.to_frame(v24()).unwrap());
                }
            }
        })
    }

    /// Each accepted connection is handed to `script` with its index; the
    /// connection closes when the script returns.
    pub fn scripted(script: impl FnMut(usize, &mut FakeConn) + Send + 'static) -> FakePg {
        Self::serve(None, script)
    }

    /// [`FakePg::start`] over TLS with `config` (see [`crate::tls::Pki`]).
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> FakePg {
        Self::scripted_tls(config, |_, conn| conn.serve_standard())
    }

    /// [`FakePg::scripted`] over TLS with `config`.
    pub fn scripted_tls(
        config: Arc<rustls::ServerConfig>,
        script: impl FnMut(usize, &mut FakeConn) + Send + 'static,
    ) -> FakePg {
        Self::serve(Some(config), script)
    }

    fn serve(
        tls: Option<Arc<rustls::ServerConfig>>,
        mut script: impl FnMut(usize, &mut FakeConn) + Send + 'static,
    ) -> FakePg {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake PG");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Shared::default();
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut index = 0;
                while !shared.stop.load(Ordering::Acquire) {
                    let stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        Err(_) => return,
                    };
                    stream.set_nonblocking(false).unwrap();
                    let _ = stream.set_nodelay(true);
                    let tls = tls.as_ref().map(|config| {
                        let tls = rustls::ServerConnection::new(config.clone())
                            .expect("a TLS session for the fake PG");
                        Arc::new(Mutex::new(tls))
                    });
                    let mut conn = FakeConn {
                        stream,
                        tls,
                        buf: Vec::new(),
                        open: None,
                        eof: false,
                        shared: shared.clone(),
                    };
                    script(index, &mut conn);
                    index += 1;
                }
            })
        };
        FakePg {
            addr,
            opens: shared.opens.clone(),
            shared,
            thread: Some(thread),
        }
    }

    /// Wait until a standard fake has answered the router's OPEN_REQ.
    pub fn wait_open(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.shared.opened.load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "the router never opened its upstream session with the fake PG"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Send one event (encoded at v24) to the router (standard fake).
    pub fn send(&self, m: impl Into<Message>) {
        let frame = m.into().to_frame(v24()).expect("encodable event");
        self.send_raw(&frame);
    }

    /// Send raw bytes to the router (standard fake).
    pub fn send_raw(&self, bytes: &[u8]) {
        let w = self.shared.writer.lock().unwrap();
        let s = w
            .as_ref()
            .expect("the router is not connected to the fake PG");
        s.write_all(bytes)
            .expect("write to the router's upstream socket");
    }

    /// OPEN_REQs read so far.
    pub fn nr_opens(&self) -> usize {
        self.opens.lock().unwrap().len()
    }
}

impl Drop for FakePg {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(s) = self.shared.writer.lock().unwrap().as_ref() {
            let _ = s.stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
