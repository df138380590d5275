//! REGISTER_VARIABLES (docs/requests.md §6): a session that registers the
//! call variables and ECC (named) variables it wants gets only those on
//! the events that carry call data: BEGIN_CALL, CALL_DATA_UPDATE,
//! CALL_DELIVERED, CALL_TRANSLATION_ROUTE and AGENT_PRE_CALL. The rest are
//! removed from its copy when it is queued; a session that never registered
//! is sent the shared bytes, untouched, at no cost. Registering again
//! replaces the registration. Sans I/O.

use crate::proto::msg::RegisterVariablesReq;
use crate::proto::{
    decode_frame, CtiString, DecodeOptions, Message, MessageBody, NamedArray, NamedVar, Version,
};

/// What a session registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariableFilter {
    /// Bit n−1 set: CallVariable n is wanted (0x0001 = CallVariable1 …
    /// 0x0200 = CallVariable10).
    pub call_variable_mask: u16,
    /// Names of the wanted named variables and named arrays.
    pub named_variables: Vec<CtiString>,
    pub named_arrays: Vec<CtiString>,
}

/// The types whose events carry call data, and therefore get filtered.
pub fn carries_variables(message_type: u32) -> bool {
    use crate::proto::constants::msg;
    matches!(
        message_type,
        msg::BEGIN_CALL_EVENT
            | msg::CALL_DATA_UPDATE_EVENT
            | msg::CALL_DELIVERED_EVENT
            | msg::CALL_TRANSLATION_ROUTE_EVENT
            | msg::AGENT_PRE_CALL_EVENT
    )
}

/// Clear the call variables of `$e` the filter does not want, keep only the
/// wanted named variables and arrays, fix the counts; evaluates to whether
/// anything was removed.
macro_rules! strip {
    ($e:ident, $filter:expr) => {{
        let f = $filter;
        let mut removed = false;
        let vars = [
            &mut $e.call_variable_1,
            &mut $e.call_variable_2,
            &mut $e.call_variable_3,
            &mut $e.call_variable_4,
            &mut $e.call_variable_5,
            &mut $e.call_variable_6,
            &mut $e.call_variable_7,
            &mut $e.call_variable_8,
            &mut $e.call_variable_9,
            &mut $e.call_variable_10,
        ];
        for (i, var) in vars.into_iter().enumerate() {
            if f.call_variable_mask & (1 << i) == 0 && var.is_some() {
                *var = None;
                removed = true;
            }
        }
        removed |= f.keep_named(&mut $e.named_variables, &mut $e.named_arrays);
        if removed {
            $e.sync_counts();
        }
        removed
    }};
}

impl VariableFilter {
    /// What REGISTER_VARIABLES_REQ registers: its mask, and the names of its
    /// named variables and arrays (their values and indexes mean nothing
    /// here). The router passes on whatever names a client registers: it
    /// cannot know which ECC variables the PG has configured.
    pub fn registered(req: RegisterVariablesReq) -> VariableFilter {
        VariableFilter {
            call_variable_mask: req.call_variable_mask,
            named_variables: req.named_variables.into_iter().map(|v| v.name).collect(),
            named_arrays: req.named_arrays.into_iter().map(|a| a.name).collect(),
        }
    }

    /// Whether the named variable or array `name` is wanted.
    fn wants(names: &[CtiString], name: &CtiString) -> bool {
        names.iter().any(|n| n.as_bytes() == name.as_bytes())
    }

    fn keep_named(&self, vars: &mut Vec<NamedVar>, arrays: &mut Vec<NamedArray>) -> bool {
        let before = vars.len() + arrays.len();
        vars.retain(|v| Self::wants(&self.named_variables, &v.name));
        arrays.retain(|a| Self::wants(&self.named_arrays, &a.name));
        vars.len() + arrays.len() != before
    }

    /// Append to `out` this session's copy of `frame` (an event at
    /// `version`) with what it did not register removed. `false`: nothing
    /// to remove (or not an event that carries call data), nothing was
    /// appended, and the caller queues the shared bytes as they are.
    pub fn filter(&self, frame: &[u8], version: Version, out: &mut Vec<u8>) -> bool {
        let Some(message_type) = crate::proto::frame::message_type(frame) else {
            return false;
        };
        if !carries_variables(message_type) {
            return false;
        }
        // The router built or checked this frame: it decodes.
        let Ok((mut message, _)) = decode_frame(frame, version, DecodeOptions::COUNTS_UNCHECKED)
        else {
            return false;
        };
        let removed = match &mut message {
            Message::BeginCallEvent(e) => strip!(e, self),
            Message::CallDataUpdateEvent(e) => strip!(e, self),
            Message::CallDeliveredEvent(e) => strip!(e, self),
            Message::CallTranslationRouteEvent(e) => strip!(e, self),
            Message::AgentPreCallEvent(e) => strip!(e, self),
            _ => false,
        };
        let start = out.len();
        if removed && message.encode(version, out).is_ok() {
            return true;
        }
        out.truncate(start);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::BeginCallEvent;

    fn begin_call() -> BeginCallEvent {
        let mut e = BeginCallEvent {
            monitor_id: 0,
            peripheral_id: 5000,
            call_type: 1,
            connection_call_id: 42,
            call_variable_1: Some("one".into()),
            call_variable_2: Some("two".into()),
            call_variable_10: Some("ten".into()),
            connection_device_id: Some("3001".into()),
            named_variables: vec![
                NamedVar {
                    name: "user.a".into(),
                    value: "A".into(),
                },
                NamedVar {
                    name: "user.b".into(),
                    value: "B".into(),
                },
            ],
            named_arrays: vec![NamedArray {
                index: 0,
                name: "user.arr".into(),
                value: "X".into(),
            }],
            ..Default::default()
        };
        e.sync_counts();
        e
    }

    #[test]
    fn only_registered_variables_remain_at_every_version() {
        let filter = VariableFilter {
            call_variable_mask: 0x0202, // CallVariable2 and CallVariable10
            named_variables: vec!["user.b".into()],
            named_arrays: vec![],
        };
        for n in [13, 19, 20, 24] {
            let version = Version::new(n).unwrap();
            let frame = Message::from(begin_call()).to_frame(version).unwrap();
            let mut out = Vec::new();
            assert!(filter.filter(&frame, version, &mut out), "v{n}");
            let (got, _) = decode_frame(&out, version, DecodeOptions::STRICT).unwrap();
            let Message::BeginCallEvent(got) = got else {
                panic!("{got:?}")
            };
            let mut expected = begin_call();
            expected.call_variable_1 = None;
            expected.named_variables.remove(0);
            expected.named_arrays.clear();
            expected.sync_counts();
            assert_eq!(got, expected, "v{n}");
        }
    }

    #[test]
    fn an_event_with_nothing_unregistered_or_without_call_data_is_left_alone() {
        let everything = VariableFilter {
            call_variable_mask: 0x03FF,
            named_variables: vec!["user.a".into(), "user.b".into()],
            named_arrays: vec!["user.arr".into()],
        };
        let version = Version::MAX;
        let frame = Message::from(begin_call()).to_frame(version).unwrap();
        let mut out = Vec::new();
        assert!(!everything.filter(&frame, version, &mut out));
        let system = Message::from(crate::proto::msg::SystemEvent::default())
            .to_frame(version)
            .unwrap();
        assert!(!VariableFilter::default().filter(&system, version, &mut out));
        assert!(out.is_empty());
    }
}
