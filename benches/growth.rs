//! The longest single event on ingest while a PG's tables fill: the call-party
//! tracker (live calls, the device index, the agent table) taking a PG of
//! `agents` agents from empty, each agent reporting its state and taking one
//! call (BEGIN_CALL, CALL_DELIVERED). Every `observe` is timed on its own
//! (hdrhistogram, ns); the percentiles and the slowest show the pauses a
//! table pays when it grows, which an average hides. The frames are encoded
//! before the clock starts.
//!
//! A table that doubles all at once moves every entry in one insert, and the
//! memory it moves to is faulted in during that insert; with transparent huge
//! pages the fault zeroes 2 MiB at a time. The router turns them off
//! (`src/main.rs`); `--huge-pages` leaves them on here, to compare.
//!
//! ```text
//! cargo bench --bench growth -- [--agents 12000] [--rounds 3] [--huge-pages]
//! ```
//! Results: perf/results/huge-pages-2026-12-07.md.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use ctirouter::ingest::tracker::CallTracker;
use ctirouter::proto::msg::{AgentStateEvent, BeginCallEvent, CallDeliveredEvent};
use ctirouter::proto::{routing, Message, Version};

/// Agent `k`'s three events: its state, its call's BEGIN_CALL, the call alerting it.
fn frames_of(k: u32) -> [Vec<u8>; 3] {
    let agent = format!("1{k:05}");
    let phone = format!("2{k:05}");
    let call_id = 10_000_000 + k;
    let state: Message = AgentStateEvent {
        agent_state: 3,
        agent_id: Some(agent.as_str().into()),
        agent_extension: Some(phone.as_str().into()),
        agent_instrument: Some(phone.as_str().into()),
        icm_agent_id: 5000 + k as i32,
        ..Default::default()
    }
    .into();
    let begin: Message = BeginCallEvent {
        call_type: 1,
        connection_device_id_type: 0,
        connection_call_id: call_id,
        connection_device_id: Some(phone.as_str().into()),
        ani: Some("4085551234".into()),
        dnis: Some("8005550100".into()),
        call_variable_1: Some("acct=00012345".into()),
        ..Default::default()
    }
    .into();
    let delivered: Message = CallDeliveredEvent {
        connection_device_id_type: 0,
        connection_call_id: call_id,
        connection_device_id: Some(phone.as_str().into()),
        alerting_device_id: Some(phone.as_str().into()),
        calling_device_id: Some("4085551234".into()),
        called_device_id: Some("8005550100".into()),
        ..Default::default()
    }
    .into();
    [state, begin, delivered].map(|m| m.to_frame(Version::MAX).expect("bench events encode"))
}

/// `cargo bench --bench growth -- [OPTIONS]`
#[derive(clap::Parser)]
struct Args {
    /// Agents of the PG (each reports its state and takes one call).
    #[arg(long, default_value_t = 12_000)]
    agents: u32,
    /// Tables filled from empty, one after the other.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Leave transparent huge pages on (the router turns them off).
    #[arg(long)]
    huge_pages: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    if !args.huge_pages {
        // SAFETY: plain integers, as in src/main.rs.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    let frames: Vec<(Vec<u8>, routing::RoutingKeys)> = (0..args.agents)
        .flat_map(frames_of)
        .map(|f| {
            let keys = routing::extract(&f, Version::MAX).expect("bench frames have keys");
            (f, keys)
        })
        .collect();
    println!(
        "growth: {} agents, {} events per round, transparent huge pages {}",
        args.agents,
        frames.len(),
        if args.huge_pages { "on" } else { "off" }
    );
    println!(
        "| round | p50 µs | p99 µs | p99.9 µs | p99.99 µs | max µs | slowest 5 sum µs | total ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for round in 1..=args.rounds {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("bounds");
        let mut slowest = Vec::with_capacity(frames.len());
        let mut tracker = CallTracker::new(Duration::from_secs(3600));
        let start = Instant::now();
        for (frame, keys) in &frames {
            let t = Instant::now();
            let targets = tracker.observe(frame, keys, Version::MAX, t, true);
            let ns = t.elapsed().as_nanos() as u64;
            std::hint::black_box(targets);
            let _ = hist.record(ns.max(1));
            slowest.push(ns);
        }
        let total = start.elapsed();
        slowest.sort_unstable_by(|a, b| b.cmp(a));
        let top5: u64 = slowest.iter().take(5).sum();
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
        println!(
            "| {round} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
            us(0.5),
            us(0.99),
            us(0.999),
            us(0.9999),
            hist.max() as f64 / 1e3,
            top5 as f64 / 1e3,
            total.as_secs_f64() * 1e3
        );
        assert_eq!(
            tracker.nr_calls(),
            args.agents as usize,
            "every call tracked"
        );
        drop(tracker);
    }
}
