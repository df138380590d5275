//! What the simulated PG knows of its calls and devices, as a CTI Server
//! answers it: SNAPSHOT_CALL, SNAPSHOT_DEVICE and QUERY_DEVICE_INFO, and
//! the step a call runs next.
//!
//! A snapshot says what the events sent so far told, as a CTI Server's
//! would: a connection's state is the LocalConnectionState of the last event
//! about it; a call, a connection or call data not yet announced by an event
//! is not in it (docs/call-brackets.md, "Call snapshots").

use super::build::{self, call_type, done, some, CallRef, CALL_ID_TYPE, PT};
use super::calls::{AGENT_INSIDE, AGENT_OUT};
use super::control::{code, fail, Answer};
use super::flow::CallStep;
use super::world::{Call, Phase, NO_AGENT};
use super::Simulator;
use crate::proto::constants::{device_type, lcs};
use crate::proto::group::{CallDevice, DeviceCall};
use crate::proto::msg::*;
use crate::proto::{CtiString, NamedVar};

impl Simulator {
    /// The step the call's pending timer runs next, if it has one.
    pub(super) fn pending_step(&self, call: &Call) -> Option<CallStep> {
        if call.timer == 0 {
            return None;
        }
        self.heap
            .iter()
            .find(|s| s.seq == call.timer)
            .and_then(|s| match s.action {
                super::Action::Call(_, step) => Some(step),
                _ => None,
            })
    }

    /// Every connection of a live call, in the order it joined: (call
    /// identity, device type, device, its state).
    fn connections(&self, call: &Call) -> Vec<(u32, CtiString, u16, CtiString, u16)> {
        let world = &self.world;
        let p = call.primary(world);
        let ext = |x: u32| world.agents[x as usize].ext.clone();
        let pending = self.pending_step(call);
        let mut out = Vec::new();
        let mut add = |c: CallRef<'_>, kind: u16, dev: CtiString, state: u16| {
            out.push((c.id, c.dev.clone(), kind, dev, state));
        };
        let (a, b) = (call.agent, call.other);
        if call.placed_by == NO_AGENT {
            // The caller's trunk: seized (CALL_DELIVERED, LCS_INITIATE), in
            // queue (CALL_QUEUED, whose patience runs), then connected from
            // CALL_DEQUEUED on.
            let trunk = match call.phase {
                Phase::Routing if a == NO_AGENT && pending == Some(CallStep::Abandon) => {
                    lcs::QUEUED
                }
                Phase::Routing if a == NO_AGENT => lcs::INITIATE,
                _ => lcs::CONNECT,
            };
            add(p, device_type::TRUNK, p.dev.clone(), trunk);
        }
        if a != NO_AGENT {
            let mine = match call.phase {
                Phase::Routing => None,
                Phase::Ringing if call.placed_by == NO_AGENT => Some(lcs::ALERTING),
                Phase::Ringing | Phase::Talking | Phase::Conferenced => Some(lcs::CONNECT),
                Phase::Held | Phase::Consulting { .. } => Some(lcs::HOLD),
            };
            if let Some(state) = mine {
                add(p, device_type::DEVICE_IDENTIFIER, ext(a), state);
            }
        }
        if call.placed_by != NO_AGENT && b == NO_AGENT {
            // Dialed outside: CALL_REACHED_NETWORK (LCS_CONNECT) names it
            // as the call is placed.
            add(p, device_type::TRUNK, call.dialed.clone(), lcs::CONNECT);
        }
        if b != NO_AGENT {
            match call.phase {
                Phase::Consulting { consult_up } => {
                    // The consult call is announced when dialed
                    // (BEGIN_CALL … CALL_ORIGINATED), rings at `b` from its
                    // CALL_DELIVERED on.
                    let c = call.consult(world);
                    if pending != Some(CallStep::ConsultDial) {
                        add(c, device_type::DEVICE_IDENTIFIER, ext(a), lcs::CONNECT);
                    }
                    let theirs = match (consult_up, pending) {
                        (true, _) => Some(lcs::CONNECT),
                        (false, Some(CallStep::ConsultDial | CallStep::ConsultAlert)) => None,
                        (false, _) => Some(lcs::ALERTING),
                    };
                    if let Some(state) = theirs {
                        add(c, device_type::DEVICE_IDENTIFIER, ext(b), state);
                    }
                }
                Phase::Ringing => add(p, device_type::DEVICE_IDENTIFIER, ext(b), lcs::ALERTING),
                _ => add(p, device_type::DEVICE_IDENTIFIER, ext(b), lcs::CONNECT),
            }
        }
        out
    }

    /// The calls at a device: an agent's instrument, or any device with a
    /// connection in a live call (a trunk, a number dialed outside).
    pub(super) fn snapshot_device(&self, r: &SnapshotDeviceReq) -> Answer {
        let dev = r.agent_instrument.clone().unwrap_or_default();
        let calls: Vec<DeviceCall> = self
            .live()
            .flat_map(|(_, call)| self.connections(call))
            .filter(|(_, _, _, d, _)| !dev.is_empty() && *d == dev)
            .map(|(id, call_dev, _, _, state)| DeviceCall {
                connection_call_id: Some(id),
                connection_device_id_type: Some(CALL_ID_TYPE),
                connection_device_id: Some(call_dev),
                call_state: Some(state),
                silent_monitor_status: Some(0),
            })
            .collect();
        if calls.is_empty() {
            self.agent_at(r.agent_instrument.as_ref())?;
        }
        Ok(done(
            SnapshotDeviceConf {
                invoke_id: r.invoke_id,
                calls,
                ..Default::default()
            }
            .into(),
        ))
    }

    pub(super) fn snapshot_call(&self, r: &SnapshotCallReq) -> Answer {
        let wanted = r.connection_call_id;
        let Some(call) = self
            .live()
            .map(|(_, c)| c)
            .find(|c| c.id == wanted || c.consult_id == wanted)
        else {
            return fail(code::INVALID_CALL_IDENTIFIER, "no such call");
        };
        let world = &self.world;
        let consult = call.id != wanted;
        let pending = self.pending_step(call);
        if consult && pending == Some(CallStep::ConsultDial) {
            // Not dialed yet: no event has named it.
            return fail(code::INVALID_CALL_IDENTIFIER, "no such call");
        }
        let inbound = call.placed_by == NO_AGENT && !consult;
        let mut conf = SnapshotCallConf {
            invoke_id: r.invoke_id,
            call_type: match (consult, call.placed_by) {
                (true, _) => call_type::CONSULT,
                (false, NO_AGENT) => call_type::PREROUTE_ACD_IN,
                _ if call.other != NO_AGENT => AGENT_INSIDE,
                _ => AGENT_OUT,
            },
            ..Default::default()
        };
        if inbound {
            // BEGIN_CALL's data, then the IVR's (CALL_DATA_UPDATE).
            let cat = &world.catalog;
            conf.ani = some(&call.ani);
            conf.dnis = some(&world.groups[call.group as usize].route_point);
            conf.router_call_key_day = Some(build::ROUTER_DAY_0 + self.day());
            conf.router_call_key_call_id = Some(call.serial);
            if pending != Some(CallStep::Data) {
                conf.call_variable_1 = some(&call.account);
                conf.call_variable_2 = some(&cat.languages[call.language as usize]);
                conf.call_variable_3 = some(&cat.intents[call.intent as usize]);
                conf.call_variable_4 = some(&cat.tiers[call.tier as usize]);
                conf.named_variables.push(NamedVar {
                    name: cat.var_account.clone(),
                    value: call.account.clone(),
                });
                if call.named_intent {
                    conf.named_variables.push(NamedVar {
                        name: cat.var_intent.clone(),
                        value: cat.intents[call.intent as usize].clone(),
                    });
                }
            }
        }
        if !consult {
            let set = &call.data.variables;
            let slots = [
                &mut conf.call_variable_1,
                &mut conf.call_variable_2,
                &mut conf.call_variable_3,
                &mut conf.call_variable_4,
                &mut conf.call_variable_5,
                &mut conf.call_variable_6,
                &mut conf.call_variable_7,
                &mut conf.call_variable_8,
                &mut conf.call_variable_9,
                &mut conf.call_variable_10,
            ];
            for (slot, value) in slots.into_iter().zip(set) {
                if value.is_some() {
                    slot.clone_from(value);
                }
            }
            conf.call_wrapup_data.clone_from(&call.data.wrapup);
        }
        conf.call_devices = self
            .connections(call)
            .into_iter()
            .filter(|(id, ..)| *id == wanted)
            .map(|(id, call_dev, kind, dev, state)| CallDevice {
                connection_call_id: Some(id),
                connection_device_id_type: Some(CALL_ID_TYPE),
                connection_device_id: Some(call_dev),
                device_type: Some(kind),
                device_id: Some(dev),
                connection_state: Some(state),
            })
            .collect();
        Ok(done(conf.into()))
    }

    pub(super) fn query_device_info(&self, r: &QueryDeviceInfoReq) -> Answer {
        self.agent_at(r.agent_instrument.as_ref())?;
        Ok(done(
            QueryDeviceInfoConf {
                invoke_id: r.invoke_id,
                peripheral_type: PT,
                // A phone (DEVT_STATION) of the voice class, one line.
                type_of_device: 0,
                class_of_device: 1,
                max_active_calls: 1,
                max_held_calls: 1,
                max_devices_in_conference: 3,
                ..Default::default()
            }
            .into(),
        ))
    }
}
