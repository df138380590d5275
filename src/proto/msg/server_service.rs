//! The Server service registration messages (docs/protocol.md §12.6):
//! REGISTER_SERVICE_REQ/CONF and UNREGISTER_SERVICE_REQ/CONF, by which a
//! server application (a recording server) offers a named service.
//! Declarations only; the requests the service answers (START/STOP_RECORDING)
//! are Miscellaneous messages (`misc.rs`).
//!
//! The layouts are the same at every served version (13..=24).

use crate::proto::constants::msg;
use crate::proto::values::CtiString;

message! {
    /// REGISTER_SERVICE_REQ: offer a service. ServerMode 0 exclusive,
    /// 1 round-robin, 2 parallel; ServiceName is required (only
    /// "Cisco:CallRecording" is defined).
    pub struct RegisterServiceReq = msg::REGISTER_SERVICE_REQ, since 13 {
        invoke_id: u32,
        server_mode: u16,
    }
    floating {
        service_name: Opt<CtiString> = SERVICE_NAME,
    }
}

message! {
    /// REGISTER_SERVICE_CONF: the RegisteredServiceID to unregister with.
    pub struct RegisterServiceConf = msg::REGISTER_SERVICE_CONF, since 13 {
        invoke_id: u32,
        registered_service_id: u32,
    }
    floating {}
}

message! {
    /// UNREGISTER_SERVICE_REQ: withdraw a registration by its RegisteredServiceID.
    pub struct UnregisterServiceReq = msg::UNREGISTER_SERVICE_REQ, since 13 {
        invoke_id: u32,
        registered_service_id: u32,
    }
    floating {}
}

message! {
    /// UNREGISTER_SERVICE_CONF.
    pub struct UnregisterServiceConf = msg::UNREGISTER_SERVICE_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}
