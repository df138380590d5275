//! Codec micro-benchmarks on one realistic CALL_DELIVERED_EVENT at protocol
//! version 24 (~250 bytes): decode, routing keys, encode, transcode 24→19,
//! MonitorID patch, frame check.
//!
//! Targets on the 2-core bench machine: routing keys ≤ 200 ns/event,
//! encode ≤ 150 ns, patch ≤ 10 ns. Results: `perf/results/codec-*.md`.
//!
//! Every benchmark runs twice: group `codec` measures wall time (criterion's
//! default), group `codec_cpu` measures the bench thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`). On a shared machine the thread is descheduled
//! for part of each sample, which wall time counts and CPU time does not; when
//! the two disagree, the machine was busy and `codec_cpu` is the codec's cost.
//!
//! ```text
//! cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::measurement::Measurement;
use criterion::{black_box, Criterion, Throughput};

use ctirouter::proto::frame;
use ctirouter::proto::msg::CallDeliveredEvent;
use ctirouter::proto::routing;
use ctirouter::proto::transcode::{self, Transcoded};
use ctirouter::proto::{DecodeOptions, Message, MessageBody, NamedVar, Version};

#[path = "support/cpu_time.rs"]
mod cpu_time;
use cpu_time::ThreadCpuTime;

/// A call arriving at agent phone 1001 from the PSTN, with the call context an
/// IVR typically attaches: 5 call variables and 2 ECC (named) variables.
fn call_delivered() -> Message {
    let mut m = CallDeliveredEvent {
        monitor_id: 0,
        peripheral_id: 5000,
        peripheral_type: 17,
        connection_device_id_type: 1,
        connection_call_id: 16_777_301,
        line_handle: 0,
        line_type: 1,
        service_number: 3100,
        service_id: 5012,
        skill_group_number: 201,
        skill_group_id: 5101,
        skill_group_priority: 0,
        alerting_device_type: 0,
        calling_device_type: 4,
        called_device_type: 0,
        last_redirect_device_type: 0xffff,
        local_connection_state: 2,
        event_cause: 22,
        connection_device_id: Some("1001".into()),
        alerting_device_id: Some("1001".into()),
        calling_device_id: Some("4155550142".into()),
        called_device_id: Some("8005551000".into()),
        trunk_number: Some(17),
        trunk_group_number: Some(1),
        ani: Some("4155550142".into()),
        dnis: Some("1000".into()),
        call_variable_1: Some("acct=889123".into()),
        call_variable_2: Some("lang=en".into()),
        call_variable_3: Some("seg=gold".into()),
        call_variable_4: Some("ivr=billing".into()),
        call_variable_5: Some("auth=1".into()),
        named_variables: vec![
            NamedVar {
                name: "user.case.id".into(),
                value: "CS-204877".into(),
            },
            NamedVar {
                name: "user.queue".into(),
                value: "billing".into(),
            },
        ],
        ..Default::default()
    };
    m.sync_counts();
    Message::from(m)
}

fn codec<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let v24 = Version::new(24).unwrap();
    let v19 = Version::new(19).unwrap();
    let message = call_delivered();
    let frame_bytes = message.to_frame(v24).unwrap();
    let (parsed, _) = frame::parse(&frame_bytes).unwrap();
    let (message_type, body) = (parsed.message_type, parsed.body.to_vec());
    eprintln!(
        "CALL_DELIVERED_EVENT v24: {} bytes (body {})",
        frame_bytes.len(),
        body.len()
    );
    // The bench measures the happy path: make sure it is one.
    assert_eq!(
        Message::decode(message_type, &body, v24, DecodeOptions::STRICT).unwrap(),
        message
    );
    let keys = routing::extract(&frame_bytes, v24).unwrap();
    assert_eq!(keys.devices().len(), 4);
    assert_eq!(keys.trunk_number, Some(17));

    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));

    group.bench_function("frame_check", |b| {
        b.iter(|| frame::check(black_box(&frame_bytes)))
    });

    group.bench_function("decode", |b| {
        b.iter(|| {
            Message::decode(
                black_box(message_type),
                black_box(&body),
                v24,
                DecodeOptions::STRICT,
            )
        })
    });

    group.bench_function("routing_keys", |b| {
        b.iter(|| routing::extract(black_box(&frame_bytes), black_box(v24)))
    });

    let mut out = Vec::with_capacity(1024);
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&message).encode(black_box(v24), &mut out)
        })
    });

    let mut out = Vec::with_capacity(1024);
    assert!(matches!(
        transcode::transcode(&frame_bytes, v24, v19, &mut out),
        Ok(Transcoded::Written(_))
    ));
    group.bench_function("transcode_24_to_19", |b| {
        b.iter(|| {
            out.clear();
            transcode::transcode(black_box(&frame_bytes), v24, black_box(v19), &mut out)
        })
    });

    let mut copy = frame_bytes.clone();
    let mut monitor_id = 0u32;
    group.bench_function("patch_monitor_id", |b| {
        b.iter(|| {
            monitor_id = monitor_id.wrapping_add(1);
            transcode::patch_monitor_id(black_box(&mut copy), black_box(monitor_id))
        })
    });

    group.finish();
}

fn main() {
    let mut wall = Criterion::default().configure_from_args();
    codec(&mut wall, "codec");
    let mut cpu = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .configure_from_args();
    codec(&mut cpu, "codec_cpu");
    Criterion::default().configure_from_args().final_summary();
}
