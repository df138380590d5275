//! Who writes call data on which call, for RELEASE_CALL aggregation
//! (docs/requests.md §5): upstream the CTI Server sees one client, so the
//! first RELEASE_CALL would end a call's data for every session. The router
//! sends it only for the last session that sent SET_CALL_DATA on the call.
//! Plain data, no I/O.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::ids::SessionId;
use crate::proto::CtiString;

/// A call as SET_CALL_DATA_REQ and RELEASE_CALL_REQ name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WrittenCall {
    pub peripheral_id: u32,
    pub call_id: u32,
    pub device_id_type: u16,
    pub device_id: Box<[u8]>,
}

impl WrittenCall {
    pub fn of(
        peripheral_id: u32,
        call_id: u32,
        device_id_type: u16,
        device: Option<&CtiString>,
    ) -> Self {
        WrittenCall {
            peripheral_id,
            call_id,
            device_id_type,
            device_id: device.map(|d| d.as_bytes().into()).unwrap_or_default(),
        }
    }
}

/// The sessions that sent SET_CALL_DATA on each call and have not
/// released it, and the same the other way round (a session's close looks
/// up its own calls, not every call written).
#[derive(Debug, Default)]
pub struct CallDataWriters {
    calls: HashMap<WrittenCall, SmallVec<[SessionId; 2]>>,
    by_session: HashMap<SessionId, Vec<WrittenCall>>,
}

impl CallDataWriters {
    /// `session` sent SET_CALL_DATA on `call`.
    pub fn wrote(&mut self, call: WrittenCall, session: SessionId) {
        let writers = self.calls.entry(call.clone()).or_default();
        if !writers.contains(&session) {
            writers.push(session);
            self.by_session.entry(session).or_default().push(call);
        }
    }

    /// `session` releases `call`: whether others still write on it (then
    /// the release is theirs to send, and this one is answered locally).
    pub fn release(&mut self, call: &WrittenCall, session: SessionId) -> bool {
        let Some(writers) = self.calls.get_mut(call) else {
            return false;
        };
        let wrote = writers
            .iter()
            .position(|s| *s == session)
            .map(|at| writers.remove(at));
        let others_write = !writers.is_empty();
        if !others_write {
            self.calls.remove(call);
        }
        if wrote.is_some() {
            self.forget(session, call);
        }
        others_write
    }

    /// `session` closed: the calls it was the last writer on (the router
    /// releases them for it).
    pub fn closed(&mut self, session: SessionId) -> Vec<WrittenCall> {
        let mut released = Vec::new();
        for call in self.by_session.remove(&session).unwrap_or_default() {
            let Some(writers) = self.calls.get_mut(&call) else {
                continue;
            };
            writers.retain(|s| *s != session);
            if writers.is_empty() {
                self.calls.remove(&call);
                released.push(call);
            }
        }
        released
    }

    fn forget(&mut self, session: SessionId, call: &WrittenCall) {
        if let Some(calls) = self.by_session.get_mut(&session) {
            calls.retain(|c| c != call);
            if calls.is_empty() {
                self.by_session.remove(&session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: u32) -> WrittenCall {
        WrittenCall::of(5000, id, 0, Some(&CtiString::from("T1")))
    }

    #[test]
    fn the_last_writer_releases_and_a_closed_last_writer_is_released_for() {
        let mut w = CallDataWriters::default();
        w.wrote(call(1), SessionId(1));
        w.wrote(call(1), SessionId(2));
        w.wrote(call(1), SessionId(2));
        assert!(w.release(&call(1), SessionId(1)), "2 still writes");
        assert!(w.release(&call(1), SessionId(3)), "3 never wrote");
        assert!(!w.release(&call(1), SessionId(2)), "the last writer");
        assert!(!w.release(&call(1), SessionId(2)), "nobody writes now");
        w.wrote(call(2), SessionId(1));
        w.wrote(call(3), SessionId(1));
        w.wrote(call(3), SessionId(2));
        let mut released = w.closed(SessionId(1));
        released.sort_by_key(|c| c.call_id);
        assert_eq!(released, [call(2)]);
        assert_eq!(w.closed(SessionId(2)), [call(3)]);
        assert!(w.closed(SessionId(2)).is_empty());
        assert!(
            w.calls.is_empty() && w.by_session.is_empty(),
            "nothing left behind"
        );
    }
}
