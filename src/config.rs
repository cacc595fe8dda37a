//! The switch's settings, validated: what the command line and the TOML config file ask for,
//! merged (flags override the file) into a form that cannot hold a bad value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use std::net::Ipv4Addr;

use smoltcp::wire::IpCidr;

use crate::bridge::vlan::{VlanListError, VlanMode, VlanSet, parse_vid};
use crate::bridge::{BridgeConfig, PortConfig};
pub use crate::port::{PortKind, Target};
use crate::sys::{IfName, InvalidIfName};
use crate::wire::MacAddr;
use crate::wire::vlan::MAX_VID;

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

/// A port's name (how `vswitchctl` and the logs call it): 1 to 64 characters, none of them
/// whitespace, `,`, `=` or `:`.
pub fn check_port_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | '=' | ':'));
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadPortName(name.to_owned()))
    }
}

/// One port: what it attaches to, its name and its options. Written on the command line as
/// `[KIND:]NAME[,key=value...]` (NAME is a socket path for `stream` and `dgram`), in the config
/// file as a `[[port]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The interface name for `tap` and `netdev`; for sockets, `name=` or the socket's file
    /// name.
    pub name: String,
    pub target: Target,
    /// `vlan=N` (access), `trunk=LIST[,native=N]`, or neither (every VLAN).
    pub vlan: VlanMode,
    /// `arp-suppress=on|off`; unset follows `--arp-suppress`.
    pub arp_suppress: Option<bool>,
    /// `arp-guard=on|off`.
    pub arp_guard: bool,
}

/// The keys a port spec takes.
pub const PORT_KEYS: &str =
    "vlan, trunk, native, arp-suppress, arp-guard; name (stream, dgram); peer (dgram)";

/// `on`/`off` (or `true`/`false`, `yes`/`no`).
fn parse_switch(value: &str) -> Option<bool> {
    match value {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Why a port spec was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty port spec")]
    Empty,
    #[error("unknown port kind {0:?} (known kinds: {known})", known = known_kinds())]
    UnknownKind(String),
    #[error("bad port name: {0}")]
    BadName(#[from] InvalidIfName),
    #[error("bad port name {0:?}: use 1 to 64 characters, without whitespace, ',', '=' or ':'")]
    BadPortName(String),
    #[error("{kind} ports need a socket path")]
    NoPath { kind: PortKind },
    #[error("key {key}= is only for {only} ports")]
    WrongKind {
        key: &'static str,
        only: &'static str,
    },
    #[error("option {0:?} is not key=value")]
    NotKeyValue(String),
    #[error("unknown key {0:?} (a port takes {PORT_KEYS})")]
    UnknownKey(String),
    #[error("key {0}= is given twice")]
    Duplicate(String),
    #[error("{key}={value}: {source}")]
    BadValue {
        key: &'static str,
        value: String,
        #[source]
        source: VlanListError,
    },
    #[error("{key}={value}: expected on or off")]
    NotOnOff { key: &'static str, value: String },
    #[error("{0}")]
    Conflict(&'static str),
}

fn known_kinds() -> String {
    PortKind::SPEC_KINDS.map(PortKind::name).join(", ")
}

impl PortSpec {
    /// Builds a spec from its parts; `kind` defaults to `tap`.
    pub fn new(
        kind: Option<&str>,
        name: &str,
        options: &[(&str, &str)],
    ) -> Result<Self, SpecError> {
        let kind = match kind {
            None => PortKind::Tap,
            Some(k) => PortKind::SPEC_KINDS
                .into_iter()
                .find(|known| known.name() == k)
                .ok_or_else(|| SpecError::UnknownKind(k.to_owned()))?,
        };
        let (mut access, mut trunk, mut native) = (None, None, None);
        let (mut arp_suppress, mut arp_guard) = (None, None);
        let (mut port_name, mut peer) = (None, None);
        for &(key, value) in options {
            let only = |allowed: bool, key: &'static str, only: &'static str| {
                if allowed {
                    Ok(())
                } else {
                    Err(SpecError::WrongKind { key, only })
                }
            };
            let on_off = |key: &'static str| {
                parse_switch(value).ok_or_else(|| SpecError::NotOnOff {
                    key,
                    value: value.to_owned(),
                })
            };
            let bad = |key: &'static str| {
                move |source| SpecError::BadValue {
                    key,
                    value: value.to_owned(),
                    source,
                }
            };
            let first = match key {
                "name" => {
                    let socket = matches!(kind, PortKind::Stream | PortKind::Dgram);
                    only(socket, "name", "stream and dgram")?;
                    port_name.replace(value.to_owned()).is_none()
                }
                "peer" => {
                    only(kind == PortKind::Dgram, "peer", "dgram")?;
                    peer.replace(value.to_owned()).is_none()
                }
                "arp-suppress" => arp_suppress.replace(on_off("arp-suppress")?).is_none(),
                "arp-guard" => arp_guard.replace(on_off("arp-guard")?).is_none(),
                "vlan" => access
                    .replace(parse_vid(value).map_err(bad("vlan"))?)
                    .is_none(),
                "native" => native
                    .replace(parse_vid(value).map_err(bad("native"))?)
                    .is_none(),
                "trunk" => {
                    let set: VlanSet = value.parse().map_err(bad("trunk"))?;
                    trunk.replace(set).is_none()
                }
                _ => return Err(SpecError::UnknownKey(key.to_owned())),
            };
            if !first {
                return Err(SpecError::Duplicate(key.to_owned()));
            }
        }
        let vlan = match (access, trunk, native) {
            (None, None, None) => VlanMode::All,
            (Some(n), None, None) => VlanMode::Access(n),
            (None, Some(vlans), native) => VlanMode::Trunk {
                vlans: Box::new(vlans),
                native,
            },
            (Some(_), _, _) => {
                return Err(SpecError::Conflict(
                    "vlan= makes an access port; it cannot be combined with trunk= or native=",
                ));
            }
            (None, None, Some(_)) => {
                return Err(SpecError::Conflict(
                    "native= needs trunk= (the tagged VLANs)",
                ));
            }
        };
        let socket_name = |path: &str| -> Result<(PathBuf, String), SpecError> {
            if path.is_empty() {
                return Err(SpecError::NoPath { kind });
            }
            let path = PathBuf::from(path);
            let name = match port_name.clone() {
                Some(n) => n,
                None => path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .ok_or(SpecError::NoPath { kind })?,
            };
            check_port_name(&name)?;
            Ok((path, name))
        };
        let (name, target) = match kind {
            PortKind::Tap => (name.to_owned(), Target::Tap(IfName::new(name)?)),
            PortKind::Netdev => (name.to_owned(), Target::Netdev(IfName::new(name)?)),
            PortKind::Stream => {
                let (path, name) = socket_name(name)?;
                (name, Target::Stream(path))
            }
            PortKind::Dgram => {
                let (path, name) = socket_name(name)?;
                let peer = peer.map(PathBuf::from);
                (name, Target::Dgram { path, peer })
            }
            // Not in SPEC_KINDS, so never parsed: refused like any kind a spec cannot name.
            PortKind::Internal => return Err(SpecError::UnknownKind(kind.to_string())),
        };
        Ok(PortSpec {
            name,
            target,
            vlan,
            arp_suppress,
            arp_guard: arp_guard.unwrap_or(false),
        })
    }

    pub fn kind(&self) -> PortKind {
        self.target.kind()
    }

    /// The settings the forwarding core keeps for this port.
    pub fn port_config(&self) -> PortConfig {
        PortConfig {
            vlan: self.vlan.clone(),
            arp_suppress: self.arp_suppress,
            arp_guard: self.arp_guard,
        }
    }
}

impl FromStr for PortSpec {
    type Err = SpecError;

    /// `[KIND:]NAME[,key=value...]`. A trunk list keeps its commas: in
    /// `tap0,trunk=10,20,30-40,native=5` the items without `=` continue the `trunk=` value.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.is_empty() {
            return Err(SpecError::Empty);
        }
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default();
        let (kind, name) = match head.split_once(':') {
            Some((kind, name)) => (Some(kind), name),
            None => (None, head),
        };
        let mut options: Vec<(&str, String)> = Vec::new();
        for part in parts {
            match (part.split_once('='), options.last_mut()) {
                (Some((key, value)), _) => options.push((key, value.to_owned())),
                (None, Some((key, value))) if *key == "trunk" => {
                    value.push(',');
                    value.push_str(part);
                }
                (None, _) => return Err(SpecError::NotKeyValue(part.to_owned())),
            }
        }
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        PortSpec::new(kind, name, &options)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Tap(n) | Target::Netdev(n) => write!(f, "{}:{n}", self.kind())?,
            Target::Stream(path) | Target::Dgram { path, .. } => {
                write!(f, "{}:{}", self.kind(), path.display())?;
                if path
                    .file_name()
                    .is_none_or(|n| n.to_string_lossy() != self.name)
                {
                    write!(f, ",name={}", self.name)?;
                }
            }
        }
        if let Target::Dgram {
            peer: Some(peer), ..
        } = &self.target
        {
            write!(f, ",peer={}", peer.display())?;
        }
        match &self.vlan {
            VlanMode::All => {}
            VlanMode::Access(n) => write!(f, ",vlan={n}")?,
            VlanMode::Trunk { vlans, native } => {
                write!(f, ",trunk={vlans}")?;
                if let Some(n) = native {
                    write!(f, ",native={n}")?;
                }
            }
        }
        let on = |b: bool| if b { "on" } else { "off" };
        if let Some(s) = self.arp_suppress {
            write!(f, ",arp-suppress={}", on(s))?;
        }
        if self.arp_guard {
            write!(f, ",arp-guard=on")?;
        }
        Ok(())
    }
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
    pub arp_bindings: Vec<ArpBinding>,
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
            arp_bindings: from_file.arp_bindings,
            own,
        })
    }
}

/// The config file, checked: every key known, every value in range, every port valid.
#[derive(Debug, Default)]
struct FileConfig {
    name: Option<String>,
    ctl_socket: Option<PathBuf>,
    mac_ageing: Option<u32>,
    mac_table_size: Option<u32>,
    busy_poll: Option<u32>,
    arp_suppress: Option<bool>,
    ips: Vec<IpCidr>,
    ip_mac: Option<MacAddr>,
    ip_vlan: Option<u16>,
    ports: Vec<PortSpec>,
    arp_bindings: Vec<ArpBinding>,
}

/// The file as TOML lays it out; spans locate errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    name: Option<Spanned<String>>,
    ctl_socket: Option<PathBuf>,
    mac_ageing: Option<Spanned<u32>>,
    mac_table_size: Option<Spanned<u32>>,
    busy_poll: Option<Spanned<u32>>,
    arp_suppress: Option<bool>,
    ip: Option<Spanned<OneOrMany>>,
    ip_mac: Option<Spanned<String>>,
    ip_vlan: Option<Spanned<u16>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    arp: Vec<Spanned<RawArp>>,
}

/// `ip = "10.0.0.254/24"` or `ip = ["10.0.0.254/24", "fd00::fe/64"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArp {
    ip: String,
    mac: String,
    port: String,
    #[serde(default)]
    vlan: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Option<String>,
    kind: Option<String>,
    /// The socket of a `stream` or `dgram` port.
    path: Option<String>,
    peer: Option<String>,
    vlan: Option<u16>,
    trunk: Option<RawTrunk>,
    native: Option<u16>,
    #[serde(rename = "arp-suppress")]
    arp_suppress: Option<bool>,
    #[serde(rename = "arp-guard")]
    arp_guard: Option<bool>,
}

/// `trunk = "10,20,30-40"` or `trunk = [10, 20]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTrunk {
    Text(String),
    List(Vec<u16>),
}

impl RawPort {
    /// The options as the command-line grammar has them.
    fn options(&self) -> Vec<(&'static str, String)> {
        let mut options = Vec::new();
        if let (Some(_), Some(name)) = (&self.path, &self.name) {
            options.push(("name", name.clone()));
        }
        if let Some(peer) = &self.peer {
            options.push(("peer", peer.clone()));
        }
        if let Some(v) = self.vlan {
            options.push(("vlan", v.to_string()));
        }
        match &self.trunk {
            Some(RawTrunk::Text(t)) => options.push(("trunk", t.clone())),
            Some(RawTrunk::List(l)) => options.push((
                "trunk",
                l.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
            )),
            None => {}
        }
        if let Some(n) = self.native {
            options.push(("native", n.to_string()));
        }
        let on = |b: bool| if b { "on" } else { "off" }.to_owned();
        if let Some(b) = self.arp_suppress {
            options.push(("arp-suppress", on(b)));
        }
        if let Some(b) = self.arp_guard {
            options.push(("arp-guard", on(b)));
        }
        options
    }
}

impl FileConfig {
    fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        FileConfig::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        /// A relative socket path in the file is relative to the file, not to wherever
        /// vswitchd started.
        fn from_file_dir(file: &Path, p: &mut PathBuf) {
            if let Some(dir) = file.parent().filter(|_| p.is_relative()) {
                *p = dir.join(&*p);
            }
        }
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let fail = |offset: usize, message: String| ConfigError::File {
            path: path.to_owned(),
            line: line_of(offset),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            fail(offset, e.message().trim().to_owned())
        })?;
        let ranged = |key: &str,
                      value: Option<Spanned<u32>>,
                      range: std::ops::RangeInclusive<u32>|
         -> Result<Option<u32>, ConfigError> {
            match value {
                Some(v) if !range.contains(v.get_ref()) => Err(fail(
                    v.span().start,
                    format!(
                        "{key} = {} is out of range ({} to {})",
                        v.get_ref(),
                        range.start(),
                        range.end()
                    ),
                )),
                v => Ok(v.map(Spanned::into_inner)),
            }
        };
        let name = match raw.name {
            Some(n) => Some(parse_switch_name(n.get_ref()).map_err(|m| fail(n.span().start, m))?),
            None => None,
        };
        let mut ports: Vec<PortSpec> = Vec::new();
        for entry in raw.port {
            let at = entry.span().start;
            let raw = entry.into_inner();
            let options = raw.options();
            let options: Vec<(&str, &str)> =
                options.iter().map(|(k, v)| (*k, v.as_str())).collect();
            // A socket port is named by its path (and optionally `name`), others by `name`.
            let (head, label) = match (&raw.path, &raw.name) {
                (Some(path), _) => (path.as_str(), path.as_str()),
                (None, Some(name)) => (name.as_str(), name.as_str()),
                (None, None) => return Err(fail(at, "port: needs name (or path)".to_owned())),
            };
            let mut spec = PortSpec::new(raw.kind.as_deref(), head, &options)
                .map_err(|e| fail(at, format!("port {label:?}: {e}")))?;
            match &mut spec.target {
                Target::Stream(p) => from_file_dir(path, p),
                Target::Dgram { path: p, peer } => {
                    from_file_dir(path, p);
                    if let Some(peer) = peer {
                        from_file_dir(path, peer);
                    }
                }
                Target::Tap(_) | Target::Netdev(_) => {}
            }
            if raw.path.is_some() && !matches!(spec.kind(), PortKind::Stream | PortKind::Dgram) {
                return Err(fail(
                    at,
                    format!("port {label:?}: path is for stream and dgram ports"),
                ));
            }
            if ports.iter().any(|p| p.name == spec.name) {
                return Err(fail(
                    at,
                    format!("port {} is listed more than once", spec.name),
                ));
            }
            ports.push(spec);
        }
        let ips = match raw.ip {
            None => Vec::new(),
            Some(v) => {
                let at = v.span().start;
                let list = match v.into_inner() {
                    OneOrMany::One(s) => vec![s],
                    OneOrMany::Many(l) => l,
                };
                list.iter()
                    .map(|s| parse_cidr(s).map_err(|m| fail(at, m)))
                    .collect::<Result<_, _>>()?
            }
        };
        let ip_mac = match raw.ip_mac {
            None => None,
            Some(m) => Some(parse_own_mac(m.get_ref()).map_err(|e| fail(m.span().start, e))?),
        };
        let ip_vlan = match raw.ip_vlan {
            None => None,
            Some(v) if (1..=MAX_VID).contains(v.get_ref()) => Some(v.into_inner()),
            Some(v) => {
                return Err(fail(
                    v.span().start,
                    format!("ip-vlan = {} is out of range (1 to {MAX_VID})", v.get_ref()),
                ));
            }
        };
        let mut arp_bindings = Vec::new();
        for entry in raw.arp {
            let at = entry.span().start;
            let a = entry.into_inner();
            let ip =
                a.ip.parse::<Ipv4Addr>()
                    .map_err(|_| fail(at, format!("arp: ip {:?} is not an IPv4 address", a.ip)))?;
            let mac = a
                .mac
                .parse::<MacAddr>()
                .ok()
                .filter(MacAddr::is_learnable_source)
                .ok_or_else(|| fail(at, format!("arp: mac {:?} is not a unicast MAC", a.mac)))?;
            check_port_name(&a.port).map_err(|e| fail(at, format!("arp: {e}")))?;
            let port = a.port;
            if a.vlan > MAX_VID {
                return Err(fail(
                    at,
                    format!("arp: vlan {} is out of range (0 to {MAX_VID})", a.vlan),
                ));
            }
            arp_bindings.push(ArpBinding {
                ip,
                mac,
                port,
                vlan: a.vlan,
            });
        }
        let ctl_socket = raw.ctl_socket.map(|mut p| {
            from_file_dir(path, &mut p);
            p
        });
        Ok(FileConfig {
            name,
            ctl_socket,
            mac_ageing: ranged("mac-ageing", raw.mac_ageing, MAC_AGEING_RANGE)?,
            mac_table_size: ranged("mac-table-size", raw.mac_table_size, MAC_TABLE_SIZE_RANGE)?,
            busy_poll: ranged("busy-poll", raw.busy_poll, BUSY_POLL_RANGE)?,
            arp_suppress: raw.arp_suppress,
            ips,
            ip_mac,
            ip_vlan,
            ports,
            arp_bindings,
        })
    }
}

#[cfg(test)]
mod tests;
