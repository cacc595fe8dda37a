//! The switch's settings, validated: what the command line and the TOML config file ask for,
//! merged (flags override the file) into a [`Config`] that cannot hold a bad value.
//!
//! Three parts, each in its own file: the `--port` grammar (`spec.rs`), the file's schema
//! (`file.rs`), and here the merge of flags over the file with what both share: the value
//! parsers, ranges and defaults, and the errors.

mod file;
mod settings;
mod spec;
mod tunnel;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use smoltcp::wire::IpCidr;

use crate::bridge::{BridgeConfig, MoveLimit};
use crate::wire::MacAddr;
use crate::wire::vlan::MAX_VID;
use file::FileConfig;

/// A spec's target and kind are the port layer's; re-exported so users of a [`PortSpec`] can
/// name them from here.
pub use crate::port::{PortKind, Target};
pub use file::{from_toml, line_of, value_text};
pub use settings::{PortSettings, SETTING_KEYS};
pub use spec::{PortSpec, SpecError, check_port_name, split_options};

/// Range of `--mac-ageing`, in seconds.
pub const MAC_AGEING_RANGE: std::ops::RangeInclusive<u32> = 10..=1_000_000;
/// Range of `--mac-table-size`, in entries.
pub const MAC_TABLE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=16_777_216;
/// Range of `--busy-poll`, in microseconds.
pub const BUSY_POLL_RANGE: std::ops::RangeInclusive<u32> = 0..=1_000_000;
/// `--busy-poll` when not given, in microseconds.
pub const DEFAULT_BUSY_POLL: u32 = 50;

/// The switch's name when none is given.
pub const DEFAULT_NAME: &str = "vswitch0";

/// Where the control socket of the switch `name` lives unless `--ctl-socket` says otherwise.
pub fn default_ctl_socket(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/vswitchd/{name}.ctl"))
}

/// An address with its prefix length for `--ip` (`10.0.0.254/24`, `fd00::fe/64`).
pub fn parse_cidr(s: &str) -> Result<IpCidr, String> {
    s.parse::<IpCidr>()
        .map_err(|()| format!("{s:?} is not an address with a prefix length, like 10.0.0.254/24"))
}

/// The MAC of the switch's own port: unicast and not zero.
pub fn parse_own_mac(s: &str) -> Result<MacAddr, String> {
    let mac: MacAddr = s.parse().map_err(|e| format!("{e}"))?;
    if !mac.is_learnable_source() {
        return Err(format!("{mac} is not a unicast MAC"));
    }
    Ok(mac)
}

/// The switch's name: it names the control socket and the logs, so it must be a safe file name.
/// Moves and seconds of `--mac-move-limit`.
pub const MAC_MOVES_RANGE: std::ops::RangeInclusive<u32> = 1..=1_000_000;
/// Seconds of `--mac-move-limit`'s window and of `--mac-move-hold`.
pub const MAC_MOVE_SECS_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;

/// `--mac-move-limit`: off, or at most `moves` moves within `window` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacMoveLimit {
    Off,
    Limit { moves: u32, window: u32 },
}

/// `N/SECS` (at most N moves within SECS seconds) or `off`: MAC-move damping's limit.
pub fn parse_move_limit(text: &str) -> Result<MacMoveLimit, String> {
    if text == "off" {
        return Ok(MacMoveLimit::Off);
    }
    let bad = || format!("{text:?}: expected N/SECS (e.g. 10/10: 10 moves within 10 s) or off");
    let (n, secs) = text.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    let secs: u32 = secs.parse().map_err(|_| bad())?;
    if !MAC_MOVES_RANGE.contains(&n) || !MAC_MOVE_SECS_RANGE.contains(&secs) {
        return Err(format!(
            "{text:?}: moves must be 1 to 1000000 and seconds 1 to 3600"
        ));
    }
    Ok(MacMoveLimit::Limit {
        moves: n,
        window: secs,
    })
}

pub fn parse_switch_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("switch name {name:?} must be 1 to 64 characters"));
    }
    if name.starts_with('.') {
        return Err(format!("switch name {name:?} must not start with '.'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "switch name {name:?} contains {c:?}; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(name.to_owned())
}

/// A configuration that was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no ports: give at least one --port SPEC (e.g. --port tap0) or a --config file")]
    NoPorts,
    #[error("port {0} is given more than once")]
    DuplicatePort(String),
    #[error("cannot read config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "port {0} has the switch's name, which its own port (--ip) takes; rename the port or the switch (--name)"
    )]
    OwnPortName(String),
    #[error("static ARP binding for {ip} names port {port}, which is not configured")]
    UnknownArpPort { ip: Ipv4Addr, port: String },
    #[error("static MAC entry for {mac} names port {port}, which is not configured")]
    UnknownFdbPort { mac: MacAddr, port: String },
    #[error("mirror {mirror} names port {port}, which is not configured")]
    UnknownMirrorPort { mirror: String, port: String },
    #[error("{path}: line {line}: {message}")]
    File {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Settings given on the command line; each one given overrides the file (`--arp-suppress` is a
/// switch: given, it turns suppression on whatever the file says; not given, the file decides).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub name: Option<String>,
    pub ctl_socket: Option<PathBuf>,
    pub mac_ageing: Option<u32>,
    pub mac_table_size: Option<u32>,
    pub busy_poll: Option<u32>,
    pub mac_move_limit: Option<MacMoveLimit>,
    /// `--mac-move-hold`.
    pub mac_move_hold: Option<u32>,
    /// `--seed`: the seed of every port's random impairment that has none of its own.
    pub seed: Option<u64>,
    /// Ports from `--port`: added to the file's; a port named in both takes the flag's spec.
    pub ports: Vec<PortSpec>,
    pub arp_suppress: Option<bool>,
    /// `--ip`: replaces the file's addresses when given.
    pub ips: Vec<IpCidr>,
    pub ip_mac: Option<MacAddr>,
    pub ip_vlan: Option<u16>,
}

/// A static ARP binding from the config file: `ip` is at `mac` behind `port`, for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpBinding {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// The port's name.
    pub port: String,
    pub vlan: u16,
}

/// A static MAC entry from the config file (`[[fdb]]`): frames to `mac` in `vlan` go to
/// `port`, for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticMac {
    /// The port's name.
    pub port: String,
    pub mac: MacAddr,
    pub vlan: u16,
}

/// A port mirror from the config file (`[[mirror]]`), by port names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorConfig {
    pub name: String,
    pub from: Vec<String>,
    pub to: String,
    /// `rx`, `tx` or `both`.
    pub direction: String,
    /// Only frames in this VLAN.
    pub vlan: Option<u16>,
}

impl MirrorConfig {
    /// What can be checked without the ports: a name, sources, a known direction, an output
    /// that is not a source.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("needs a name".to_owned());
        }
        if self.from.is_empty() || self.from.iter().any(String::is_empty) {
            return Err("from: needs one or more port names".to_owned());
        }
        if !matches!(self.direction.as_str(), "rx" | "tx" | "both") {
            return Err(format!(
                "direction {:?}: expected rx, tx or both",
                self.direction
            ));
        }
        if let Some(vlan) = self.vlan
            && vlan > MAX_VID
        {
            return Err(format!("vlan {vlan}: expected 0 to {MAX_VID}"));
        }
        if self.from.contains(&self.to) {
            return Err(format!(
                "{} cannot be both a source and the output",
                self.to
            ));
        }
        Ok(())
    }
}

/// The switch's own addresses (`--ip`), on an internal port of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnAddress {
    pub ips: Vec<IpCidr>,
    pub mac: MacAddr,
    /// The VLAN the internal port is in (0: untagged on ports without VLAN configuration).
    pub vlan: u16,
}

/// The MAC the switch's own port uses unless `--ip-mac` says otherwise: locally administered,
/// derived from the switch's name, so it stays the same across restarts.
pub fn default_ip_mac(name: &str) -> MacAddr {
    // FNV-1a over the name: stable, and different names get different MACs.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let b = hash.to_be_bytes();
    MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// Everything `vswitchd` needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub ctl_socket: PathBuf,
    pub ports: Vec<PortSpec>,
    pub bridge: BridgeConfig,
    /// Microseconds the loop keeps polling after the last frame before it sleeps.
    pub busy_poll: u32,
    /// Seeds the random impairment of ports without a `seed` of their own (random if unset).
    pub seed: Option<u64>,
    pub arp_bindings: Vec<ArpBinding>,
    /// Static MAC entries (`[[fdb]]`).
    pub static_macs: Vec<StaticMac>,
    /// Port mirrors (`[[mirror]]`).
    pub mirrors: Vec<MirrorConfig>,
    /// The switch's own address, if it has one.
    pub own: Option<OwnAddress>,
}

impl Config {
    /// Builds the configuration from an optional config file and the command line's
    /// overrides. Without a file at least one port is needed; with one, the file may list none
    /// (ports can be added at runtime with `vswitchctl port add`).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => Some(FileConfig::read(path)?),
            None => None,
        };
        let from_file = from_file.unwrap_or_default();
        let name = overrides
            .name
            .clone()
            .or(from_file.name)
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let ctl_socket = overrides
            .ctl_socket
            .clone()
            .or(from_file.ctl_socket)
            .unwrap_or_else(|| default_ctl_socket(&name));
        let defaults = BridgeConfig::default();
        let bridge = BridgeConfig {
            mac_ageing: overrides
                .mac_ageing
                .or(from_file.mac_ageing)
                .unwrap_or(defaults.mac_ageing),
            mac_table_size: overrides
                .mac_table_size
                .or(from_file.mac_table_size)
                .map_or(defaults.mac_table_size, |n| n as usize),
            arp_suppress: overrides
                .arp_suppress
                .or(from_file.arp_suppress)
                .unwrap_or(defaults.arp_suppress),
            mac_move: {
                let default = MoveLimit::default();
                let hold = overrides
                    .mac_move_hold
                    .or(from_file.mac_move_hold)
                    .unwrap_or(default.hold);
                match overrides.mac_move_limit.or(from_file.mac_move_limit) {
                    None => Some(MoveLimit { hold, ..default }),
                    Some(MacMoveLimit::Off) => None,
                    Some(MacMoveLimit::Limit { moves, window }) => Some(MoveLimit {
                        moves,
                        window,
                        hold,
                    }),
                }
            },
        };
        let ips = if overrides.ips.is_empty() {
            from_file.ips
        } else {
            overrides.ips.clone()
        };
        let own = (!ips.is_empty()).then(|| OwnAddress {
            ips,
            mac: overrides
                .ip_mac
                .or(from_file.ip_mac)
                .unwrap_or_else(|| default_ip_mac(&name)),
            vlan: overrides.ip_vlan.or(from_file.ip_vlan).unwrap_or(0),
        });
        let mut ports: Vec<PortSpec> = from_file
            .ports
            .into_iter()
            .filter(|p| !overrides.ports.iter().any(|o| o.name == p.name))
            .collect();
        for (i, p) in overrides.ports.iter().enumerate() {
            if overrides.ports[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::DuplicatePort(p.name.to_string()));
            }
        }
        ports.extend(overrides.ports.iter().cloned());
        if ports.is_empty() && file.is_none() {
            return Err(ConfigError::NoPorts);
        }
        if own.is_some()
            && let Some(p) = ports.iter().find(|p| p.name == name.as_str())
        {
            return Err(ConfigError::OwnPortName(p.name.to_string()));
        }
        for mirror in &from_file.mirrors {
            if let Some(port) = mirror
                .from
                .iter()
                .chain([&mirror.to])
                .find(|p| !ports.iter().any(|q| q.name == p.as_str()))
            {
                return Err(ConfigError::UnknownMirrorPort {
                    mirror: mirror.name.clone(),
                    port: port.clone(),
                });
            }
        }
        for entry in &from_file.static_macs {
            if !ports.iter().any(|p| p.name == entry.port) {
                return Err(ConfigError::UnknownFdbPort {
                    mac: entry.mac,
                    port: entry.port.clone(),
                });
            }
        }
        for binding in &from_file.arp_bindings {
            if !ports.iter().any(|p| p.name == binding.port) {
                return Err(ConfigError::UnknownArpPort {
                    ip: binding.ip,
                    port: binding.port.clone(),
                });
            }
        }
        Ok(Config {
            name,
            ctl_socket,
            ports,
            bridge,
            busy_poll: overrides
                .busy_poll
                .or(from_file.busy_poll)
                .unwrap_or(DEFAULT_BUSY_POLL),
            seed: overrides.seed.or(from_file.seed),
            arp_bindings: from_file.arp_bindings,
            static_macs: from_file.static_macs,
            mirrors: from_file.mirrors,
            own,
        })
    }
}

#[cfg(test)]
mod tests;
