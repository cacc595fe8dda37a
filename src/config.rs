//! The switch's settings, validated: what the command line (and later a config file) asks for,
//! in a form that cannot hold a bad value.

use std::fmt;
use std::str::FromStr;

use crate::bridge::BridgeConfig;
use crate::sys::{IfName, InvalidIfName};

/// Range of `--mac-ageing`, in seconds.
pub const MAC_AGEING_RANGE: std::ops::RangeInclusive<u32> = 10..=1_000_000;
/// Range of `--mac-table-size`, in entries.
pub const MAC_TABLE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=16_777_216;

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

/// One `--port` argument: `[KIND:]NAME[,key=value...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub kind: PortKind,
    pub name: IfName,
}

/// Why a port spec was rejected; the message quotes the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty port spec")]
    Empty,
    #[error("unknown port kind {kind:?} in {spec:?} (known kinds: {known})")]
    UnknownKind {
        spec: String,
        kind: String,
        known: String,
    },
    #[error("bad port name in {spec:?}: {source}")]
    BadName {
        spec: String,
        #[source]
        source: InvalidIfName,
    },
    #[error("option {option:?} in {spec:?} is not key=value")]
    NotKeyValue { spec: String, option: String },
    #[error("unknown key {key:?} in {spec:?} ({kind} ports take no keys)")]
    UnknownKey {
        spec: String,
        key: String,
        kind: PortKind,
    },
}

impl FromStr for PortSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.is_empty() {
            return Err(SpecError::Empty);
        }
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default();
        let (kind, name) = match head.split_once(':') {
            Some((kind, name)) => {
                let kind = PortKind::ALL
                    .into_iter()
                    .find(|k| k.name() == kind)
                    .ok_or_else(|| SpecError::UnknownKind {
                        spec: spec.to_owned(),
                        kind: kind.to_owned(),
                        known: PortKind::ALL.map(PortKind::name).join(", "),
                    })?;
                (kind, name)
            }
            None => (PortKind::Tap, head),
        };
        let name = IfName::new(name).map_err(|source| SpecError::BadName {
            spec: spec.to_owned(),
            source,
        })?;
        if let Some(option) = parts.next() {
            let Some((key, _value)) = option.split_once('=') else {
                return Err(SpecError::NotKeyValue {
                    spec: spec.to_owned(),
                    option: option.to_owned(),
                });
            };
            return Err(SpecError::UnknownKey {
                spec: spec.to_owned(),
                key: key.to_owned(),
                kind,
            });
        }
        Ok(PortSpec { kind, name })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
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

/// A configuration that was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no ports: give at least one --port SPEC (e.g. --port tap0)")]
    NoPorts,
    #[error("port {0} is given more than once")]
    DuplicatePort(String),
}

/// Everything `vswitchd` needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub ports: Vec<PortSpec>,
    pub bridge: BridgeConfig,
}

impl Config {
    /// Checks what no single field can: at least one port, and no port twice.
    pub fn new(
        name: String,
        ports: Vec<PortSpec>,
        bridge: BridgeConfig,
    ) -> Result<Self, ConfigError> {
        if ports.is_empty() {
            return Err(ConfigError::NoPorts);
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::DuplicatePort(p.name.to_string()));
            }
        }
        Ok(Config {
            name,
            ports,
            bridge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<PortSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn bare_name_and_tap_prefix_are_taps() {
        let want = PortSpec {
            kind: PortKind::Tap,
            name: IfName::new("tap0").unwrap(),
        };
        assert_eq!(spec("tap0"), Ok(want.clone()));
        assert_eq!(spec("tap:tap0"), Ok(want.clone()));
        assert_eq!(want.to_string(), "tap:tap0");
    }

    #[test]
    fn rejections_name_the_problem() {
        assert_eq!(spec(""), Err(SpecError::Empty));
        let e = spec("vxlan:v0").unwrap_err().to_string();
        assert!(e.contains("\"vxlan\"") && e.contains("tap"), "{e}");
        let e = spec("tap:").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = spec("averyveryverylongname").unwrap_err().to_string();
        assert!(e.contains("longer than 15"), "{e}");
        let e = spec("tap0,vlan=10").unwrap_err().to_string();
        assert!(e.contains("\"vlan\""), "{e}");
        let e = spec("tap0,junk").unwrap_err().to_string();
        assert!(e.contains("\"junk\"") && e.contains("key=value"), "{e}");
        let e = spec("ta/p").unwrap_err().to_string();
        assert!(e.contains("'/'"), "{e}");
    }

    #[test]
    fn switch_names_are_safe_file_names() {
        assert_eq!(parse_switch_name("vswitch0").as_deref(), Ok("vswitch0"));
        assert_eq!(parse_switch_name("lab-1_a.b").as_deref(), Ok("lab-1_a.b"));
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(parse_switch_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_needs_distinct_ports() {
        let p = |s: &str| s.parse::<PortSpec>().unwrap();
        let cfg = BridgeConfig::default();
        assert_eq!(
            Config::new("s".into(), vec![], cfg),
            Err(ConfigError::NoPorts)
        );
        assert_eq!(
            Config::new("s".into(), vec![p("tap0"), p("tap1"), p("tap:tap0")], cfg),
            Err(ConfigError::DuplicatePort("tap0".into()))
        );
        assert!(Config::new("s".into(), vec![p("tap0"), p("tap1")], cfg).is_ok());
    }
}
