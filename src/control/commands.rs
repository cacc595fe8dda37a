//! What each control command does to the running switch.

use std::collections::BTreeMap;

use log::info;
use serde::Serialize;
use serde_json::Value;

pub use super::reload::reload;
use super::{
    ArpRow, ArpStatsReply, FdbRow, FdbStatsReply, FdbSummary, ImpairmentReply, MirrorRow, PortInfo,
    PortShowReply, PortStatsRow, Request, ShowReply,
};
use crate::bridge::{Mark, PortId, PortStats};
use crate::config::{MirrorConfig, PortSpec, split_options};
use crate::datapath::taps::{CaptureCounts, Direction};
use crate::switch::Switch;
use crate::wire::vlan::MAX_VID;

/// Runs one request; `Err` is the message the client sees.
pub fn execute(switch: &mut Switch, request: Request) -> Result<Value, String> {
    match request {
        Request::Show {} => to_value(show(switch)),
        Request::FdbShow {} => to_value(fdb_show(switch)),
        Request::FdbSave {} => {
            let mut rows = fdb_show(switch);
            rows.retain(|r| {
                r.is_static
                    && !switch
                        .port_id(&r.port)
                        .is_some_and(|id| switch.is_own_port(id))
            });
            to_value(rows)
        }
        Request::FdbFlush { port } => {
            let id = port.as_deref().map(|n| port_id(switch, n)).transpose()?;
            let removed = switch.bridge_mut().flush(id);
            Ok(serde_json::json!({ "removed": removed }))
        }
        Request::FdbAdd {
            port,
            mac,
            vlan,
            remote,
        } => {
            check_vlan(vlan)?;
            let id = port_id(switch, &port)?;
            if let Some(remote) = remote {
                let tunnel = switch
                    .datapath_mut()
                    .port_mut(id)
                    .ok_or_else(|| format!("no port {port}"))?;
                tunnel.set_remote(vlan, mac, Some(remote))?;
            }
            switch
                .bridge_mut()
                .add_static(id, vlan, mac)
                .map_err(|e| format!("cannot add {mac} on {port}: {e}"))?;
            Ok(Value::Null)
        }
        Request::FdbDel { mac, vlan } => {
            check_vlan(vlan)?;
            let holder = switch.bridge().fdb().get(vlan, mac).map(|(p, _, _)| p);
            if let Some(tunnel) = holder.and_then(|p| switch.datapath_mut().port_mut(p)) {
                // A remote pinned with the entry goes with it (other ports have none).
                let _ = tunnel.set_remote(vlan, mac, None);
            }
            if switch.bridge_mut().remove_mac(vlan, mac) {
                Ok(Value::Null)
            } else {
                Err(format!("no entry for {mac} in VLAN {vlan}"))
            }
        }
        Request::FdbStats {} => {
            let fdb = switch.bridge().fdb();
            let c = fdb.counters();
            to_value(FdbStatsReply {
                entries: fdb.len(),
                max: fdb.capacity(),
                static_entries: fdb.static_len(),
                learned: c.learned,
                moved: c.moved,
                expired: c.expired,
                evicted: c.evicted,
            })
        }
        Request::PortList {} => to_value(port_infos(switch)),
        Request::PortAdd { spec } => {
            let spec: PortSpec = spec.parse().map_err(|e| format!("{e}"))?;
            let id = switch.attach(&spec)?;
            switch.release_from_config(spec.name.as_str());
            to_value(port_info(switch, id))
        }
        Request::PortDel { name } => {
            let id = port_id(switch, &name)?;
            if switch.is_own_port(id) {
                return Err(format!(
                    "{name} is the switch's own port (--ip); it goes when the switch does"
                ));
            }
            let macs = switch.bridge().fdb().port_len(id);
            switch.remove_port(id, "deleted by vswitchctl port del");
            switch.release_from_config(&name);
            info!("port {name} deleted by a control client");
            Ok(serde_json::json!({ "name": name, "macs_removed": macs }))
        }
        Request::PortSet { name, settings } => {
            let id = port_id(switch, &name)?;
            let mut next = switch
                .port_settings(id)
                .ok_or_else(|| format!("no port named {name:?}"))?;
            let mut options = Vec::new();
            for item in &settings {
                options.extend(split_options(item).map_err(|e| e.to_string())?);
            }
            if options.is_empty() {
                return Err("nothing to set: give KEY=VALUE".to_owned());
            }
            let pairs: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
            next.apply(&pairs)
                .map_err(|e| format!("port {name}: {e}"))?;
            switch.set_port_settings(id, &next)?;
            info!(
                "port {name}: set {} by a control client",
                settings.join(" ")
            );
            to_value(port_show(switch, id))
        }
        Request::PortShow { name } => {
            let id = port_id(switch, &name)?;
            to_value(port_show(switch, id))
        }
        Request::Capture { .. } => {
            Err("a capture needs a connection of its own: use vswitchctl capture".to_owned())
        }
        Request::Monitor { .. } => {
            Err("a monitor needs a connection of its own: use vswitchctl monitor".to_owned())
        }
        Request::PortStats { name } => {
            let ids = match name {
                Some(n) => vec![port_id(switch, &n)?],
                None => switch.bridge().ports().collect(),
            };
            let rows: Vec<PortStatsRow> = ids
                .into_iter()
                .filter_map(|id| {
                    let name = switch.port(id)?.name().to_owned();
                    let capture = switch.datapath().capture_counts(id)?;
                    Some(stats_row(name, &switch.port_stats(id)?, capture))
                })
                .collect();
            to_value(rows)
        }
        Request::ArpShow {} => to_value(arp_show(switch)),
        Request::ArpStats {} => {
            let arp = switch.bridge().arp();
            let c = arp.counters();
            to_value(ArpStatsReply {
                entries: arp.len(),
                learned: c.table.learned,
                moved: c.table.moved,
                expired: c.table.expired,
                evicted: c.table.evicted,
                suppressed: c.suppressed,
                guarded: c.guarded,
                malformed: c.malformed,
                suppress: switch.bridge().config().arp_suppress,
            })
        }
        Request::Reload {} => to_value(reload(switch)?),
        Request::Metrics {} => Ok(Value::String(super::metrics::render(switch))),
        Request::MirrorAdd {
            name,
            from,
            direction,
            vlan,
            to,
        } => {
            let mirror = MirrorConfig {
                name: name.clone(),
                from,
                to,
                direction: direction.unwrap_or_else(|| "both".to_owned()),
                vlan,
            };
            switch.add_mirror(&mirror)?;
            info!(
                "mirror {name}: {} -> {}, added by a control client",
                mirror.from.join(","),
                mirror.to
            );
            to_value(mirror_rows(switch))
        }
        Request::MirrorDel { name } => {
            if !switch.datapath_mut().remove_mirror(&name) {
                return Err(format!("no mirror named {name:?}"));
            }
            info!("mirror {name} removed by a control client");
            Ok(Value::Null)
        }
        Request::MirrorList {} => to_value(mirror_rows(switch)),
        Request::Version {} => Ok(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })),
    }
}

fn to_value<T: Serialize>(value: T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| format!("cannot encode the reply: {e}"))
}

fn check_vlan(vlan: u16) -> Result<(), String> {
    if vlan > MAX_VID {
        return Err(format!("VLAN {vlan} is out of range (0 to {MAX_VID})"));
    }
    Ok(())
}

fn port_id(switch: &Switch, name: &str) -> Result<PortId, String> {
    switch
        .port_id(name)
        .ok_or_else(|| format!("no port named {name:?}"))
}

fn port_info(switch: &Switch, id: PortId) -> Option<PortInfo> {
    let port = switch.port(id)?;
    Some(PortInfo {
        id: id.0,
        name: port.name().to_owned(),
        kind: port.kind().to_string(),
        state: switch.port_state(id).to_owned(),
        macs: switch.bridge().fdb().port_len(id),
        vlan: switch
            .bridge()
            .vlan_mode(id)
            .map(ToString::to_string)
            .unwrap_or_default(),
        detail: port.detail(),
    })
}

fn port_show(switch: &Switch, id: PortId) -> Option<PortShowReply> {
    let port = switch.port(id)?;
    let settings = switch.port_settings(id)?;
    let (_, rx, tx) = switch.datapath().impairment(id)?;
    Some(PortShowReply {
        name: port.name().to_owned(),
        kind: port.kind().to_string(),
        state: switch.port_state(id).to_owned(),
        carrier: match port.carrier() {
            Ok(()) => "switch".to_owned(),
            Err(why) => why.to_owned(),
        },
        settings: settings.keys().into_iter().collect(),
        impairment: ImpairmentReply { rx, tx },
    })
}

fn mirror_rows(switch: &Switch) -> Vec<MirrorRow> {
    switch
        .datapath()
        .mirrors()
        .map(|(spec, counts)| MirrorRow {
            name: spec.name.clone(),
            from: spec.from.iter().map(|&p| switch.port_name(p)).collect(),
            direction: match spec.direction {
                None => "both",
                Some(Direction::Rx) => "rx",
                Some(Direction::Tx) => "tx",
            }
            .to_owned(),
            vlan: spec.vlan,
            to: switch.port_name(spec.to),
            frames: counts.frames,
            dropped: counts.dropped,
        })
        .collect()
}

fn port_infos(switch: &Switch) -> Vec<PortInfo> {
    switch
        .bridge()
        .ports()
        .filter_map(|id| port_info(switch, id))
        .collect()
}

fn show(switch: &Switch) -> ShowReply {
    let fdb = switch.bridge().fdb();
    ShowReply {
        name: switch.name().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime: switch.now().as_secs(),
        config: switch.config_path().map(|p| p.display().to_string()),
        fdb: FdbSummary {
            entries: fdb.len(),
            static_entries: fdb.static_len(),
            max: fdb.capacity(),
            ageing: fdb.ageing(),
        },
        ports: port_infos(switch),
    }
}

/// A table listed in pieces, between frames: `fdb show` and `arp show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dump {
    Fdb,
    Arp,
}

impl Dump {
    /// The dump a request asks for, if it is one.
    pub fn of(request: &Request) -> Option<Dump> {
        match request {
            Request::FdbShow {} => Some(Dump::Fdb),
            Request::ArpShow {} => Some(Dump::Arp),
            _ => None,
        }
    }

    /// Appends up to `max` rows from `cursor` on to `out` as JSON array items (`first`: no
    /// comma before the first); returns where to go on from, `None` when done.
    pub fn piece(
        self,
        switch: &Switch,
        cursor: usize,
        max: usize,
        out: &mut Vec<u8>,
        first: &mut bool,
    ) -> Option<usize> {
        let now = switch.now();
        let bridge = switch.bridge();
        match self {
            Dump::Fdb => bridge.fdb().entries_from(cursor, max, now, |e| {
                push_row(out, first, &fdb_row(switch, &e));
            }),
            Dump::Arp => bridge.arp().entries_from(cursor, max, now, |e| {
                push_row(out, first, &arp_row(switch, &e));
            }),
        }
    }
}

/// Appends `row` to a JSON array being written, with a comma unless it is the `first`.
fn push_row<T: Serialize>(out: &mut Vec<u8>, first: &mut bool, row: &T) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    // Rows are strings, numbers and booleans: serialising cannot fail.
    let _ = serde_json::to_writer(out, row);
}

fn fdb_row(switch: &Switch, e: &crate::bridge::FdbEntry) -> FdbRow {
    FdbRow {
        port: switch.port_name(e.port),
        vlan: e.vlan,
        mac: e.mac,
        age: e.age,
        is_static: e.age.is_none(),
        sticky: e.mark == Mark::Sticky,
        locked: e.mark == Mark::Locked,
        remote: switch
            .datapath()
            .port(e.port)
            .and_then(|p| p.remote_of(e.vlan, e.mac)),
    }
}

fn arp_row(switch: &Switch, e: &crate::bridge::ArpEntry) -> ArpRow {
    ArpRow {
        vlan: e.vlan,
        ip: e.ip,
        mac: e.mac,
        port: switch.port_name(e.port),
        age: e.age,
        is_static: e.age.is_none(),
    }
}

fn fdb_show(switch: &Switch) -> Vec<FdbRow> {
    let mut rows: Vec<FdbRow> = switch
        .bridge()
        .fdb()
        .entries(switch.now())
        .map(|e| fdb_row(switch, &e))
        .collect();
    rows.sort_by(|a, b| (&a.port, a.vlan, a.mac).cmp(&(&b.port, b.vlan, b.mac)));
    rows
}

fn arp_show(switch: &Switch) -> Vec<ArpRow> {
    let mut rows: Vec<ArpRow> = switch
        .bridge()
        .arp()
        .entries(switch.now())
        .map(|e| arp_row(switch, &e))
        .collect();
    rows.sort_by_key(|r| (r.vlan, r.ip));
    rows
}

fn stats_row(name: String, stats: &PortStats, capture: CaptureCounts) -> PortStatsRow {
    PortStatsRow {
        name,
        rx_frames: stats.rx_frames,
        rx_bytes: stats.rx_bytes,
        tx_frames: stats.tx_frames,
        tx_bytes: stats.tx_bytes,
        drops: stats
            .drop_counts()
            .map(|(r, n)| (r.name().to_owned(), n))
            .collect::<BTreeMap<_, _>>(),
        captured: capture.captured,
        capture_dropped: capture.dropped,
    }
}
