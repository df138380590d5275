//! Quick end-to-end fan-out check (issue 3): the router in-process on the
//! built-in simulator, N All Events sessions read by one mio thread over
//! loopback. Reports deliveries/s as the clients read them, router CPU per
//! delivery (utime+stime of the router's own threads from /proc), and the
//! in-router fan-out latency (ingest received → shard issued the batch's
//! writes) as hdrhistogram percentiles.
//!
//! `cargo bench --bench fanout -- [--sessions N] [--seconds S] [--sim-speed X]
//!  [--shards N] [--spin-us N] [--output-bound BYTES]` (`--help` says more)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ctirouter::config::Config;
use ctirouter::proto::constants::service;
use ctirouter::proto::msg::OpenReq;
use ctirouter::proto::{Message, Unspec, Version};
use ctirouter::router::Router;

/// `cargo bench --bench fanout -- [OPTIONS]`
#[derive(clap::Parser)]
struct Args {
    /// All Events sessions reading the fan-out.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Simulator speed (0 = flat out).
    #[arg(long, default_value_t = 0.0)]
    sim_speed: f64,
    /// Shards (0 = one per core after the ingest core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Spin before parking, µs.
    #[arg(long, default_value_t = 50)]
    spin_us: u64,
    /// Per-session output bound, bytes.
    #[arg(long, default_value_t = 32 << 20)]
    output_bound: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// CPU seconds (user + system) of this process's threads whose name starts
/// with one of `prefixes`.
fn thread_cpu_secs(prefixes: &[&str]) -> f64 {
    // SAFETY: sysconf takes a plain constant, touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = entry.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| name.trim().starts_with(p)) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        total += (utime + stime) / ticks;
    }
    total
}

fn open_session(addr: std::net::SocketAddr, n: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let req = OpenReq {
        invoke_id: n as u32,
        version_number: 24,
        idle_timeout: u32::MAX,
        peripheral_id: u32::MAX,
        services_requested: service::ALL_EVENTS,
        call_msg_mask: u32::MAX,
        agent_state_mask: 0x3fff,
        client_id: Some(format!("bench-{n}").into()),
        client_password: Some(Unspec(Vec::new())),
        ..Default::default()
    };
    s.write_all(&Message::from(req).to_frame(Version::MAX).unwrap())
        .unwrap();
    s
}

/// Per-session reader state: frames counted, partial frame carried over.
struct Reader {
    stream: mio::net::TcpStream,
    carry: usize,
    frames: u64,
    open: bool,
}

impl Reader {
    /// Count the frames in `buf[..n]`, carrying a partial frame's remaining length.
    fn consume(&mut self, buf: &[u8], header: &mut Vec<u8>) {
        let mut i = 0;
        while i < buf.len() {
            if self.carry > 0 {
                let take = self.carry.min(buf.len() - i);
                self.carry -= take;
                i += take;
                continue;
            }
            let need = 8 - header.len();
            let take = need.min(buf.len() - i);
            header.extend_from_slice(&buf[i..i + take]);
            i += take;
            if header.len() == 8 {
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                self.carry = len;
                self.frames += 1;
                header.clear();
            }
        }
    }
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        sim_speed: args.sim_speed,
        ..Config::default()
    };
    config.simulator.agents = 500;
    config.simulator.calls_per_sec = 200.0;
    config.runtime.shards = args.shards;
    config.runtime.spin_before_park_us = args.spin_us;
    config.limits.output_bound_bytes = args.output_bound;
    let router = Router::start(config).expect("router starts");
    let addr = router.local_addr;

    let mut poll = mio::Poll::new().unwrap();
    let mut readers: Vec<Reader> = (0..args.sessions)
        .map(|n| {
            let s = open_session(addr, n);
            s.set_nonblocking(true).unwrap();
            Reader {
                stream: mio::net::TcpStream::from_std(s),
                carry: 0,
                frames: 0,
                open: true,
            }
        })
        .collect();
    for (i, r) in readers.iter_mut().enumerate() {
        poll.registry()
            .register(&mut r.stream, mio::Token(i), mio::Interest::READABLE)
            .unwrap();
    }
    let mut headers: Vec<Vec<u8>> = vec![Vec::with_capacity(8); args.sessions];
    let mut buf = vec![0u8; 1 << 18];
    let mut events = mio::Events::with_capacity(1024);

    // Warm up for a second, then measure.
    let warmup = Duration::from_secs(1);
    let run = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let mut measuring = false;
    let (mut t0, mut frames0, mut cpu0, mut delivered0) = (start, 0u64, 0.0, 0u64);
    let prefixes = ["ingest", "shard-"];
    loop {
        let now = Instant::now();
        if !measuring && now >= start + warmup {
            measuring = true;
            t0 = now;
            frames0 = readers.iter().map(|r| r.frames).sum();
            cpu0 = thread_cpu_secs(&prefixes);
            delivered0 = router.metrics.snapshot().nr_deliveries;
            *router.metrics.fanout_latency.lock() = None;
        }
        if measuring && now >= t0 + run {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in events.iter() {
            let i = event.token().0;
            let r = &mut readers[i];
            loop {
                match r.stream.read(&mut buf) {
                    Ok(0) => {
                        r.open = false;
                        break;
                    }
                    Ok(n) => r.consume(&buf[..n], &mut headers[i]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        r.open = false;
                        break;
                    }
                }
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let frames: u64 = readers.iter().map(|r| r.frames).sum::<u64>() - frames0;
    let cpu = thread_cpu_secs(&prefixes) - cpu0;
    let snap = router.metrics.snapshot();
    let delivered = snap.nr_deliveries - delivered0;
    let latency = router.metrics.fanout_latency();
    let cut = readers.iter().filter(|r| !r.open).count();
    let rate = frames as f64 / elapsed;
    println!("sessions            {}", args.sessions);
    println!("sim speed           {} (0 = flat out)", args.sim_speed);
    println!("measured            {elapsed:.2} s after {warmup:?} warm-up");
    println!("client reads        {rate:.0} deliveries/s ({frames} frames)");
    println!(
        "router appends      {:.0} deliveries/s",
        delivered as f64 / elapsed
    );
    println!(
        "router CPU          {cpu:.2} s = {:.1} ns per delivery read",
        cpu * 1e9 / frames.max(1) as f64
    );
    println!("events ingested     {}", snap.nr_events);
    println!("socket writes       {}", snap.nr_writes);
    println!(
        "sessions cut        {cut} (router count {})",
        snap.nr_slow_consumer_cuts
    );
    println!(
        "fan-out latency     p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs  (n = {})",
        latency.value_at_quantile(0.5) as f64 / 1e3,
        latency.value_at_quantile(0.9) as f64 / 1e3,
        latency.value_at_quantile(0.99) as f64 / 1e3,
        latency.value_at_quantile(0.999) as f64 / 1e3,
        latency.max() as f64 / 1e3,
        latency.len()
    );
    drop(readers);
    router.shutdown().expect("router stops");
}
