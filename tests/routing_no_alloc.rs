//! The per-event fan-out path does not touch the heap: `routing::extract`
//! (after its first call, which may build the fixed-length table),
//! `frame::check`, `patch_monitor_id`, and a same-version `transcode` into a
//! buffer with room. Counted with a `#[global_allocator]` wrapper around
//! `System` that counts allocations of the calling thread only, so the test
//! harness's own threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ctirouter::proto::frame;
use ctirouter::proto::group::Party;
use ctirouter::proto::msg::{AgentStateEvent, CallConferencedEvent, CallDeliveredEvent};
use ctirouter::proto::routing;
use ctirouter::proto::transcode::{self, Transcoded};
use ctirouter::proto::{Message, MessageBody, NamedVar, Version};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`; only a thread-local
// counter (const-initialised, no destructor, never allocates) is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract (a
        // non-zero-size layout), which is exactly `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's `alloc_zeroed` contract, passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator, i.e. from `System` (every
        // allocation is forwarded there), with `layout`; the caller upholds
        // the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation is
        // forwarded there) with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

/// Events of the shapes the router routes: a delivered call with call data,
/// a conference with parties, an agent state change; at narrow and wide tags.
fn frames() -> Vec<(Vec<u8>, Version)> {
    let mut delivered = CallDeliveredEvent {
        peripheral_id: 5000,
        connection_device_id_type: 1,
        connection_call_id: 77,
        connection_device_id: Some("1001".into()),
        alerting_device_id: Some("1001".into()),
        calling_device_id: Some("4155550142".into()),
        called_device_id: Some("8005551000".into()),
        ani: Some("4155550142".into()),
        call_variable_1: Some("acct=889123".into()),
        named_variables: vec![NamedVar {
            name: "user.queue".into(),
            value: "billing".into(),
        }],
        trunk_number: Some(17),
        trunk_group_number: Some(1),
        ..Default::default()
    };
    delivered.sync_counts();
    let mut conference = CallConferencedEvent {
        primary_call_id: 1,
        secondary_call_id: 2,
        primary_device_id: Some("1001".into()),
        secondary_device_id: Some("1002".into()),
        parties: (0..3)
            .map(|i| Party {
                call_id: Some(1),
                device_id_type: Some(0),
                device_id: Some(format!("100{i}").into()),
            })
            .collect(),
        ..Default::default()
    };
    conference.sync_counts();
    let agent = AgentStateEvent {
        agent_state: 3,
        agent_id: Some("1001".into()),
        agent_extension: Some("3001".into()),
        agent_instrument: Some("3001".into()),
        ..Default::default()
    };
    let mut out = Vec::new();
    for ver in [v(13), v(19), v(20), v(24)] {
        for m in [
            Message::from(delivered.clone()),
            Message::from(conference.clone()),
            Message::from(agent.clone()),
        ] {
            out.push((m.to_frame(ver).unwrap(), ver));
        }
    }
    out
}

#[test]
fn routing_keys_do_not_allocate() {
    let frames = frames();
    // The first call may initialise the fixed-length table (a OnceLock).
    for (f, ver) in &frames {
        routing::extract(f, *ver).unwrap();
    }
    for (f, ver) in &frames {
        let mut devices = 0;
        let n = allocations_in(|| {
            for _ in 0..100 {
                let keys = routing::extract(std::hint::black_box(f), *ver).unwrap();
                devices += keys.devices().len();
            }
        });
        assert_eq!(n, 0, "routing::extract allocated {n} times in 100 calls");
        assert!(devices >= 100, "keys were extracted");
    }
}

#[test]
fn check_patch_and_same_version_copy_do_not_allocate() {
    let frames = frames();
    let mut out = Vec::with_capacity(4096);
    for (f, ver) in &frames {
        let mut copy = f.clone();
        let n = allocations_in(|| {
            for id in 0..100u32 {
                assert_eq!(frame::check(std::hint::black_box(f)), Ok(f.len()));
                assert!(transcode::patch_monitor_id(&mut copy, id));
                out.clear();
                assert_eq!(
                    transcode::transcode(f, *ver, *ver, &mut out),
                    Ok(Transcoded::Written(f.len()))
                );
            }
        });
        assert_eq!(n, 0, "allocated {n} times");
    }
}

#[test]
fn the_counter_counts() {
    let n = allocations_in(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert_eq!(n, 1);
}
