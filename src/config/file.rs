//! The TOML config file's schema: the tables serde reads (with spans), checked into a
//! [`FileConfig`] whose every error names the file, the line and the problem. Ports are written
//! as `[[port]]` tables but go through the `--port` grammar; relative socket paths are taken
//! relative to the file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use smoltcp::wire::IpCidr;
use toml::Spanned;

use super::spec::{PortSpec, check_port_name};
use super::{
    ArpBinding, BUSY_POLL_RANGE, ConfigError, MAC_AGEING_RANGE, MAC_MOVE_SECS_RANGE,
    MAC_TABLE_SIZE_RANGE, MacMoveLimit, MirrorConfig, StaticMac, parse_cidr, parse_move_limit,
    parse_own_mac, parse_switch_name,
};
use crate::port::{PortKind, Target};
use crate::wire::MacAddr;
use crate::wire::vlan::MAX_VID;

/// The config file, checked: every key known, every value in range, every port valid.
#[derive(Debug, Default)]
pub(super) struct FileConfig {
    pub(super) name: Option<String>,
    pub(super) ctl_socket: Option<PathBuf>,
    pub(super) mac_ageing: Option<u32>,
    pub(super) mac_table_size: Option<u32>,
    pub(super) busy_poll: Option<u32>,
    pub(super) seed: Option<u64>,
    pub(super) mac_move_limit: Option<MacMoveLimit>,
    pub(super) mac_move_hold: Option<u32>,
    pub(super) arp_suppress: Option<bool>,
    pub(super) ips: Vec<IpCidr>,
    pub(super) ip_mac: Option<MacAddr>,
    pub(super) ip_vlan: Option<u16>,
    pub(super) ports: Vec<PortSpec>,
    pub(super) arp_bindings: Vec<ArpBinding>,
    pub(super) static_macs: Vec<StaticMac>,
    pub(super) mirrors: Vec<MirrorConfig>,
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
    seed: Option<u64>,
    mac_move_limit: Option<Spanned<String>>,
    mac_move_hold: Option<Spanned<u32>>,
    arp_suppress: Option<bool>,
    ip: Option<Spanned<OneOrMany>>,
    ip_mac: Option<Spanned<String>>,
    ip_vlan: Option<Spanned<u16>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    arp: Vec<Spanned<RawArp>>,
    #[serde(default)]
    fdb: Vec<Spanned<RawFdb>>,
    #[serde(default)]
    mirror: Vec<Spanned<RawMirror>>,
}

/// A port mirror: `[[mirror]]` with `name`, `from` (a port or a list), `to`, `direction`,
/// `vlan`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    name: String,
    from: OneOrMany,
    to: String,
    direction: Option<String>,
    vlan: Option<u16>,
}

/// A static MAC entry: `[[fdb]]` with `port`, `mac`, `vlan` (what `vswitchctl fdb save`
/// writes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFdb {
    port: String,
    mac: String,
    #[serde(default)]
    vlan: u16,
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

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `text` read as TOML into `T`, or the byte offset and message of what is wrong.
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (usize, String)> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        (offset, e.message().trim().to_owned())
    })
}

/// A TOML value as a port key's value in the `--port` grammar: numbers and strings as
/// written, booleans `on`/`off`, arrays joined by commas; `None` for tables and dates.
pub fn value_text(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => if *b { "on" } else { "off" }.to_owned(),
        toml::Value::Array(items) => items
            .iter()
            .map(value_text)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        _ => return None,
    })
}

/// A `[[port]]` table: what the port attaches to, and any other key of the `--port` grammar,
/// whose value may be a string, a number, a boolean (on/off) or a list (of VLANs, of groups).
#[derive(Deserialize)]
struct RawPort {
    name: Option<String>,
    kind: Option<String>,
    /// The socket of a `stream`, `dgram` or `vhost-user` port.
    path: Option<String>,
    #[serde(flatten)]
    keys: std::collections::BTreeMap<String, toml::Value>,
}

impl RawPort {
    /// The options as the command-line grammar has them, or the key whose value has no
    /// meaning there.
    fn options(&self) -> Result<Vec<(String, String)>, String> {
        let mut options = Vec::new();
        if let (Some(_), Some(name)) = (&self.path, &self.name) {
            options.push(("name".to_owned(), name.clone()));
        }
        for (key, value) in &self.keys {
            let value = value_text(value)
                .ok_or_else(|| format!("{key}: expected a string, number, boolean or list"))?;
            options.push((key.clone(), value));
        }
        Ok(options)
    }
}

/// Where `key = ...` is written in the table that starts at `table` (so an error points at
/// the key's line, not the table's).
fn key_offset(text: &str, table: usize, key: &str) -> Option<usize> {
    let mut start = table + text.get(table..)?.find('\n')? + 1;
    while start < text.len() {
        let line = &text[start..];
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            return None;
        }
        let quoted = format!("\"{key}\"");
        let rest = trimmed
            .strip_prefix(key)
            .or_else(|| trimmed.strip_prefix(quoted.as_str()));
        if rest.is_some_and(|r| r.trim_start().starts_with('=')) {
            return Some(start);
        }
        start += line.find('\n')? + 1;
    }
    None
}

impl FileConfig {
    pub(super) fn read(path: &Path) -> Result<FileConfig, ConfigError> {
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
        let fail = |offset: usize, message: String| ConfigError::File {
            path: path.to_owned(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawFile = from_toml(text).map_err(|(offset, message)| fail(offset, message))?;
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
            // A socket port is named by its path (and optionally `name`), others by `name`.
            let (head, label) = match (&raw.path, &raw.name) {
                (Some(path), _) => (path.as_str(), path.as_str()),
                (None, Some(name)) => (name.as_str(), name.as_str()),
                (None, None) => return Err(fail(at, "port: needs name (or path)".to_owned())),
            };
            let options = raw
                .options()
                .map_err(|e| fail(at, format!("port {label:?}: {e}")))?;
            let options: Vec<(&str, &str)> = options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut spec = PortSpec::new(raw.kind.as_deref(), head, &options).map_err(|e| {
                let at = e.key().and_then(|k| key_offset(text, at, k)).unwrap_or(at);
                fail(at, format!("port {label:?}: {e}"))
            })?;
            match &mut spec.target {
                Target::Stream(p) | Target::VhostUser(p) | Target::VhostUserClient(p) => {
                    from_file_dir(path, p)
                }
                Target::Dgram { path: p, peer } => {
                    from_file_dir(path, p);
                    if let Some(peer) = peer {
                        from_file_dir(path, peer);
                    }
                }
                Target::Tap(_) | Target::Netdev(_) | Target::Vxlan(_) | Target::Udp { .. } => {}
            }
            let socket = matches!(
                spec.kind(),
                PortKind::Stream
                    | PortKind::Dgram
                    | PortKind::VhostUser
                    | PortKind::VhostUserClient
            );
            if raw.path.is_some() && !socket {
                return Err(fail(
                    at,
                    format!("port {label:?}: path is for stream, dgram and vhost-user ports"),
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
        let mut static_macs = Vec::new();
        for entry in raw.fdb {
            let at = entry.span().start;
            let f = entry.into_inner();
            let mac = f
                .mac
                .parse::<MacAddr>()
                .ok()
                .filter(MacAddr::is_learnable_source)
                .ok_or_else(|| fail(at, format!("fdb: mac {:?} is not a unicast MAC", f.mac)))?;
            check_port_name(&f.port).map_err(|e| fail(at, format!("fdb: {e}")))?;
            if f.vlan > MAX_VID {
                return Err(fail(
                    at,
                    format!("fdb: vlan {} is out of range (0 to {MAX_VID})", f.vlan),
                ));
            }
            static_macs.push(StaticMac {
                port: f.port,
                mac,
                vlan: f.vlan,
            });
        }
        let mut mirrors: Vec<MirrorConfig> = Vec::new();
        for entry in raw.mirror {
            let at = entry.span().start;
            let m = entry.into_inner();
            let from = match m.from {
                OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
                OneOrMany::Many(l) => l,
            };
            let mirror = MirrorConfig {
                name: m.name,
                from,
                to: m.to,
                direction: m.direction.unwrap_or_else(|| "both".to_owned()),
                vlan: m.vlan,
            };
            mirror
                .check()
                .map_err(|e| fail(at, format!("mirror {:?}: {e}", mirror.name)))?;
            if mirrors.iter().any(|o| o.name == mirror.name) {
                return Err(fail(
                    at,
                    format!("mirror {} is listed more than once", mirror.name),
                ));
            }
            mirrors.push(mirror);
        }
        let mac_move_limit = match raw.mac_move_limit {
            None => None,
            Some(v) => Some(
                parse_move_limit(v.get_ref())
                    .map_err(|e| fail(v.span().start, format!("mac-move-limit = {e}")))?,
            ),
        };
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
            seed: raw.seed,
            mac_move_limit,
            mac_move_hold: ranged("mac-move-hold", raw.mac_move_hold, MAC_MOVE_SECS_RANGE)?,
            arp_suppress: raw.arp_suppress,
            ips,
            ip_mac,
            ip_vlan,
            ports,
            arp_bindings,
            static_macs,
            mirrors,
        })
    }
}

#[cfg(test)]
pub(super) mod tests;
