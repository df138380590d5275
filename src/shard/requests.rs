//! Carrying out a session's monitor requests on its shard (design.md §4
//! items 9–11): MONITOR_START/STOP, CHANGE_MONITOR_MASK, SESSION_MONITOR_
//! START/STOP, the Client Events registration made at OPEN, and ingest's
//! answers. Starts go through ingest so a monitor applies from a definite
//! point of the event stream; stops and mask changes are local.

use std::rc::Rc;

use super::conn::Conn;
use super::monitors::{Monitor, Watch};
use super::{next_monitor_id, Shard};
use crate::keys::DeviceKey;
use crate::keys::InterestKey;
use crate::link::ToIngest;
use crate::proto::constants::{service, status};
use crate::proto::msg::{ChangeMonitorMaskConf, MonitorStartConf, MonitorStopConf};
use crate::proto::msg::{SessionMonitorStartConf, SessionMonitorStopConf};
use crate::session::server::{failure_conf, reply, MonitorTarget, Request, Session};

/// Append a reply to the session's output, hold it to its output bound and
/// wake its writer.
fn answer(shard: &Shard, conn: &Rc<Conn>, f: impl FnOnce(&mut Vec<u8>, crate::proto::Version)) {
    let mut st = conn.state.borrow_mut();
    let version = st.session.version;
    f(&mut st.out.local, version);
    drop(st);
    if !super::dispatch::bound_output(shard, conn) {
        conn.write_ready.notify();
    }
}

fn fail(shard: &Shard, conn: &Rc<Conn>, invoke_id: u32, code: u32) {
    answer(shard, conn, |out, v| failure_conf(out, v, invoke_id, code));
}

/// Carry out one request of `conn`'s session.
pub fn handle(shard: &Shard, conn: &Rc<Conn>, request: Request) {
    match request {
        Request::MonitorStart {
            invoke_id,
            target,
            call_mask,
            agent_mask,
        } => {
            let watch = match target {
                MonitorTarget::Call(c) => Watch::Call(c),
                MonitorTarget::Device(d) => Watch::Device(d),
            };
            let monitor = Monitor {
                id: next_monitor_id(),
                session: conn.id,
                watch,
                call_mask,
                agent_mask,
                client_events: false,
                calls: Default::default(),
            };
            let key = monitor.watch.keys()[0];
            let first = shard.monitors.borrow_mut().count_up(key);
            let monitor_id = monitor.id;
            shard
                .pending_monitors
                .borrow_mut()
                .insert(monitor_id, monitor);
            shard.send_to_ingest(ToIngest::MonitorStart {
                shard: shard.index,
                session: conn.id,
                invoke_id,
                monitor_id,
                key,
                first,
            });
        }
        Request::MonitorStop {
            invoke_id,
            monitor_id,
        } => {
            if !owns(shard, conn, monitor_id) {
                return fail(shard, conn, invoke_id, status::E_CTI_INVALID_MONITORID);
            }
            remove_monitor(shard, monitor_id);
            answer(shard, conn, |out, v| {
                reply(out, v, MonitorStopConf { invoke_id }.into())
            });
        }
        Request::ChangeMonitorMask {
            invoke_id,
            monitor_id,
            call_mask,
            agent_mask,
        } => {
            if !owns(shard, conn, monitor_id) {
                return fail(shard, conn, invoke_id, status::E_CTI_INVALID_MONITORID);
            }
            if let Some(m) = shard.monitors.borrow_mut().get_mut(monitor_id) {
                m.call_mask = call_mask;
                m.agent_mask = agent_mask;
            }
            answer(shard, conn, |out, v| {
                reply(out, v, ChangeMonitorMaskConf { invoke_id }.into())
            });
        }
        Request::SessionMonitorStart {
            invoke_id,
            session_id,
        } => {
            if session_id == conn.id {
                return fail(
                    shard,
                    conn,
                    invoke_id,
                    status::E_CTI_SESSION_MONITOR_IS_CLIENTS,
                );
            }
            let exists = conn
                .state
                .borrow()
                .session_monitors
                .iter()
                .any(|&(_, t)| t == session_id);
            if exists {
                return fail(
                    shard,
                    conn,
                    invoke_id,
                    status::E_CTI_SESSION_MONITOR_ALREADY_EXISTS,
                );
            }
            let monitor_id = next_monitor_id();
            // Reserve it now so a second request for the same session is refused (56).
            conn.state
                .borrow_mut()
                .session_monitors
                .push((monitor_id, session_id));
            shard.send_to_ingest(ToIngest::SessionMonitorStart {
                shard: shard.index,
                session: conn.id,
                invoke_id,
                monitor_id,
                target: session_id,
            });
        }
        Request::SessionMonitorStop {
            invoke_id,
            monitor_id,
        } => {
            let mut st = conn.state.borrow_mut();
            let before = st.session_monitors.len();
            st.session_monitors.retain(|&(id, _)| id != monitor_id);
            let owned = st.session_monitors.len() != before;
            drop(st);
            if !owned {
                return fail(shard, conn, invoke_id, status::E_CTI_INVALID_MONITORID);
            }
            shard.send_to_ingest(ToIngest::SessionMonitorStop { monitor_id });
            answer(shard, conn, |out, v| {
                reply(out, v, SessionMonitorStopConf { invoke_id }.into())
            });
        }
    }
}

fn owns(shard: &Shard, conn: &Conn, monitor_id: u32) -> bool {
    let index = shard.monitors.borrow();
    index
        .get(monitor_id)
        .is_some_and(|m| m.session == conn.id && !m.client_events)
}

/// Remove a monitor and tell ingest about keys nobody here watches any more.
pub fn remove_monitor(shard: &Shard, monitor_id: u32) {
    let removed = shard.monitors.borrow_mut().remove(monitor_id);
    if let Some((_, gone)) = removed {
        for key in gone {
            shard.send_to_ingest(ToIngest::InterestDown {
                shard: shard.index,
                key,
            });
        }
    }
}

/// Ingest's answer to a MONITOR_START_REQ.
pub fn on_monitor_start_result(
    shard: &Shard,
    session: u32,
    invoke_id: u32,
    monitor_id: u32,
    result: Result<(), u32>,
) {
    let Some(monitor) = shard.pending_monitors.borrow_mut().remove(&monitor_id) else {
        return;
    };
    let conn = shard
        .conn(session)
        .filter(|c| c.state.borrow().session.is_open());
    match (conn, result) {
        (Some(conn), Ok(())) => {
            shard.monitors.borrow_mut().insert(monitor);
            answer(shard, &conn, |out, v| {
                reply(
                    out,
                    v,
                    MonitorStartConf {
                        invoke_id,
                        monitor_id,
                    }
                    .into(),
                )
            });
        }
        (conn, result) => {
            let key = monitor.watch.keys()[0];
            if shard.monitors.borrow_mut().count_down(key) {
                shard.send_to_ingest(ToIngest::InterestDown {
                    shard: shard.index,
                    key,
                });
            }
            if let (Some(conn), Err(code)) = (conn, result) {
                fail(shard, &conn, invoke_id, code);
            }
        }
    }
}

/// Ingest's answer to a SESSION_MONITOR_START_REQ.
pub fn on_session_monitor_result(
    shard: &Shard,
    session: u32,
    invoke_id: u32,
    monitor_id: u32,
    result: Result<(), u32>,
) {
    let Some(conn) = shard.conn(session) else {
        return;
    };
    match result {
        Ok(()) => answer(shard, &conn, |out, v| {
            reply(
                out,
                v,
                SessionMonitorStartConf {
                    invoke_id,
                    monitor_id,
                }
                .into(),
            )
        }),
        Err(code) => {
            conn.state
                .borrow_mut()
                .session_monitors
                .retain(|&(id, _)| id != monitor_id);
            fail(shard, &conn, invoke_id, code);
        }
    }
}

/// The session a session monitor watched has ended: the monitor ends too.
pub fn on_session_monitor_ended(shard: &Shard, session: u32, monitor_id: u32) {
    if let Some(conn) = shard.conn(session) {
        conn.state
            .borrow_mut()
            .session_monitors
            .retain(|&(id, _)| id != monitor_id);
    }
}

/// The Client Events monitor of a session that opened with that service:
/// its agent as named in OPEN_REQ (instrument, else extension, else id), and
/// its instrument as a device, with the OPEN_CONF MonitorID and OPEN masks.
pub fn client_events_monitor(session: &Session) -> Option<Monitor> {
    if session.services & service::CLIENT_EVENTS == 0 {
        return None;
    }
    let c = &session.client;
    let agent = c.agent_key()?;
    let instrument = c
        .agent_instrument
        .as_ref()
        .filter(|v| !v.is_empty())
        .map(|v| DeviceKey::device(v.as_bytes()));
    Some(Monitor {
        id: session.client_events_monitor,
        session: session.id,
        watch: Watch::Agent { agent, instrument },
        call_mask: session.call_mask,
        agent_mask: session.agent_mask,
        client_events: true,
        calls: Default::default(),
    })
}

/// Drop every monitor of an ending session; returns the keys whose count
/// went back to 0 (reported with the session's close). Session monitors it
/// owned are forgotten by ingest with the session.
pub fn drop_session_monitors(shard: &Shard, conn: &Conn) -> Vec<InterestKey> {
    let mut index = shard.monitors.borrow_mut();
    let mut down = Vec::new();
    for id in index.of_session(conn.id) {
        if let Some((_, gone)) = index.remove(id) {
            down.extend(gone);
        }
    }
    // A Client Events monitor not yet activated holds counted keys too.
    let st = conn.state.borrow();
    if st.held {
        if let Some(m) = &st.client_events {
            down.extend(m.watch.keys().into_iter().filter(|k| index.count_down(*k)));
        }
    }
    down
}
