//! What each control command does to the running switch.

use std::collections::BTreeMap;

use log::{info, warn};
use serde::Serialize;
use serde_json::Value;

use super::{
    ArpRow, ArpStatsReply, FdbRow, FdbStatsReply, FdbSummary, PortInfo, PortStatsRow, ReloadReply,
    Request, ShowReply,
};
use crate::bridge::{PortId, PortStats};
use crate::config::{Config, PortSpec};
use crate::port::{self, PortKind};
use crate::reactor::Reactor;
use crate::wire::vlan::MAX_VID;

/// Runs one request; `Err` is the message the client sees.
pub fn execute(reactor: &mut Reactor, request: Request) -> Result<Value, String> {
    match request {
        Request::Show {} => to_value(show(reactor)),
        Request::FdbShow {} => to_value(fdb_show(reactor)),
        Request::FdbFlush { port } => {
            let id = port.as_deref().map(|n| port_id(reactor, n)).transpose()?;
            let removed = reactor.bridge_mut().flush(id);
            Ok(serde_json::json!({ "removed": removed }))
        }
        Request::FdbAdd { port, mac, vlan } => {
            check_vlan(vlan)?;
            let id = port_id(reactor, &port)?;
            reactor
                .bridge_mut()
                .add_static(id, vlan, mac)
                .map_err(|e| format!("cannot add {mac} on {port}: {e}"))?;
            Ok(Value::Null)
        }
        Request::FdbDel { mac, vlan } => {
            check_vlan(vlan)?;
            if reactor.bridge_mut().remove_mac(vlan, mac) {
                Ok(Value::Null)
            } else {
                Err(format!("no entry for {mac} in VLAN {vlan}"))
            }
        }
        Request::FdbStats {} => {
            let fdb = reactor.bridge().fdb();
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
        Request::PortList {} => to_value(port_infos(reactor)),
        Request::PortAdd { spec } => {
            let spec: PortSpec = spec.parse().map_err(|e| format!("{e}"))?;
            let id = reactor.attach(&spec)?;
            reactor.release_from_config(spec.name.as_str());
            to_value(port_info(reactor, id))
        }
        Request::PortDel { name } => {
            let id = port_id(reactor, &name)?;
            if is_own_port(reactor, id) {
                return Err(format!(
                    "{name} is the switch's own port (--ip); it goes when the switch does"
                ));
            }
            let macs = reactor.bridge().fdb().port_len(id);
            reactor.remove_port(id);
            reactor.release_from_config(&name);
            info!("port {name} deleted by a control client");
            Ok(serde_json::json!({ "name": name, "macs_removed": macs }))
        }
        Request::PortStats { name } => {
            let ids = match name {
                Some(n) => vec![port_id(reactor, &n)?],
                None => reactor.bridge().ports().collect(),
            };
            let rows: Vec<PortStatsRow> = ids
                .into_iter()
                .filter_map(|id| {
                    let name = reactor.port(id)?.name().to_owned();
                    Some(stats_row(name, reactor.bridge().port_stats(id)?))
                })
                .collect();
            to_value(rows)
        }
        Request::ArpShow {} => to_value(arp_show(reactor)),
        Request::ArpStats {} => {
            let arp = reactor.bridge().arp();
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
                suppress: reactor.bridge().config().arp_suppress,
            })
        }
        Request::Reload {} => to_value(reload(reactor)?),
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

/// The switch's own port (`--ip`), which only goes with the switch.
fn is_own_port(reactor: &Reactor, id: PortId) -> bool {
    reactor
        .port(id)
        .is_some_and(|p| p.kind() == PortKind::Internal)
}

fn port_id(reactor: &Reactor, name: &str) -> Result<PortId, String> {
    reactor
        .port_id(name)
        .ok_or_else(|| format!("no port named {name:?}"))
}

fn port_info(reactor: &Reactor, id: PortId) -> Option<PortInfo> {
    let port = reactor.port(id)?;
    Some(PortInfo {
        id: id.0,
        name: port.name().to_owned(),
        kind: port.kind().to_string(),
        state: reactor.port_state(id).to_owned(),
        macs: reactor.bridge().fdb().port_len(id),
        vlan: reactor
            .bridge()
            .vlan_mode(id)
            .map(ToString::to_string)
            .unwrap_or_default(),
        detail: port.detail(),
    })
}

fn port_infos(reactor: &Reactor) -> Vec<PortInfo> {
    reactor
        .bridge()
        .ports()
        .filter_map(|id| port_info(reactor, id))
        .collect()
}

fn show(reactor: &Reactor) -> ShowReply {
    let fdb = reactor.bridge().fdb();
    ShowReply {
        name: reactor.name().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime: reactor.now().as_secs(),
        config: reactor.config_path().map(|p| p.display().to_string()),
        fdb: FdbSummary {
            entries: fdb.len(),
            static_entries: fdb.static_len(),
            max: fdb.capacity(),
            ageing: fdb.ageing(),
        },
        ports: port_infos(reactor),
    }
}

fn fdb_show(reactor: &Reactor) -> Vec<FdbRow> {
    let mut rows: Vec<FdbRow> = reactor
        .bridge()
        .fdb()
        .entries(reactor.now())
        .map(|e| FdbRow {
            port: reactor.port_name(e.port),
            vlan: e.vlan,
            mac: e.mac,
            age: e.age,
            is_static: e.age.is_none(),
        })
        .collect();
    rows.sort_by(|a, b| (&a.port, a.vlan, a.mac).cmp(&(&b.port, b.vlan, b.mac)));
    rows
}

fn arp_show(reactor: &Reactor) -> Vec<ArpRow> {
    let mut rows: Vec<ArpRow> = reactor
        .bridge()
        .arp()
        .entries(reactor.now())
        .map(|e| ArpRow {
            vlan: e.vlan,
            ip: e.ip,
            mac: e.mac,
            port: reactor.port_name(e.port),
            age: e.age,
            is_static: e.age.is_none(),
        })
        .collect();
    rows.sort_by_key(|r| (r.vlan, r.ip));
    rows
}

fn stats_row(name: String, stats: &PortStats) -> PortStatsRow {
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
    }
}

/// Re-reads the config file and makes the ports match it: ports the file lists that are not
/// attached start (including ones that died or were deleted since), ports it no longer lists
/// stop, listed ports whose VLAN settings changed are re-configured in place, ports whose kind
/// or target (interface, socket path, peer) changed are closed and reopened, and the others
/// are not touched: their frames keep flowing. Table settings apply at once. Only ports that
/// came from the file are ever stopped; one attached at runtime with `port-add` is left alone,
/// or adopted if the file now lists it. A bad file, or a new port that cannot be opened,
/// changes nothing.
pub fn reload(reactor: &mut Reactor) -> Result<ReloadReply, String> {
    let new = reactor.load_config()?;
    let old = reactor
        .applied_config()
        .cloned()
        .ok_or("vswitchd was started without --config; there is nothing to reload")?;
    let mut reply = ReloadReply::default();

    // Plan, opening every new port before changing anything so a failure changes nothing.
    let mut retune = Vec::new();
    let mut replace = Vec::new();
    let mut opened = Vec::new();
    for spec in &new.ports {
        match reactor.port_id(spec.name.as_str()) {
            Some(id) if is_own_port(reactor, id) => reply.failed.push(format!(
                "{}: that is the switch's own port (--ip); rename one of them",
                spec.name
            )),
            Some(id) if reactor.port_target(id) == Some(&spec.target) => retune.push((spec, id)),
            Some(id) => replace.push((spec, id)),
            None => {
                let port = port::open(&spec.name, &spec.target)
                    .map_err(|e| format!("reload aborted, nothing changed: {e}"))?;
                opened.push((spec, port));
            }
        }
    }
    let dropped: Vec<&PortSpec> = old
        .ports
        .iter()
        .filter(|o| !new.ports.iter().any(|n| n.name == o.name))
        .collect();

    for spec in dropped {
        if let Some(id) = reactor.port_id(spec.name.as_str()) {
            reactor.remove_port(id);
        }
        reply.removed.push(spec.name.to_string());
    }
    for (spec, id) in retune {
        let config = spec.port_config();
        if reactor.bridge().port_config(id) == Some(&config) {
            reply.unchanged.push(spec.name.to_string());
        } else {
            reactor.bridge_mut().set_port_config(id, config);
            info!("port {}: now {spec}", spec.name);
            reply.reconfigured.push(spec.name.to_string());
        }
    }
    for (spec, id) in replace {
        // Same name, other kind: it can only reopen once the old one is closed.
        reactor.remove_port(id);
        match port::open(&spec.name, &spec.target) {
            Ok(port) => match reactor.attach_opened(spec, port) {
                Ok(_) => reply.replaced.push(spec.name.to_string()),
                Err(e) => reply.failed.push(e),
            },
            Err(e) => reply.failed.push(format!("{}: {e}", spec.name)),
        }
    }
    for (spec, port) in opened {
        match reactor.attach_opened(spec, port) {
            Ok(_) => reply.added.push(spec.name.to_string()),
            Err(e) => reply.failed.push(e),
        }
    }
    reply.unchanged.sort();

    if new.bridge != old.bridge {
        reactor.bridge_mut().set_config(new.bridge);
    }
    if new.busy_poll != old.busy_poll {
        reactor.set_busy_poll(std::time::Duration::from_micros(u64::from(new.busy_poll)));
    }
    // Bindings that left the file go first; then every listed one is (re)applied, since a
    // replaced port took its bindings with it.
    for binding in old
        .arp_bindings
        .iter()
        .filter(|b| !new.arp_bindings.contains(b))
    {
        reactor
            .bridge_mut()
            .remove_arp_static(binding.vlan, binding.ip);
    }
    for binding in &new.arp_bindings {
        if let Err(e) = reactor.add_arp_binding(binding) {
            reply.failed.push(e);
        }
    }
    if new.own != old.own {
        reply
            .needs_restart
            .push("the switch's own address (ip, ip-mac, ip-vlan)".to_owned());
    }
    if new.name != old.name {
        reply
            .needs_restart
            .push(format!("name: {} -> {}", old.name, new.name));
    }
    if new.ctl_socket != old.ctl_socket {
        reply.needs_restart.push(format!(
            "ctl-socket: {} -> {}",
            old.ctl_socket.display(),
            new.ctl_socket.display()
        ));
    }
    info!(
        "config reloaded: {} added, {} removed, {} reconfigured, {} replaced, {} unchanged, {} failed",
        reply.added.len(),
        reply.removed.len(),
        reply.reconfigured.len(),
        reply.replaced.len(),
        reply.unchanged.len(),
        reply.failed.len()
    );
    // On SIGHUP nobody reads the reply: failures must reach the log.
    for failure in &reply.failed {
        warn!("reload: {failure}");
    }
    // From now on the file manages the ports it lists that are attached; a failed one is
    // tried again at the next reload.
    let attached: Vec<PortSpec> = new
        .ports
        .iter()
        .filter(|s| reactor.port_id(s.name.as_str()).is_some())
        .cloned()
        .collect();
    reactor.set_applied_config(Config {
        name: old.name,
        ctl_socket: old.ctl_socket,
        own: old.own,
        ports: attached,
        ..new
    });
    Ok(reply)
}
