//! An event's targets: every key it must reach (calls, devices, agents),
//! what it ends or merges, and the facts its call's brackets need. Computed
//! once per event by ingest's call-party tracker; the interest table and the
//! shards' monitor indexes read it. No I/O here.

use smallvec::SmallVec;

use crate::call::Bracket;
use crate::keys::{AgentKey, CallKey, DeviceKey};

/// Every key an event must reach, computed once at ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub calls: SmallVec<[CallKey; 2]>,
    pub devices: SmallVec<[DeviceKey; 8]>,
    pub agents: SmallVec<[AgentKey; 3]>,
    /// Calls this event ends (call monitors end after delivering it).
    pub ended_calls: SmallVec<[CallKey; 2]>,
    /// A call folded into another (conference, transfer) or renamed (call
    /// data update): monitors and interest move from the first to the second.
    pub merged: Option<(CallKey, CallKey)>,
    /// Call-bracket facts of the event's call (only with keyed interest).
    pub bracket: Option<Bracket>,
}
