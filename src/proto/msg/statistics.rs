//! The counter blocks of the two statistics confirmations (docs/protocol.md
//! §12.4): QUERY_AGENT_STATISTICS_CONF carries 84 UINT counters,
//! QUERY_SKILL_GROUP_STATISTICS_CONF 145. Each block is one fixed field of
//! its message (`counters!`), and the names of its counters live here, in
//! one const table per block, in wire order. The tables are built the way
//! §12.4 describes the layouts (a list of names, repeated with each period's
//! suffix), so they read like the documentation and cannot drift apart from
//! it in length.
//!
//! Names are snake_case like the other fixed fields (`avail_time_session` for
//! the guide's AvailTimeSession); a `visit` of the message yields one field
//! per counter under these names.
//!
//! Layout before v19 (docs/protocol.md §12.8 #6): the counters last changed in
//! v10–13, so every served version (13..=24) has these blocks (docs/protocol.md §13).

/// Each name with suffix `_session`, then each again with `_today`.
macro_rules! session_then_today {
    ($($name:literal),* $(,)?) => {
        [$(concat!($name, "_session"),)* $(concat!($name, "_today"),)*]
    };
}

/// The real-time counters, then the interval counters and the three queue
/// counters for each of the periods to-5-minutes, to-half-hour and today
/// (the interval ones with suffix `_to_5`/`_to_half`/`_today`, the queue
/// ones with `_5`/`_half`/`_today`, as the guide names them: CallsQ5,
/// CallsQHalf, CallsQToday).
macro_rules! now_then_three_periods {
    (
        now: [$($now:literal),* $(,)?],
        interval: [$($name:literal),* $(,)?],
        queue: [$($queue:literal),* $(,)?] $(,)?
    ) => {
        [
            $($now,)*
            $(concat!($name, "_to_5"),)*
            $(concat!($queue, "_5"),)*
            $(concat!($name, "_to_half"),)*
            $(concat!($queue, "_half"),)*
            $(concat!($name, "_today"),)*
            $(concat!($queue, "_today"),)*
        ]
    };
}

/// The 84 counters of QUERY_AGENT_STATISTICS_CONF, in wire order (body
/// offset 8 onwards, 4 bytes each): 42 for the agent's session, the same 42
/// for today.
pub const AGENT_STATISTICS_COUNTERS: [&str; 84] = session_then_today![
    "avail_time",
    "logged_on_time",
    "not_ready_time",
    "icm_available_time",
    "routable_time",
    "agent_out_calls",
    "agent_out_calls_talk_time",
    "agent_out_calls_time",
    "agent_out_calls_held",
    "agent_out_calls_held_time",
    "handled_calls",
    "handled_calls_talk_time",
    "handled_calls_after_call_time",
    "handled_calls_time",
    "incoming_calls_held",
    "incoming_calls_held_time",
    "internal_calls",
    "internal_calls_time",
    "internal_calls_rcvd",
    "internal_calls_rcvd_time",
    "internal_calls_held",
    "internal_calls_held_time",
    "auto_out_calls",
    "auto_out_calls_talk_time",
    "auto_out_calls_time",
    "auto_out_calls_held",
    "auto_out_calls_held_time",
    "preview_calls",
    "preview_calls_talk_time",
    "preview_calls_time",
    "preview_calls_held",
    "preview_calls_held_time",
    "reservation_calls",
    "reservation_calls_talk_time",
    "reservation_calls_time",
    "reservation_calls_held",
    "reservation_calls_held_time",
    "barge_in_calls",
    "intercept_calls",
    "monitor_calls",
    "whisper_calls",
    "emergency_calls",
];

/// The 145 counters of QUERY_SKILL_GROUP_STATISTICS_CONF, in wire order (body
/// offset 16 onwards, 4 bytes each): 22 real-time, then 41 for each of the
/// three periods. Queue counters hold 0xFFFFFFFF when unknown.
pub const SKILL_GROUP_STATISTICS_COUNTERS: [&str; 145] = now_then_three_periods! {
    now: [
        "agents_logged_on",
        "agents_avail",
        "agents_not_ready",
        "agents_ready",
        "agents_talking_in",
        "agents_talking_out",
        "agents_talking_other",
        "agents_work_not_ready",
        "agents_work_ready",
        "agents_busy_other",
        "agents_reserved",
        "agents_hold",
        "agents_icm_available",
        "agents_application_available",
        "agents_talking_auto_out",
        "agents_talking_preview",
        "agents_talking_reservation",
        "router_calls_q_now",
        "longest_router_call_q_now",
        "calls_q_now",
        "calls_q_time_now",
        "longest_call_q_now",
    ],
    interval: [
        "avail_time",
        "logged_on_time",
        "not_ready_time",
        "agent_out_calls",
        "agent_out_calls_talk_time",
        "agent_out_calls_time",
        "agent_out_calls_held",
        "agent_out_calls_held_time",
        "handled_calls",
        "handled_calls_talk_time",
        "handled_calls_after_call_time",
        "handled_calls_time",
        "incoming_calls_held",
        "incoming_calls_held_time",
        "internal_calls_rcvd",
        "internal_calls_rcvd_time",
        "internal_calls_held",
        "internal_calls_held_time",
        "auto_out_calls",
        "auto_out_calls_talk_time",
        "auto_out_calls_time",
        "auto_out_calls_held",
        "auto_out_calls_held_time",
        "preview_calls",
        "preview_calls_talk_time",
        "preview_calls_time",
        "preview_calls_held",
        "preview_calls_held_time",
        "reservation_calls",
        "reservation_calls_talk_time",
        "reservation_calls_time",
        "reservation_calls_held",
        "reservation_calls_held_time",
        "barge_in_calls",
        "intercept_calls",
        "monitor_calls",
        "whisper_calls",
        "emergency_calls",
    ],
    queue: ["calls_q", "calls_q_time", "longest_call_q"],
};

counters! {
    /// The counter block of QUERY_AGENT_STATISTICS_CONF
    /// (names: [`AGENT_STATISTICS_COUNTERS`]).
    pub struct AgentStatistics([u32; 84]) = AGENT_STATISTICS_COUNTERS;
}

counters! {
    /// The counter block of QUERY_SKILL_GROUP_STATISTICS_CONF
    /// (names: [`SKILL_GROUP_STATISTICS_COUNTERS`]).
    pub struct SkillGroupStatistics([u32; 145]) = SKILL_GROUP_STATISTICS_COUNTERS;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::values::FieldValue;
    use crate::proto::wire::FixedValue;
    use std::collections::BTreeSet;

    #[test]
    fn counter_names_are_unique_and_in_the_documented_places() {
        for names in [
            &AGENT_STATISTICS_COUNTERS[..],
            &SKILL_GROUP_STATISTICS_COUNTERS[..],
        ] {
            let unique: BTreeSet<&str> = names.iter().copied().collect();
            assert_eq!(unique.len(), names.len());
        }
        let a = &AGENT_STATISTICS_COUNTERS;
        assert_eq!(
            (a[0], a[3], a[41]),
            (
                "avail_time_session",
                "icm_available_time_session",
                "emergency_calls_session"
            )
        );
        assert_eq!(
            (a[42], a[83]),
            ("avail_time_today", "emergency_calls_today")
        );
        let s = &SKILL_GROUP_STATISTICS_COUNTERS;
        assert_eq!(
            (s[0], s[21], s[22]),
            ("agents_logged_on", "longest_call_q_now", "avail_time_to_5")
        );
        // 22 + 38 interval + 3 queue counters per period.
        assert_eq!(
            (s[59], s[60], s[62], s[63]),
            (
                "emergency_calls_to_5",
                "calls_q_5",
                "longest_call_q_5",
                "avail_time_to_half"
            )
        );
        assert_eq!(
            (s[103], s[104], s[144]),
            (
                "longest_call_q_half",
                "avail_time_today",
                "longest_call_q_today"
            )
        );
    }

    #[test]
    fn a_block_is_its_counters_back_to_back_big_endian() {
        let mut block = AgentStatistics::default();
        for (i, counter) in block.0.iter_mut().enumerate() {
            *counter = 0x0100_0000 + i as u32;
        }
        let mut out = Vec::new();
        block.write(&mut out);
        assert_eq!(out.len(), AgentStatistics::SIZE);
        assert_eq!(&out[..8], &[1, 0, 0, 0, 1, 0, 0, 1]);
        assert_eq!(&out[out.len() - 4..], &[1, 0, 0, 83]);
        assert_eq!(AgentStatistics::read(&out), block);
        assert_eq!(block.get("routable_time_session"), Some(0x0100_0004));
        assert_eq!(block.get("no_such_counter"), None);
        let mut seen = Vec::new();
        block.visit_as("statistics", &mut |f| {
            if let (None, FieldValue::Int(i)) = (f.tag, f.value) {
                seen.push((f.name, i));
            }
        });
        assert_eq!(seen.len(), 84);
        assert_eq!(seen[42], ("avail_time_today", 0x0100_0000 + 42));
    }
}
