//! The router's identifiers and service sets as types of their own, so a
//! session id cannot be passed where a MonitorID is expected, nor a service
//! set where a mask is. Each is a `u32` on the wire and in memory
//! (`repr(transparent)`); the typed messages of [`crate::proto`] keep the
//! wire's `u32`s, and a session converts at its edge, where it decodes a
//! request or encodes a reply.

use std::fmt;
use std::ops::{BitAnd, BitOr};

use crate::proto::constants::service;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(transparent)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for u32 {
            fn from(id: $name) -> u32 {
                id.0
            }
        }
    };
}

id_type!(
    /// A downstream session (SessionID of the Client Monitor events),
    /// unique across the router's shards for its lifetime.
    SessionId
);
id_type!(
    /// A monitor's MonitorID, unique across the router; 0 is All Events.
    MonitorId
);
id_type!(
    /// A request's InvokeID, chosen by the client and echoed in the reply.
    InvokeId
);

impl MonitorId {
    /// The MonitorID of All Events copies.
    pub const ALL_EVENTS: MonitorId = MonitorId(0);
}

/// A set of CTI services (ServicesRequested, ServicesGranted: docs/protocol.md
/// §5.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Services(pub u32);

impl Services {
    pub const NONE: Services = Services(0);
    pub const CLIENT_EVENTS: Services = Services(service::CLIENT_EVENTS);
    pub const CLIENT_CONTROL: Services = Services(service::CLIENT_CONTROL);
    pub const ALL_EVENTS: Services = Services(service::ALL_EVENTS);
    pub const PERIPHERAL_MONITOR: Services = Services(service::PERIPHERAL_MONITOR);
    pub const CLIENT_MONITOR: Services = Services(service::CLIENT_MONITOR);
    pub const SUPERVISOR: Services = Services(service::SUPERVISOR);
    pub const SERVER: Services = Services(service::SERVER);
    pub const CALL_DATA_UPDATE: Services = Services(service::CALL_DATA_UPDATE);
    pub const CONNECTION_MONITOR: Services = Services(service::CONNECTION_MONITOR);
    pub const AGENT_STATE_CONTROL_ONLY: Services = Services(service::AGENT_STATE_CONTROL_ONLY);
    /// The request services the router proxies to the CTI Server: a session
    /// may have them when the upstream granted them to the router.
    pub const PROXIED: Services = Services(
        service::CLIENT_CONTROL | service::AGENT_STATE_CONTROL_ONLY | service::CALL_DATA_UPDATE,
    );
    /// The services that change state at the PG or for other clients: with
    /// a real upstream only clients listed in `[[clients]]` with them get
    /// them (the proxied ones; Server: a registered server answers
    /// everyone's recording requests; Supervisor: barge-in and intercept).
    pub const STATE_CHANGING: Services =
        Services(Self::PROXIED.0 | service::SERVER | service::SUPERVISOR);
    /// What a supervisor's session may have: what the CTI Server serves the
    /// supervisor's own session there (docs/requests.md §7), and Connection
    /// Monitor, which is the router's own.
    pub const SUPERVISOR_SESSION: Services = Services(
        service::CLIENT_EVENTS
            | service::SUPERVISOR
            | Self::PROXIED.0
            | service::CONNECTION_MONITOR,
    );

    /// Whether every service of `other` is in this set.
    pub const fn contains(self, other: Services) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl BitAnd for Services {
    type Output = Services;
    fn bitand(self, other: Services) -> Services {
        Services(self.0 & other.0)
    }
}

impl BitOr for Services {
    type Output = Services;
    fn bitor(self, other: Services) -> Services {
        Services(self.0 | other.0)
    }
}

impl fmt::Display for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_means_every_bit() {
        let granted = Services::ALL_EVENTS | Services::CLIENT_MONITOR;
        assert!(granted.contains(Services::ALL_EVENTS));
        assert!(granted.contains(Services::ALL_EVENTS | Services::CLIENT_MONITOR));
        assert!(!granted.contains(Services::ALL_EVENTS | Services::CLIENT_EVENTS));
        assert!(granted.contains(Services::NONE));
        assert!((granted & Services::CLIENT_EVENTS).is_empty());
    }

    #[test]
    fn ids_are_their_wire_u32() {
        assert_eq!(std::mem::size_of::<SessionId>(), 4);
        assert_eq!(u32::from(MonitorId(7)), 7);
        assert_eq!(InvokeId(9).to_string(), "9");
    }
}
