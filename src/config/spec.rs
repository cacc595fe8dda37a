//! The `--port` spec grammar, `[KIND:]NAME[,key=value...]`: parsed into a [`PortSpec`] (the
//! port's name, the [`Target`] the port layer opens, its [`PortSettings`]), printed back the
//! same way, and rejected with a [`SpecError`] that says what is wrong. The config file's
//! `[[port]]` tables go through the same grammar, so a port means the same wherever it is
//! written.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::settings::{PortSettings, SETTING_KEYS};
use super::tunnel::{self, TUNNEL_KEYS};
use crate::port::{PortKind, Target, Vnis};
use crate::sys::{IfName, InvalidIfName};

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
/// `[KIND:]NAME[,key=value...]` (NAME is a socket path for `stream`, `dgram` and `vhost-user`), in the config
/// file as a `[[port]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The interface name for `tap` and `netdev`; for sockets, `name=` or the socket's file
    /// name.
    pub name: String,
    pub target: Target,
    /// Everything else: VLANs, ARP, flags, link state, impairment.
    pub settings: PortSettings,
}

/// Keys only a socket or tunnel port takes.
const SOCKET_KEYS: &str = "name (stream, dgram, vhost-user[-client]), peer (dgram), local, \
     remote (vxlan, udp), vni, dstport, mtu, gso (vxlan)";

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
    #[error("{kind} ports need {key}=")]
    NeedsKey { kind: PortKind, key: &'static str },
    #[error("key {key}= is only for {only} ports")]
    WrongKind {
        key: &'static str,
        only: &'static str,
    },
    #[error("option {0:?} is not key=value")]
    NotKeyValue(String),
    #[error("unknown key {0:?} (a port takes {SETTING_KEYS}; {SOCKET_KEYS})")]
    UnknownKey(String),
    #[error("key {0}= is given twice")]
    Duplicate(String),
    #[error("{key}={value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Conflict(&'static str),
}

impl SpecError {
    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            SpecError::UnknownKey(k) | SpecError::Duplicate(k) => Some(k),
            SpecError::Invalid { key, .. } => Some(key),
            SpecError::WrongKind { key, .. } => Some(key),
            _ => None,
        }
    }
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
        let (mut port_name, mut peer) = (None, None);
        let mut settings = Vec::new();
        let mut tunnel_keys: Vec<(&str, &str)> = Vec::new();
        let tunnel = matches!(kind, PortKind::Vxlan | PortKind::Udp);
        for &(key, value) in options {
            let only = |allowed: bool, key: &'static str, only: &'static str| {
                if allowed {
                    Ok(())
                } else {
                    Err(SpecError::WrongKind { key, only })
                }
            };
            let first = match key {
                "name" => {
                    let socket = matches!(
                        kind,
                        PortKind::Stream
                            | PortKind::Dgram
                            | PortKind::VhostUser
                            | PortKind::VhostUserClient
                    );
                    only(socket, "name", "stream, dgram and vhost-user")?;
                    port_name.replace(value.to_owned()).is_none()
                }
                "peer" => {
                    only(kind == PortKind::Dgram, "peer", "dgram")?;
                    peer.replace(value.to_owned()).is_none()
                }
                "local" | "remote" => {
                    only(
                        tunnel,
                        if key == "local" { "local" } else { "remote" },
                        "vxlan and udp",
                    )?;
                    let first = !tunnel_keys.iter().any(|(k, _)| *k == key);
                    tunnel_keys.push((key, value));
                    first
                }
                "vni" | "dstport" | "mtu" | "gso" => {
                    let key_name = TUNNEL_KEYS.into_iter().find(|k| *k == key).unwrap_or("vni");
                    only(kind == PortKind::Vxlan, key_name, "vxlan")?;
                    let first = !tunnel_keys.iter().any(|(k, _)| *k == key);
                    tunnel_keys.push((key, value));
                    first
                }
                _ => {
                    settings.push((key, value));
                    true
                }
            };
            if !first {
                return Err(SpecError::Duplicate(key.to_owned()));
            }
        }
        let vxlan = match kind {
            PortKind::Vxlan => Some(tunnel::vxlan_target(&tunnel_keys)?),
            _ => None,
        };
        // A VNI map makes the port a trunk of the map's VLANs.
        let map_trunk = vxlan.as_ref().and_then(|v| tunnel::map_trunk(&v.vnis));
        if let Some(trunk) = &map_trunk {
            if settings
                .iter()
                .any(|(k, _)| matches!(*k, "vlan" | "trunk" | "native"))
            {
                return Err(SpecError::Conflict(
                    "a VNI map (vni=VNI:VLAN,...) sets the port's VLANs: leave out vlan=, trunk= \
                     and native=",
                ));
            }
            settings.push(("trunk", trunk.as_str()));
        }
        let mut port_settings = PortSettings::default();
        port_settings.apply(&settings)?;
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
            PortKind::VhostUser => {
                let (path, name) = socket_name(name)?;
                (name, Target::VhostUser(path))
            }
            PortKind::VhostUserClient => {
                let (path, name) = socket_name(name)?;
                (name, Target::VhostUserClient(path))
            }
            PortKind::Dgram => {
                let (path, name) = socket_name(name)?;
                let peer = peer.map(PathBuf::from);
                (name, Target::Dgram { path, peer })
            }
            PortKind::Vxlan => {
                check_port_name(name)?;
                let target = vxlan.ok_or(SpecError::NeedsKey { kind, key: "vni" })?;
                (name.to_owned(), Target::Vxlan(target))
            }
            PortKind::Udp => {
                check_port_name(name)?;
                (name.to_owned(), tunnel::udp_target(&tunnel_keys)?)
            }
            // Not in SPEC_KINDS, so never parsed: refused like any kind a spec cannot name.
            PortKind::Internal => return Err(SpecError::UnknownKind(kind.to_string())),
        };
        Ok(PortSpec {
            name,
            target,
            settings: port_settings,
        })
    }

    pub fn kind(&self) -> PortKind {
        self.target.kind()
    }

    /// The settings the forwarding core keeps for this port.
    pub fn port_config(&self) -> crate::bridge::PortConfig {
        self.settings.port.clone()
    }
}

/// Keys whose value is a comma-separated list: the items after them without `=` continue them.
const LIST_KEYS: [&str; 4] = ["trunk", "link-local", "remote", "vni"];

/// Splits `key=value,key=value...` (lists kept whole, see [`LIST_KEYS`]).
pub fn split_options(text: &str) -> Result<Vec<(&str, String)>, SpecError> {
    let mut options: Vec<(&str, String)> = Vec::new();
    for part in text.split(',') {
        match (part.split_once('='), options.last_mut()) {
            (Some((key, value)), _) => options.push((key, value.to_owned())),
            (None, Some((key, value))) if LIST_KEYS.contains(key) => {
                value.push(',');
                value.push_str(part);
            }
            (None, _) => return Err(SpecError::NotKeyValue(part.to_owned())),
        }
    }
    Ok(options)
}

impl FromStr for PortSpec {
    type Err = SpecError;

    /// `[KIND:]NAME[,key=value...]`. A list keeps its commas: in
    /// `tap0,trunk=10,20,30-40,native=5` the items without `=` continue the `trunk=` value.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.is_empty() {
            return Err(SpecError::Empty);
        }
        let (head, rest) = match spec.split_once(',') {
            Some((head, rest)) => (head, Some(rest)),
            None => (spec, None),
        };
        let (kind, name) = match head.split_once(':') {
            Some((kind, name)) => (Some(kind), name),
            None => (None, head),
        };
        let options = rest.map(split_options).transpose()?.unwrap_or_default();
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        PortSpec::new(kind, name, &options)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Tap(n) | Target::Netdev(n) => write!(f, "{}:{n}", self.kind())?,
            Target::Stream(path)
            | Target::Dgram { path, .. }
            | Target::VhostUser(path)
            | Target::VhostUserClient(path) => {
                write!(f, "{}:{}", self.kind(), path.display())?;
                if path
                    .file_name()
                    .is_none_or(|n| n.to_string_lossy() != self.name)
                {
                    write!(f, ",name={}", self.name)?;
                }
            }
            Target::Vxlan(_) | Target::Udp { .. } => {
                write!(f, "{}:{}", self.kind(), self.name)?;
                tunnel::write_keys(f, &self.target)?;
            }
        }
        if let Target::Dgram {
            peer: Some(peer), ..
        } = &self.target
        {
            write!(f, ",peer={}", peer.display())?;
        }
        // A VNI map's trunk is written by the map.
        let mapped = matches!(&self.target, Target::Vxlan(v) if matches!(v.vnis, Vnis::Map(_)));
        for (key, value) in self.settings.changed_keys() {
            let vlan_key = matches!(key.as_str(), "vlan" | "trunk" | "native");
            if (key.as_str(), value.as_str()) != ("native", "none") && !(mapped && vlan_key) {
                write!(f, ",{key}={value}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests;
