//! The switch's settings, validated: what the command line and the TOML config file ask for,
//! merged (flags override the file) into a form that cannot hold a bad value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use crate::bridge::BridgeConfig;
use crate::bridge::vlan::{VlanListError, VlanMode, VlanSet, parse_vid};
use crate::sys::{IfName, InvalidIfName};

/// Range of `--mac-ageing`, in seconds.
pub const MAC_AGEING_RANGE: std::ops::RangeInclusive<u32> = 10..=1_000_000;
/// Range of `--mac-table-size`, in entries.
pub const MAC_TABLE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=16_777_216;
/// The switch's name when none is given.
pub const DEFAULT_NAME: &str = "vswitch0";

/// Where the control socket of the switch `name` lives unless `--ctl-socket` says otherwise.
pub fn default_ctl_socket(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/vswitchd/{name}.ctl"))
}

/// The kinds of port a spec can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A TAP device the switch owns (creates, or attaches to if persistent and free).
    Tap,
}

impl PortKind {
    pub const ALL: [PortKind; 1] = [PortKind::Tap];

    pub fn name(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One port: its kind, its name and its options. Written on the command line as
/// `[KIND:]NAME[,key=value...]`, in the config file as a `[[port]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub kind: PortKind,
    pub name: IfName,
    /// `vlan=N` (access), `trunk=LIST[,native=N]`, or neither (every VLAN).
    pub vlan: VlanMode,
}

/// The keys a port spec takes.
pub const PORT_KEYS: &str = "vlan, trunk, native";

/// Why a port spec was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty port spec")]
    Empty,
    #[error("unknown port kind {0:?} (known kinds: {known})", known = known_kinds())]
    UnknownKind(String),
    #[error("bad port name: {0}")]
    BadName(#[from] InvalidIfName),
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
    #[error("{0}")]
    Conflict(&'static str),
}

fn known_kinds() -> String {
    PortKind::ALL.map(PortKind::name).join(", ")
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
            Some(k) => PortKind::ALL
                .into_iter()
                .find(|known| known.name() == k)
                .ok_or_else(|| SpecError::UnknownKind(k.to_owned()))?,
        };
        let name = IfName::new(name)?;
        let (mut access, mut trunk, mut native) = (None, None, None);
        for &(key, value) in options {
            let bad = |key: &'static str| {
                move |source| SpecError::BadValue {
                    key,
                    value: value.to_owned(),
                    source,
                }
            };
            let (slot, parsed) = match key {
                "vlan" => (&mut access, parse_vid(value).map_err(bad("vlan"))?),
                "native" => (&mut native, parse_vid(value).map_err(bad("native"))?),
                "trunk" => {
                    let set: VlanSet = value.parse().map_err(bad("trunk"))?;
                    if trunk.replace(set).is_some() {
                        return Err(SpecError::Duplicate(key.to_owned()));
                    }
                    continue;
                }
                _ => return Err(SpecError::UnknownKey(key.to_owned())),
            };
            if slot.replace(parsed).is_some() {
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
        Ok(PortSpec { kind, name, vlan })
    }

    /// Whether `other` is the same port (kind and name), whatever its options.
    pub fn same_port(&self, other: &PortSpec) -> bool {
        self.kind == other.kind && self.name == other.name
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
        write!(f, "{}:{}", self.kind, self.name)?;
        match &self.vlan {
            VlanMode::All => Ok(()),
            VlanMode::Access(n) => write!(f, ",vlan={n}"),
            VlanMode::Trunk { vlans, native } => {
                write!(f, ",trunk={vlans}")?;
                match native {
                    Some(n) => write!(f, ",native={n}"),
                    None => Ok(()),
                }
            }
        }
    }
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
    #[error("{path}: line {line}: {message}")]
    File {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Settings given on the command line; each one given overrides the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub name: Option<String>,
    pub ctl_socket: Option<PathBuf>,
    pub mac_ageing: Option<u32>,
    pub mac_table_size: Option<u32>,
    /// Ports from `--port`: added to the file's; a port named in both takes the flag's spec.
    pub ports: Vec<PortSpec>,
}

/// Everything `vswitchd` needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub ctl_socket: PathBuf,
    pub ports: Vec<PortSpec>,
    pub bridge: BridgeConfig,
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
        };
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
        Ok(Config {
            name,
            ctl_socket,
            ports,
            bridge,
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
    ports: Vec<PortSpec>,
}

/// The file as TOML lays it out; spans locate errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    name: Option<Spanned<String>>,
    ctl_socket: Option<PathBuf>,
    mac_ageing: Option<Spanned<u32>>,
    mac_table_size: Option<Spanned<u32>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    kind: Option<String>,
    vlan: Option<u16>,
    trunk: Option<RawTrunk>,
    native: Option<u16>,
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
            let spec = PortSpec::new(raw.kind.as_deref(), &raw.name, &options)
                .map_err(|e| fail(at, format!("port {:?}: {e}", raw.name)))?;
            if ports.iter().any(|p| p.name == spec.name) {
                return Err(fail(
                    at,
                    format!("port {} is listed more than once", spec.name),
                ));
            }
            ports.push(spec);
        }
        // A relative socket path is relative to the file, not to wherever vswitchd started.
        let ctl_socket = raw.ctl_socket.map(|p| match path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        });
        Ok(FileConfig {
            name,
            ctl_socket,
            mac_ageing: ranged("mac-ageing", raw.mac_ageing, MAC_AGEING_RANGE)?,
            mac_table_size: ranged("mac-table-size", raw.mac_table_size, MAC_TABLE_SIZE_RANGE)?,
            ports,
        })
    }
}

#[cfg(test)]
mod tests;
