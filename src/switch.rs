//! The running switch as its operators see it: the datapath, the ports with what they were
//! opened on, and where the configuration came from. Control commands and reloads act on this;
//! the event loop owns it and drives its datapath. It registers ports with the loop's mio
//! registry itself, so attaching a port needs nothing from the loop.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Registry, Token};

use crate::bridge::{Bridge, BridgeConfig, LinkState, PortConfig, PortId, PortStats, VlanMode};
use crate::config::{
    ArpBinding, Config, MirrorConfig, OwnAddress, PortSettings, PortSpec, StaticMac,
};
use crate::datapath::Datapath;
use crate::datapath::mirror::MirrorSpec;
use crate::datapath::taps::Direction;
use crate::monitor::What;
use crate::port::internal::{self, InternalPort};
use crate::port::{self, Port, PortKind, Target};

/// Re-reads the configuration for `reload` and SIGHUP.
pub type ConfigLoader = Box<dyn FnMut() -> Result<Config, String> + Send>;

/// Where the configuration came from, so it can be re-read.
struct ConfigSource {
    path: PathBuf,
    load: ConfigLoader,
    /// The configuration applied last; its ports are the ones a reload manages (attached from
    /// the file and not since taken over by `port-add`/`port-del`).
    applied: Config,
}

/// The switch: its datapath and everything that manages it.
pub struct Switch {
    name: String,
    start: Instant,
    registry: Registry,
    datapath: Datapath,
    /// What each port was opened on, when it came from a spec (`--port`, the file, `port add`).
    targets: Vec<Option<Target>>,
    config: Option<ConfigSource>,
    busy_poll: Duration,
    /// `--seed`: seeds the impairment of ports without a seed of their own.
    seed: Option<u64>,
    /// Ports attached since the loop last asked: it reads each once, for frames that queued
    /// before their registration.
    attached: Vec<PortId>,
}

impl Switch {
    /// A switch called `name` with no ports yet, whose ports register with `registry`.
    pub fn new(
        name: &str,
        config: BridgeConfig,
        registry: Registry,
        busy_poll: Duration,
    ) -> Switch {
        Switch {
            name: name.to_owned(),
            start: Instant::now(),
            registry,
            datapath: Datapath::new(config),
            targets: Vec::new(),
            config: None,
            busy_poll,
            seed: None,
            attached: Vec::new(),
        }
    }

    /// Seeds the impairment of ports attached or changed from now on (`--seed`).
    pub fn set_seed(&mut self, seed: Option<u64>) {
        self.seed = seed;
    }

    /// Every setting of the port, as `port show` lists them.
    pub fn port_settings(&self, id: PortId) -> Option<PortSettings> {
        Some(PortSettings {
            port: self.bridge().port_config(id)?.clone(),
            impair: self.datapath.impairment(id)?.0,
        })
    }

    /// Applies `settings` to the running port: the core's share (a new VLAN mode forgets the
    /// port's learned entries), the link state (the carrier follows where the port has one)
    /// and the impairment. Its MAC entries otherwise, counters and frames in flight stay.
    pub fn set_port_settings(&mut self, id: PortId, settings: &PortSettings) -> Result<(), String> {
        let Some(old) = self.port_settings(id) else {
            return Err(format!("no port {id}"));
        };
        self.bridge_mut().set_port_config(id, settings.port.clone());
        let link = settings.port.link;
        self.datapath
            .set_edge(id, link.tx(), settings.impair, self.seed);
        if (old.port.link == LinkState::Down) != (link == LinkState::Down) {
            self.follow_carrier(id, link);
        }
        Ok(())
    }

    /// Drops the port's carrier for `link=down` and raises it otherwise, where it has one.
    fn follow_carrier(&mut self, id: PortId, link: LinkState) {
        let name = self.port_name(id);
        let up = link != LinkState::Down;
        if let Some(port) = self.datapath.port_mut(id)
            && port.carrier().is_ok()
            && let Err(e) = port.set_carrier(up)
        {
            let want = if up { "on" } else { "off" };
            warn!("port {name}: cannot set its carrier {want}: {e}");
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Time since the switch started: the clock the datapath runs on.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The [`Switch::now`] clock's zero.
    pub fn started(&self) -> Instant {
        self.start
    }

    pub fn datapath(&self) -> &Datapath {
        &self.datapath
    }

    pub fn datapath_mut(&mut self) -> &mut Datapath {
        &mut self.datapath
    }

    pub fn bridge(&self) -> &Bridge {
        self.datapath.bridge()
    }

    pub fn bridge_mut(&mut self) -> &mut Bridge {
        self.datapath.bridge_mut()
    }

    /// How long the loop keeps polling after the last frame before it sleeps.
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// Sets [`Switch::busy_poll`] (zero: never busy-poll).
    pub fn set_busy_poll(&mut self, busy_poll: Duration) {
        self.busy_poll = busy_poll;
    }

    pub fn port(&self, id: PortId) -> Option<&dyn Port> {
        self.datapath.port(id)
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.datapath.port_id(name)
    }

    pub fn port_name(&self, id: PortId) -> String {
        self.datapath.port_name(id)
    }

    pub fn port_state(&self, id: PortId) -> &'static str {
        self.datapath.port_state(id)
    }

    pub fn port_stats(&self, id: PortId) -> Option<PortStats> {
        self.datapath.port_stats(id)
    }

    /// What the port was opened on, if it came from a spec.
    pub fn port_target(&self, id: PortId) -> Option<&Target> {
        self.targets.get(id.index())?.as_ref()
    }

    /// The switch's own port (`--ip`), which only goes with the switch.
    pub fn is_own_port(&self, id: PortId) -> bool {
        self.port(id)
            .is_some_and(|p| p.kind() == PortKind::Internal)
    }

    /// Attaches a port that carries every VLAN.
    pub fn add_port(&mut self, port: Box<dyn Port>) -> io::Result<PortId> {
        self.add_port_with(port, VlanMode::All)
    }

    /// Attaches a port with `config` (a [`PortConfig`], or just a [`VlanMode`]); it forwards
    /// from the next turn of the loop.
    pub fn add_port_with(
        &mut self,
        port: Box<dyn Port>,
        config: impl Into<PortConfig>,
    ) -> io::Result<PortId> {
        let config = config.into();
        let mode = config.vlan.to_string();
        let id = self
            .datapath
            .add_port(port, config)
            .map_err(io::Error::other)?;
        let Some(port) = self.datapath.port_mut(id) else {
            return Err(io::Error::other("port vanished while attached"));
        };
        if let Err(e) = port.register(&self.registry, Token(id.index())) {
            self.datapath.remove_port(id);
            return Err(e);
        }
        info!(
            "port {} ({}, VLANs: {mode}) attached as {id}",
            port.name(),
            port.kind()
        );
        let attached = What::Attached {
            port: port.name().to_owned(),
            kind: port.kind().to_string(),
        };
        self.datapath.events_mut().push(attached);
        if self.targets.len() <= id.index() {
            self.targets.resize_with(id.index() + 1, || None);
        }
        self.targets[id.index()] = None;
        self.attached.push(id);
        Ok(id)
    }

    /// Ports attached since the last call.
    pub fn take_attached(&mut self) -> std::vec::Drain<'_, PortId> {
        self.attached.drain(..)
    }

    /// Opens the port `spec` describes and attaches it.
    pub fn attach(&mut self, spec: &PortSpec) -> Result<PortId, String> {
        if self.port_id(spec.name.as_str()).is_some() {
            return Err(format!("port {} is already attached", spec.name));
        }
        let port = port::open(&spec.name, &spec.target).map_err(|e| e.to_string())?;
        self.attach_opened(spec, port)
    }

    /// Attaches a port opened from `spec`, remembering its target.
    pub fn attach_opened(
        &mut self,
        spec: &PortSpec,
        port: Box<dyn Port>,
    ) -> Result<PortId, String> {
        let id = self
            .add_port_with(port, spec.settings.port.clone())
            .map_err(|e| format!("cannot watch port {}: {e}", spec.name))?;
        self.targets[id.index()] = Some(spec.target.clone());
        self.set_port_settings(id, &spec.settings)?;
        if spec.settings.port.link == LinkState::Down {
            self.follow_carrier(id, LinkState::Down);
        }
        Ok(id)
    }

    /// Attaches the switch's own port (`--ip`): an internal port with the switch's name, in
    /// the VLAN `own` names.
    pub fn attach_own_address(&mut self, own: &OwnAddress) -> io::Result<PortId> {
        if self.port_id(&self.name).is_some() {
            return Err(io::Error::other(format!(
                "a port is already named {}, the name of the switch's own port",
                self.name
            )));
        }
        if own.ips.len() > internal::MAX_ADDRS {
            return Err(io::Error::other(format!(
                "at most {} addresses for the switch's own port",
                internal::MAX_ADDRS
            )));
        }
        let port = InternalPort::new(&self.name, own.mac, &own.ips);
        let config = PortConfig {
            vlan: VlanMode::Access(own.vlan),
            local: true,
            ..PortConfig::default()
        };
        self.add_port_with(Box::new(port), config)
    }

    /// Adds a static ARP binding from the config file.
    pub fn add_arp_binding(&mut self, binding: &ArpBinding) -> Result<(), String> {
        let port = self.port_id(binding.port.as_str()).ok_or_else(|| {
            format!(
                "static ARP binding for {}: no port {}",
                binding.ip, binding.port
            )
        })?;
        self.bridge_mut()
            .add_arp_static(port, binding.vlan, binding.ip, binding.mac)
            .map_err(|e| format!("static ARP binding for {}: {e}", binding.ip))
    }

    /// Adds a port mirror given by port names (from the config file or `mirror add`).
    pub fn add_mirror(&mut self, mirror: &MirrorConfig) -> Result<(), String> {
        mirror
            .check()
            .map_err(|e| format!("mirror {}: {e}", mirror.name))?;
        let id = |name: &str| {
            self.port_id(name)
                .ok_or_else(|| format!("mirror {}: no port named {name:?}", mirror.name))
        };
        let spec = MirrorSpec {
            name: mirror.name.clone(),
            from: mirror
                .from
                .iter()
                .map(|p| id(p))
                .collect::<Result<_, _>>()?,
            direction: match mirror.direction.as_str() {
                "rx" => Some(Direction::Rx),
                "tx" => Some(Direction::Tx),
                _ => None,
            },
            vlan: mirror.vlan,
            to: id(&mirror.to)?,
        };
        self.datapath
            .add_mirror(spec)
            .map_err(|e| format!("mirror {}: {e}", mirror.name))
    }

    /// Adds a static MAC entry from the config file.
    pub fn add_static_mac(&mut self, entry: &StaticMac) -> Result<(), String> {
        let port = self
            .port_id(entry.port.as_str())
            .ok_or_else(|| format!("static MAC entry for {}: no port {}", entry.mac, entry.port))?;
        self.bridge_mut()
            .add_static(port, entry.vlan, entry.mac)
            .map_err(|e| format!("static MAC entry for {}: {e}", entry.mac))
    }

    /// Detaches a port: its MAC entries are forgotten, and the port is returned to the caller
    /// (dropping it closes it). `reason` is what monitors are told.
    pub fn remove_port(&mut self, id: PortId, reason: &str) -> Option<Box<dyn Port>> {
        let mut port = self.datapath.remove_port(id)?;
        let removed = What::Removed {
            port: port.name().to_owned(),
            reason: reason.to_owned(),
        };
        self.datapath.events_mut().push(removed);
        if let Err(e) = port.deregister(&self.registry) {
            debug!("port {}: deregister: {e}", port.name());
        }
        if let Some(target) = self.targets.get_mut(id.index()) {
            *target = None;
        }
        Some(port)
    }

    /// Removes the ports the datapath found gone.
    pub fn reap_dead(&mut self) {
        while let Some((id, why)) = self.datapath.take_dead() {
            if let Some(port) = self.remove_port(id, &why) {
                warn!("port {} removed: {why}", port.name());
            }
        }
    }

    /// Makes `reload` and SIGHUP re-read the config file at `path` with `load`; `applied` is
    /// the configuration the switch started with.
    pub fn set_config_source(&mut self, path: &Path, load: ConfigLoader, applied: Config) {
        self.config = Some(ConfigSource {
            path: path.to_owned(),
            load,
            applied,
        });
    }

    /// The config file reloads read, if there is one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_ref().map(|c| c.path.as_path())
    }

    /// Reads the config file again (without applying it).
    pub fn load_config(&mut self) -> Result<Config, String> {
        match self.config.as_mut() {
            Some(source) => (source.load)(),
            None => Err("vswitchd was started without --config; there is nothing to reload".into()),
        }
    }

    /// The configuration applied last (at start or by the last reload).
    pub fn applied_config(&self) -> Option<&Config> {
        self.config.as_ref().map(|c| &c.applied)
    }

    pub fn set_applied_config(&mut self, config: Config) {
        if let Some(source) = self.config.as_mut() {
            source.applied = config;
        }
    }

    /// Takes the port `name` out of the config file's management (an operator attached or
    /// detached it by hand): a reload will not stop it because the file no longer lists it.
    pub fn release_from_config(&mut self, name: &str) {
        if let Some(source) = self.config.as_mut() {
            source.applied.ports.retain(|p| p.name.as_str() != name);
        }
    }
}
