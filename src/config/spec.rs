//! The `--port` spec grammar, `[KIND:]NAME[,key=value...]`: parsed into a [`PortSpec`] (the
//! port's name, the [`Target`] the port layer opens, its VLAN and ARP settings), printed back the
//! same way, and rejected with a [`SpecError`] that says what is wrong. The config file's
//! `[[port]]` tables go through the same grammar, so a port means the same wherever it is
//! written.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::bridge::PortConfig;
use crate::bridge::vlan::{VlanListError, VlanMode, VlanSet, parse_vid};
use crate::port::{PortKind, Target};
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

#[cfg(test)]
pub(super) mod tests;
