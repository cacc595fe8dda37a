//! `reload` and SIGHUP: re-read the config file and apply the difference to the running switch.

use log::{info, warn};
use vswitch_core::bridge::BridgeConfig;

use super::ReloadReply;
use crate::config::{Config, PortSpec};
use crate::monitor::What;
use crate::port;
use crate::switch::Switch;

/// Re-reads the config file and makes the ports match it: ports the file lists that are not
/// attached start (including ones that died or were deleted since), ports it no longer lists
/// stop, listed ports whose settings (VLANs, flags, link, impairment) changed are re-configured
/// in place, keeping their MAC entries and counters, ports whose kind
/// or target (interface, socket path, peer) changed are closed and reopened, and the others
/// are not touched: their frames keep flowing. Table settings apply at once. Only ports that
/// came from the file are ever stopped; one attached at runtime with `port-add` is left alone,
/// or adopted if the file now lists it. A bad file, or a new port that cannot be opened,
/// changes nothing.
/// Monitors hear of every reload, applied or refused.
pub fn reload(switch: &mut Switch) -> Result<ReloadReply, String> {
    let result = apply(switch);
    if let Err(e) = &result {
        let summary = format!("refused: {e}");
        switch
            .datapath_mut()
            .events_mut()
            .push(What::Reloaded { summary });
    }
    result
}

fn apply(switch: &mut Switch) -> Result<ReloadReply, String> {
    let new = switch.load_config()?;
    let old = switch
        .applied_config()
        .cloned()
        .ok_or("vswitchd was started without --config; there is nothing to reload")?;
    let mut reply = ReloadReply::default();

    // Plan, opening every new port before changing anything so a failure changes nothing.
    let mut retune = Vec::new();
    let mut replace = Vec::new();
    let mut opened = Vec::new();
    for spec in &new.ports {
        match switch.port_id(spec.name.as_str()) {
            Some(id) if switch.is_own_port(id) => reply.failed.push(format!(
                "{}: that is the switch's own port (--ip); rename one of them",
                spec.name
            )),
            Some(id) if switch.port_target(id) == Some(&spec.target) => retune.push((spec, id)),
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
        if let Some(id) = switch.port_id(spec.name.as_str()) {
            switch.remove_port(id, "no longer in the config file (reload)");
        }
        reply.removed.push(spec.name.to_string());
    }
    for (spec, id) in retune {
        if switch.port_settings(id).as_ref() == Some(&spec.settings) {
            reply.unchanged.push(spec.name.to_string());
        } else {
            match switch.set_port_settings(id, &spec.settings) {
                Ok(()) => {
                    info!("port {}: now {spec}", spec.name);
                    reply.reconfigured.push(spec.name.to_string());
                }
                Err(e) => reply.failed.push(format!("{}: {e}", spec.name)),
            }
        }
    }
    for (spec, id) in replace {
        // Same name, other kind: it can only reopen once the old one is closed.
        switch.remove_port(
            id,
            "replaced: the config file changed its kind or target (reload)",
        );
        match port::open(&spec.name, &spec.target) {
            Ok(port) => match switch.attach_opened(spec, port) {
                Ok(_) => reply.replaced.push(spec.name.to_string()),
                Err(e) => reply.failed.push(e),
            },
            Err(e) => reply.failed.push(format!("{}: {e}", spec.name)),
        }
    }
    for (spec, port) in opened {
        match switch.attach_opened(spec, port) {
            Ok(_) => reply.added.push(spec.name.to_string()),
            Err(e) => reply.failed.push(e),
        }
    }
    reply.unchanged.sort();

    if new.seed != old.seed {
        switch.set_seed(new.seed);
    }
    if new.busy_poll != old.busy_poll {
        switch.set_busy_poll(std::time::Duration::from_micros(u64::from(new.busy_poll)));
    }
    // Bindings that left the file go first; then every listed one is (re)applied, since a
    // replaced port took its bindings with it.
    for binding in old
        .arp_bindings
        .iter()
        .filter(|b| !new.arp_bindings.contains(b))
    {
        switch
            .bridge_mut()
            .remove_arp_static(binding.vlan, binding.ip);
    }
    for binding in &new.arp_bindings {
        if let Err(e) = switch.add_arp_binding(binding) {
            reply.failed.push(e);
        }
    }
    // Static MAC entries likewise.
    for entry in old
        .static_macs
        .iter()
        .filter(|e| !new.static_macs.contains(e))
    {
        switch.bridge_mut().remove_mac(entry.vlan, entry.mac);
    }
    // The table settings come after the statics that left and before the new ones, so that
    // a file that both shrinks the table and drops entries fits.
    if new.bridge != old.bridge
        && let Err(e) = switch.bridge_mut().set_config(new.bridge)
    {
        reply
            .failed
            .push(format!("mac-table-size {e}; the table keeps its size"));
        let kept = BridgeConfig {
            mac_table_size: switch.bridge().config().mac_table_size,
            ..new.bridge
        };
        let _ = switch.bridge_mut().set_config(kept);
    }
    for entry in &new.static_macs {
        if let Err(e) = switch.add_static_mac(entry) {
            reply.failed.push(e);
        }
    }
    // Mirrors that left the file or changed go; new and changed ones are (re)added (a
    // replaced port took its mirrors with it).
    for mirror in old.mirrors.iter().filter(|m| !new.mirrors.contains(m)) {
        switch.datapath_mut().remove_mirror(&mirror.name);
    }
    for mirror in &new.mirrors {
        let present = switch
            .datapath()
            .mirrors()
            .any(|(spec, _)| spec.name == mirror.name);
        if !present && let Err(e) = switch.add_mirror(mirror) {
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
    let summary = format!(
        "{} added, {} removed, {} reconfigured, {} replaced, {} unchanged, {} failed",
        reply.added.len(),
        reply.removed.len(),
        reply.reconfigured.len(),
        reply.replaced.len(),
        reply.unchanged.len(),
        reply.failed.len()
    );
    info!("config reloaded: {summary}");
    switch
        .datapath_mut()
        .events_mut()
        .push(What::Reloaded { summary });
    // On SIGHUP nobody reads the reply: failures must reach the log.
    for failure in &reply.failed {
        warn!("reload: {failure}");
    }
    // From now on the file manages the ports it lists that are attached; a failed one is
    // tried again at the next reload.
    let attached: Vec<PortSpec> = new
        .ports
        .iter()
        .filter(|s| switch.port_id(s.name.as_str()).is_some())
        .cloned()
        .collect();
    switch.set_applied_config(Config {
        name: old.name,
        ctl_socket: old.ctl_socket,
        own: old.own,
        ports: attached,
        // A refused table size is tried again at the next reload.
        bridge: switch.bridge().config(),
        ..new
    });
    Ok(reply)
}
