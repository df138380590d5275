//! Typed GED-188 messages, one file per service area. Each struct is declared
//! once with `message!`, which generates its codec.

pub mod agent;
pub mod call;
pub mod control;
pub mod misc;
pub mod monitor;
pub mod server_service;
pub mod session;
pub mod statistics;
pub mod supervisor;

pub use agent::*;
pub use call::*;
pub use control::*;
pub use misc::*;
pub use monitor::*;
pub use server_service::*;
pub use session::*;
pub use statistics::*;
pub use supervisor::*;
