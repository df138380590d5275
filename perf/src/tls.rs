//! TLS for the swarm (`run --tls`): a throwaway CA and a server certificate
//! for 127.0.0.1 made with rcgen ([`Pki`]: PEM files in a temp directory of
//! the run's own, removed on drop, for the router's `[tls]`), the clients'
//! rustls configuration (ring, trusting that CA only), and [`Conn`]: one
//! session's mio socket, clear or with a rustls `ClientConnection`, read and
//! written the way the swarm batches — one socket read per batch, every
//! whole record of it decrypted in memory into the caller's buffer; one
//! vectored write of the records a flush makes.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{event, Interest, Registry, Token};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Ciphertext read from the socket beyond the plaintext room left in the
/// caller's buffer: a TLS record's worth (16 KiB of plaintext plus its
/// header, tag and padding), so one read usually fills the buffer.
pub const RECORD_SLACK: usize = 17 * 1024;

/// A throwaway CA and the router's certificate (for 127.0.0.1 and
/// localhost), as PEM files in a directory removed on drop.
pub struct Pki {
    dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn rcgen_error(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("TLS certificates: {what}: {e}")
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Pki {
    /// A new CA and a server certificate it signs, written under the temp
    /// dir.
    pub fn new() -> Result<Pki, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ctirouter-perf-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("router.pem"),
            key: dir.join("router.key"),
            dir,
        };
        let ca_key = KeyPair::generate().map_err(rcgen_error("CA key"))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error("CA"))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ctirouter-perf throwaway CA");
        let ca_cert = ca.self_signed(&ca_key).map_err(rcgen_error("CA"))?;
        write_file(&pki.ca, &ca_cert.pem())?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(rcgen_error("router key"))?;
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let mut params = CertificateParams::new(names).map_err(rcgen_error("router"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ctirouter under test");
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(rcgen_error("router"))?;
        write_file(&pki.cert, &cert.pem())?;
        write_file(&pki.key, &key.serialize_pem())?;
        Ok(pki)
    }

    /// The swarm's configuration: ring, TLS 1.2 and 1.3 with rustls's safe
    /// defaults (the router's), trusting this CA only, no client
    /// certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        client_config(&self.ca)
    }

    /// The `[tls]` section of the router's config: a TLS port on loopback
    /// (any free port, printed as `listening-tls ADDR`) with this
    /// certificate.
    pub fn router_section(&self) -> String {
        format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// rustls's *ring* provider (the router's; rustls marks it deprecated for
/// lacking post-quantum key exchange).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting the CA in PEM file `ca`.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let fail = |e: String| format!("TLS CA {}: {e}", ca.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| fail(format!("{e:?}")))? {
        let cert = cert.map_err(|e| fail(format!("{e:?}")))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the router's certificate is checked against: its address.
pub fn server_name(addr: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// A rustls client session on top of a socket.
struct Tls {
    conn: ClientConnection,
    /// Ciphertext read from the socket that rustls has not taken yet (the
    /// caller's buffer filled first), from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    /// The socket read end of file, or the server sent close_notify.
    closed: bool,
}

/// One session's connection: clear, or TLS.
pub struct Conn {
    stream: TcpStream,
    tls: Option<Box<Tls>>,
}

impl Conn {
    pub fn clear(stream: TcpStream) -> Conn {
        Conn { stream, tls: None }
    }

    /// A TLS client on `stream` (connecting); the handshake goes with the
    /// first writes and reads.
    pub fn tls(
        stream: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Conn> {
        let conn = ClientConnection::new(config, name)
            .map_err(|e| io::Error::other(format!("TLS client: {e}")))?;
        Ok(Conn {
            stream,
            tls: Some(Box::new(Tls {
                conn,
                pending: Vec::new(),
                pending_at: 0,
                closed: false,
            })),
        })
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// What the handshake agreed (`TLSv1_3 TLS13_AES_256_GCM_SHA384`);
    /// `None` in the clear or before the handshake is done.
    pub fn negotiated(&self) -> Option<String> {
        let conn = &self.tls.as_ref()?.conn;
        let version = conn.protocol_version()?;
        let suite = conn.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }

    /// As [`Conn::read`]; in the clear also the kernel's receive time of
    /// the bytes read (`clock::ReceiveTime::Kernel`: the socket has
    /// SO_TIMESTAMPNS on; `None` over TLS, or when the kernel gave none).
    pub fn read_stamped(
        &mut self,
        out: &mut [u8],
        cipher: &mut [u8],
    ) -> io::Result<(usize, Option<u64>)> {
        if self.tls.is_some() {
            return self.read(out, cipher).map(|n| (n, None));
        }
        crate::clock::recv_stamped(self.stream.as_raw_fd(), out)
    }

    /// Plaintext into `out`. Clear: one read. TLS: plaintext rustls holds,
    /// then ciphertext kept from the last read, then socket reads of (room
    /// in `out` + [`RECORD_SLACK`]) into `cipher`, each decrypted in memory,
    /// until `out` is full or the socket has no more. So `Ok(n)` with `n <
    /// out.len()` means what the socket had was taken (as a short read does
    /// in the clear), and `Ok(0)` is the end of the stream.
    pub fn read(&mut self, out: &mut [u8], cipher: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.read(out);
        };
        let result = tls_read(&mut self.stream, tls, out, cipher);
        // Handshake messages, alerts, key updates the records asked for.
        let flushed = flush_tls(&mut self.stream, &mut tls.conn);
        let n = result?;
        flushed?;
        if n > 0 || tls.closed {
            if n == 0 && tls.conn.is_handshaking() {
                return Err(io::Error::new(
                    ErrorKind::ConnectionAborted,
                    "TLS handshake failed: the server closed the connection",
                ));
            }
            return Ok(n);
        }
        Err(ErrorKind::WouldBlock.into())
    }

    /// Write plaintext `buf`: what rustls takes is made into records and
    /// written (TLS), or written as is (clear). `WouldBlock` when nothing
    /// was taken.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.write(buf);
        };
        loop {
            let taken = tls.conn.writer().write(buf)?;
            let written = flush_tls(&mut self.stream, &mut tls.conn)?;
            if taken > 0 {
                return Ok(taken);
            }
            if written == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
        }
    }

    /// Write the records rustls still holds (TLS; nothing in the clear).
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            flush_tls(&mut self.stream, &mut tls.conn)?;
        }
        Ok(())
    }
}

/// What [`Conn::read`] does for a TLS session (before it flushes).
fn tls_read(
    stream: &mut TcpStream,
    tls: &mut Tls,
    out: &mut [u8],
    cipher: &mut [u8],
) -> io::Result<usize> {
    let mut n = drain(tls, out)?;
    if tls.pending_at < tls.pending.len() {
        let pending = std::mem::take(&mut tls.pending);
        let used = feed(tls, &pending[tls.pending_at..], out, &mut n);
        tls.pending = pending;
        tls.pending_at += used?;
        if tls.pending_at < tls.pending.len() {
            return Ok(n); // `out` is full
        }
        tls.pending.clear();
        tls.pending_at = 0;
    }
    while n < out.len() && !tls.closed {
        let want = (out.len() - n + RECORD_SLACK).min(cipher.len());
        let got = match stream.read(&mut cipher[..want]) {
            Ok(0) => {
                tls.closed = true;
                // rustls sees the end of file too (a close without
                // close_notify then reads as UnexpectedEof).
                tls.conn.read_tls(&mut io::empty())?;
                drain(tls, &mut out[n..]).map(|k| n += k)?;
                break;
            }
            Ok(got) => got,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        };
        let used = feed(tls, &cipher[..got], out, &mut n)?;
        if used < got {
            tls.pending.clear();
            tls.pending.extend_from_slice(&cipher[used..got]);
            tls.pending_at = 0;
            return Ok(n); // `out` is full
        }
        if got < want {
            break; // a short read: the socket is drained
        }
    }
    Ok(n)
}

/// Give ciphertext `data` to rustls record by record, moving the plaintext
/// into `out` from `*n`, until all of `data` is taken or `out` is full;
/// returns the bytes of `data` taken.
fn feed(tls: &mut Tls, data: &[u8], out: &mut [u8], n: &mut usize) -> io::Result<usize> {
    let mut used = 0;
    while used < data.len() && *n < out.len() {
        let mut rest = &data[used..];
        let took = tls.conn.read_tls(&mut rest)?;
        if took == 0 {
            break; // close_notify came: nothing more is read
        }
        used += took;
        if let Err(e) = tls.conn.process_new_packets() {
            return Err(tls_error(&tls.conn, e));
        }
        *n += drain(tls, &mut out[*n..])?;
    }
    Ok(used)
}

/// Move the plaintext rustls holds into `out`; notes a close.
fn drain(tls: &mut Tls, out: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        match tls.conn.reader().read(&mut out[n..]) {
            Ok(0) => {
                tls.closed = true; // close_notify
                break;
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                tls.closed = true; // closed without close_notify
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A TLS error as the session's end: "TLS handshake failed: …" while
/// handshaking (an untrusted certificate, a refused version), "TLS: …"
/// after.
fn tls_error(conn: &ClientConnection, e: rustls::Error) -> io::Error {
    let what = if conn.is_handshaking() {
        "TLS handshake failed"
    } else {
        "TLS"
    };
    io::Error::new(ErrorKind::InvalidData, format!("{what}: {e}"))
}

/// Write the records rustls holds while the socket takes them; the bytes
/// written.
fn flush_tls(stream: &mut TcpStream, conn: &mut ClientConnection) -> io::Result<usize> {
    let mut written = 0;
    while conn.wants_write() {
        match conn.write_tls(stream) {
            Ok(k) => written += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

impl event::Source for Conn {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.stream.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.stream.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.stream.deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    use mio::{Events, Poll};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    fn server_config(pki: &Pki) -> Arc<ServerConfig> {
        let certs = CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }

    /// A TLS server on loopback that reads `hello`, answers with `reply`
    /// and closes (close_notify); its thread's result is what it read.
    fn serve(
        pki: &Pki,
        hello: usize,
        reply: Vec<u8>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = server_config(pki);
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let conn = ServerConnection::new(config).unwrap();
            let mut tls = StreamOwned::new(conn, sock);
            let mut got = vec![0; hello];
            if tls.read_exact(&mut got).is_err() {
                return Vec::new(); // the client gave up (handshake failed)
            }
            tls.write_all(&reply).unwrap();
            tls.conn.send_close_notify();
            tls.flush().unwrap();
            got
        });
        (addr, server)
    }

    /// Connect to `addr` over TLS with `config`, write `hello`, read until
    /// the end of the stream (or an error) with the swarm's buffers; what
    /// was read, and the reads that returned data.
    fn client(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        hello: &[u8],
    ) -> (Vec<u8>, usize, io::Result<()>, String) {
        let mut poll = Poll::new().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let mut conn = Conn::tls(stream, config, server_name(addr)).unwrap();
        poll.registry()
            .register(&mut conn, Token(0), Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        let mut events = Events::with_capacity(8);
        let (mut out, mut cipher) = (vec![0; 64 * 1024], vec![0; 64 * 1024 + RECORD_SLACK]);
        let (mut read, mut reads, mut sent) = (Vec::new(), 0, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            if !sent && conn.peer_addr().is_ok() {
                assert_eq!(conn.write(hello).unwrap(), hello.len());
                sent = true;
            }
            loop {
                match conn.read(&mut out, &mut cipher) {
                    Ok(0) => return (read, reads, Ok(()), conn.negotiated().unwrap_or_default()),
                    Ok(n) => {
                        read.extend_from_slice(&out[..n]);
                        reads += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return (read, reads, Err(e), String::new()),
                }
            }
            conn.flush().unwrap();
        }
        panic!("no end of stream within 10 s")
    }

    #[test]
    fn tls_sessions_read_whole_batches_and_write_through_rustls() {
        let pki = Pki::new().unwrap();
        let reply: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (addr, server) = serve(&pki, 5, reply.clone());
        let (read, reads, end, negotiated) = client(addr, pki.client_config().unwrap(), b"hello");
        end.unwrap();
        assert_eq!(server.join().unwrap(), b"hello");
        assert!(negotiated.starts_with("TLSv1_3 TLS13_"), "{negotiated}");
        assert_eq!(read.len(), reply.len());
        assert!(read == reply, "the plaintext arrives whole and in order");
        // 300 kB in 64 KiB buffers: every read but the last fills its buffer
        // or takes what the socket had, never a record at a time.
        assert!(reads < 300_000 / 16_384, "{reads} reads");
    }

    #[test]
    fn an_untrusted_certificate_fails_the_handshake_with_the_reason() {
        let router = Pki::new().unwrap();
        let other = Pki::new().unwrap();
        let (addr, server) = serve(&router, 5, Vec::new());
        let (read, _, end, _) = client(addr, other.client_config().unwrap(), b"hello");
        assert!(read.is_empty());
        let e = end.unwrap_err().to_string();
        assert!(
            e.starts_with("TLS handshake failed: invalid peer certificate"),
            "{e}"
        );
        assert!(server.join().unwrap().is_empty());
    }

    #[test]
    fn the_router_section_loads_in_the_router() {
        let pki = Pki::new().unwrap();
        let config = ctirouter::config::Config::parse(&pki.router_section()).unwrap();
        assert_eq!(config.tls.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert!(ctirouter::tls::server_config(&config.tls)
            .unwrap()
            .is_some());
        let dir = pki.dir.clone();
        drop(pki);
        assert!(!dir.exists(), "the throwaway certificates are removed");
    }
}
