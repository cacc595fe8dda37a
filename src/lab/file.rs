//! The topology file: the TOML tables serde reads (with spans), checked into a [`Topology`]
//! whose every error names the file, the line and the key.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::LabError;
use crate::config::{MAC_AGEING_RANGE, PortSettings, from_toml, line_of, parse_cidr, value_text};
use crate::wire::MacAddr;
use crate::wire::vlan::MAX_VID;

/// Longest lab name: namespaces are `LAB-NODE`, switches `LAB-NODE` (their control socket).
pub const MAX_LAB_NAME: usize = 10;
/// Longest node name.
pub const MAX_NODE_NAME: usize = 12;
/// Longest link name: it is the switch port's interface name.
pub const MAX_LINK_NAME: usize = 15;

/// A checked topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub name: String,
    pub switches: Vec<Switch>,
    pub hosts: Vec<Host>,
    pub vms: Vec<Vm>,
    pub links: Vec<Link>,
    pub checks: Vec<Check>,
}

/// `[[switch]]`: a vswitchd in a namespace of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub name: String,
    pub arp_suppress: bool,
    pub ips: Vec<String>,
    /// The VLAN of the switch's own address (`--ip-vlan`).
    pub ip_vlan: Option<u16>,
    pub mac_ageing: Option<u32>,
    pub seed: Option<u64>,
}

/// `[[host]]`: a network namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    /// Each an `ip route add` argument list.
    pub routes: Vec<Vec<String>>,
    pub sysctls: Vec<(String, String)>,
    /// Shell commands started in the background once the lab is wired.
    pub start: Vec<String>,
}

/// `[[vm]]`: a QEMU guest on a socket port.
#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub name: String,
    pub memory: u32,
    pub mac: Option<MacAddr>,
    /// Directory holding `vmlinux` and `initrd.img`; `None`: the cache of scripts/qemu-lab.sh.
    pub guest: Option<PathBuf>,
    pub append: String,
    pub socket: SocketKind,
    /// A console line `up` waits for before it says the lab is up.
    pub ready: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Stream,
    Dgram,
}

/// `[[link]]`: a wire between two nodes, at least one of them a switch.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub name: String,
    pub ends: [String; 2],
    /// Addresses of the host or VM end (CIDR).
    pub ips: Vec<String>,
    pub mac: Option<MacAddr>,
    pub ifname: Option<String>,
    /// The link's keys as written (`delay`, `vlan`, ..., and `port` entries), in file order.
    pub keys: Vec<(String, String)>,
}

/// One `[check] ping` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// As written, for the report.
    pub text: String,
    pub from: String,
    pub to: Target,
    pub expect_ok: bool,
    pub rtt: Option<RttBound>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Node(String),
    Addr(IpAddr),
}

/// `rtt >= 80ms`: the median round trip compared with a bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttBound {
    pub at_least: bool,
    pub ms: f64,
}

impl RttBound {
    pub fn holds(&self, median_ms: f64) -> bool {
        if self.at_least {
            median_ms >= self.ms
        } else {
            median_ms <= self.ms
        }
    }
}

impl std::fmt::Display for RttBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.at_least { ">=" } else { "<=" };
        write!(f, "rtt {op} {}ms", self.ms)
    }
}

/// Link keys that are not port keys of their own: translated per end (see `plan`).
pub const IMPAIR_KEYS: [&str; 7] = [
    "delay",
    "jitter",
    "loss",
    "rate",
    "duplicate",
    "corrupt",
    "reorder",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<Spanned<String>>,
    #[serde(default)]
    switch: Vec<Spanned<RawSwitch>>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    vm: Vec<Spanned<RawVm>>,
    #[serde(default)]
    link: Vec<Spanned<RawLink>>,
    check: Option<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSwitch {
    name: Spanned<String>,
    #[serde(default)]
    arp_suppress: bool,
    ip: Option<Spanned<OneOrMany>>,
    ip_vlan: Option<Spanned<u16>>,
    mac_ageing: Option<Spanned<u32>>,
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    #[serde(default)]
    sysctl: toml::Table,
    #[serde(default)]
    start: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Spanned<String>,
    memory: Option<Spanned<u32>>,
    mac: Option<Spanned<String>>,
    guest: Option<PathBuf>,
    #[serde(default)]
    append: String,
    socket: Option<Spanned<String>>,
    ready: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    ends: Spanned<Vec<String>>,
    name: Option<Spanned<String>>,
    ip: Option<Spanned<OneOrMany>>,
    mac: Option<Spanned<String>>,
    ifname: Option<Spanned<String>>,
    vlan: Option<Spanned<toml::Value>>,
    trunk: Option<Spanned<toml::Value>>,
    native: Option<Spanned<toml::Value>>,
    link: Option<Spanned<toml::Value>>,
    delay: Option<Spanned<toml::Value>>,
    jitter: Option<Spanned<toml::Value>>,
    loss: Option<Spanned<toml::Value>>,
    rate: Option<Spanned<toml::Value>>,
    duplicate: Option<Spanned<toml::Value>>,
    corrupt: Option<Spanned<toml::Value>>,
    reorder: Option<Spanned<toml::Value>>,
    port: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(default)]
    ping: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Checks a node or lab name: lowercase letters, digits and '-', starting with a letter.
fn check_name(what: &str, name: &str, max: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} must be 1 to {max} of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

/// Checks a lab name (from the file or `--name`): 1-10 of a-z0-9, starting with a letter.
pub fn check_lab_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_LAB_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "lab name {name:?} must be 1 to {MAX_LAB_NAME} of a-z and 0-9, starting with a letter"
        ))
    }
}

/// Parses `[FROM] -> TO [ok|fails] [rtt >= N[ms]|rtt <= N[ms]]`.
fn parse_ping(text: &str) -> Result<Check, String> {
    let syntax = "expected \"FROM -> TO [ok|fails] [rtt >= MS|rtt <= MS]\"";
    let (from, rest) = text
        .split_once("->")
        .ok_or_else(|| format!("{text:?}: {syntax}"))?;
    let from = from.trim();
    let mut words = rest.split_whitespace();
    let to = words.next().ok_or_else(|| format!("{text:?}: {syntax}"))?;
    let to = match to.parse::<IpAddr>() {
        Ok(addr) => Target::Addr(addr),
        Err(_) => Target::Node(to.to_owned()),
    };
    let mut expect_ok = true;
    let mut rtt = None;
    let rest: Vec<&str> = words.collect();
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            "ok" => expect_ok = true,
            "fails" => expect_ok = false,
            "rtt" => {
                let (op, value) = match (rest.get(i + 1), rest.get(i + 2)) {
                    (Some(op), Some(v)) => (*op, *v),
                    _ => return Err(format!("{text:?}: rtt needs a bound: rtt >= 80ms")),
                };
                let at_least = match op {
                    ">=" => true,
                    "<=" => false,
                    _ => return Err(format!("{text:?}: rtt takes >= or <=, not {op:?}")),
                };
                let ms = value
                    .strip_suffix("ms")
                    .unwrap_or(value)
                    .parse::<f64>()
                    .ok()
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .ok_or_else(|| format!("{text:?}: {value:?} is not milliseconds"))?;
                rtt = Some(RttBound { at_least, ms });
                i += 2;
            }
            word => return Err(format!("{text:?}: unexpected {word:?}; {syntax}")),
        }
        i += 1;
    }
    if rtt.is_some() && !expect_ok {
        return Err(format!("{text:?}: a ping that fails has no rtt"));
    }
    Ok(Check {
        text: text.to_owned(),
        from: from.to_owned(),
        to,
        expect_ok,
        rtt,
    })
}

/// The port options a link key stands for, as one switch end sees it (for validation and for
/// the plan): impairment keys in both directions of the port, others as they are.
pub fn port_options(key: &str, value: &str, both_directions: bool) -> Vec<(String, String)> {
    if IMPAIR_KEYS.contains(&key) {
        let mut out = vec![(format!("tx-{key}"), value.to_owned())];
        if both_directions {
            out.push((format!("rx-{key}"), value.to_owned()));
        }
        out
    } else {
        vec![(key.to_owned(), value.to_owned())]
    }
}

/// Checks `key=value` pairs as one switch port would take them; the error names the key.
pub fn check_port_keys(pairs: &[(String, String)]) -> Result<(), (String, String)> {
    for (key, value) in pairs {
        for (k, v) in port_options(key, value, true) {
            PortSettings::default()
                .apply(&[(k.as_str(), v.as_str())])
                .map_err(|e| (key.clone(), e.to_string()))?;
        }
    }
    Ok(())
}

impl Topology {
    pub fn read(path: &Path) -> Result<Topology, LabError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LabError::Usage(format!("cannot read {}: {e}", path.display())))?;
        Topology::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Topology, LabError> {
        let fail = |offset: usize, message: String| LabError::File {
            path: path.to_owned(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawFile = from_toml(text).map_err(|(offset, message)| fail(offset, message))?;
        let name = match raw.name {
            Some(n) => {
                check_lab_name(n.get_ref())
                    .map_err(|m| fail(n.span().start, format!("name: {m}")))?;
                n.into_inner()
            }
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| check_lab_name(s).is_ok())
                .ok_or_else(|| {
                    fail(
                        0,
                        "no `name = \"...\"` and the file's name is no lab name (1 to 10 of \
                         a-z0-9): add one"
                            .to_owned(),
                    )
                })?,
        };
        let mut nodes: HashSet<String> = HashSet::new();
        let mut node = |n: &Spanned<String>, what: &str| -> Result<String, LabError> {
            check_name(what, n.get_ref(), MAX_NODE_NAME)
                .map_err(|m| fail(n.span().start, format!("name: {m}")))?;
            if !nodes.insert(n.get_ref().clone()) {
                return Err(fail(
                    n.span().start,
                    format!(
                        "name: {:?} is used twice (nodes need distinct names)",
                        n.get_ref()
                    ),
                ));
            }
            Ok(n.get_ref().clone())
        };

        let mut switches = Vec::new();
        for s in raw.switch {
            let s = s.into_inner();
            let name = node(&s.name, "switch name")?;
            let ips = match s.ip {
                Some(ip) => {
                    let at = ip.span().start;
                    let ips = ip.into_inner().into_vec();
                    for i in &ips {
                        parse_cidr(i).map_err(|m| fail(at, format!("ip: {m}")))?;
                    }
                    ips
                }
                None => Vec::new(),
            };
            if let Some(a) = &s.mac_ageing
                && !MAC_AGEING_RANGE.contains(a.get_ref())
            {
                return Err(fail(
                    a.span().start,
                    format!(
                        "mac-ageing = {} is out of range ({} to {})",
                        a.get_ref(),
                        MAC_AGEING_RANGE.start(),
                        MAC_AGEING_RANGE.end()
                    ),
                ));
            }
            let ip_vlan = match s.ip_vlan {
                Some(v) if ips.is_empty() => {
                    return Err(fail(v.span().start, "ip-vlan: the switch has no ip".into()));
                }
                Some(v) if !(1..=MAX_VID).contains(v.get_ref()) => {
                    return Err(fail(
                        v.span().start,
                        format!("ip-vlan = {} is out of range (1 to {MAX_VID})", v.get_ref()),
                    ));
                }
                v => v.map(Spanned::into_inner),
            };
            switches.push(Switch {
                name,
                arp_suppress: s.arp_suppress,
                ips,
                ip_vlan,
                mac_ageing: s.mac_ageing.map(Spanned::into_inner),
                seed: s.seed,
            });
        }

        let mut hosts = Vec::new();
        for h in raw.host {
            let at = h.span().start;
            let h = h.into_inner();
            let name = node(&h.name, "host name")?;
            let routes = h
                .routes
                .iter()
                .map(|r| {
                    let words: Vec<String> =
                        r.get_ref().split_whitespace().map(String::from).collect();
                    if words.is_empty() {
                        Err(fail(r.span().start, "routes: an empty route".to_owned()))
                    } else {
                        Ok(words)
                    }
                })
                .collect::<Result<_, _>>()?;
            let mut sysctls = Vec::new();
            for (key, value) in h.sysctl {
                let ok_key = key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
                let value = value_text(&value).filter(|_| ok_key).ok_or_else(|| {
                    fail(
                        at,
                        format!("sysctl: {key:?} needs a name and a plain value"),
                    )
                })?;
                if !(key.starts_with("net.")) {
                    return Err(fail(
                        at,
                        format!(
                            "sysctl: {key:?} is not a net.* key (only the namespace's network \
                             settings are per host)"
                        ),
                    ));
                }
                sysctls.push((key, value));
            }
            hosts.push(Host {
                name,
                routes,
                sysctls,
                start: h.start,
            });
        }

        let mut vms = Vec::new();
        for v in raw.vm {
            let v = v.into_inner();
            let name = node(&v.name, "vm name")?;
            let memory = match v.memory {
                Some(m) if !(64..=65536).contains(m.get_ref()) => {
                    return Err(fail(
                        m.span().start,
                        format!("memory = {} MiB is out of range (64 to 65536)", m.get_ref()),
                    ));
                }
                Some(m) => m.into_inner(),
                None => 256,
            };
            let mac = match v.mac {
                Some(m) => Some(
                    m.get_ref()
                        .parse::<MacAddr>()
                        .map_err(|e| fail(m.span().start, format!("mac: {e}")))?,
                ),
                None => None,
            };
            let socket = match v.socket.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("stream") => SocketKind::Stream,
                Some("dgram") => SocketKind::Dgram,
                Some(other) => {
                    return Err(fail(
                        v.socket.as_ref().map_or(0, |s| s.span().start),
                        format!("socket = {other:?}: stream or dgram"),
                    ));
                }
            };
            vms.push(Vm {
                name,
                memory,
                mac,
                guest: v.guest,
                append: v.append,
                socket,
                ready: v.ready,
            });
        }

        let kind_of = |n: &str| node_kind(&switches, &hosts, &vms, n);
        let mut links: Vec<Link> = Vec::new();
        let mut vm_links: HashSet<String> = HashSet::new();
        let mut host_ifnames: HashSet<(String, String)> = HashSet::new();
        for l in raw.link {
            let l = l.into_inner();
            let ends_at = l.ends.span().start;
            let ends: [String; 2] = l.ends.into_inner().try_into().map_err(|_| {
                fail(
                    ends_at,
                    "ends: a link has two ends: ends = [\"h1\", \"s1\"]".into(),
                )
            })?;
            let mut kinds = [NodeKind::Switch; 2];
            for (i, end) in ends.iter().enumerate() {
                kinds[i] = kind_of(end).ok_or_else(|| {
                    fail(
                        ends_at,
                        format!("ends: {end:?} is no [[switch]], [[host]] or [[vm]]"),
                    )
                })?;
            }
            if ends[0] == ends[1] {
                return Err(fail(
                    ends_at,
                    format!("ends: {:?} is linked to itself", ends[0]),
                ));
            }
            if !kinds.contains(&NodeKind::Switch) {
                return Err(fail(
                    ends_at,
                    "ends: one end of a link must be a switch".to_owned(),
                ));
            }
            let name = match &l.name {
                Some(n) => {
                    check_name("link name", n.get_ref(), MAX_LINK_NAME)
                        .map_err(|m| fail(n.span().start, format!("name: {m}")))?;
                    n.get_ref().clone()
                }
                None => format!("{}-{}", ends[0], ends[1]),
            };
            let name_at = l.name.as_ref().map_or(ends_at, |n| n.span().start);
            if name.len() > MAX_LINK_NAME {
                return Err(fail(
                    name_at,
                    format!(
                        "{name:?} is longer than {MAX_LINK_NAME} bytes: give the link a \
                         shorter name"
                    ),
                ));
            }
            if links.iter().any(|o| o.name == name) {
                return Err(fail(
                    name_at,
                    format!(
                        "a second link named {name:?}: give each link between the same \
                         nodes a name"
                    ),
                ));
            }
            let edge = kinds.iter().position(|k| *k != NodeKind::Switch);
            let edge_only = |key: &str, at: usize| -> Result<(), LabError> {
                if edge.is_none() {
                    Err(fail(
                        at,
                        format!(
                            "{key}: only a link to a host or VM has {key} (this one joins \
                             two switches)"
                        ),
                    ))
                } else {
                    Ok(())
                }
            };
            if let Some(i) = edge
                && kinds[i] == NodeKind::Vm
                && !vm_links.insert(ends[i].clone())
            {
                return Err(fail(
                    ends_at,
                    format!("ends: VM {:?} has one link only", ends[i]),
                ));
            }
            let ips = match l.ip {
                Some(ip) => {
                    let at = ip.span().start;
                    edge_only("ip", at)?;
                    let ips = ip.into_inner().into_vec();
                    for i in &ips {
                        parse_cidr(i).map_err(|m| fail(at, format!("ip: {m}")))?;
                    }
                    ips
                }
                None => Vec::new(),
            };
            let mac = match l.mac {
                Some(m) => {
                    edge_only("mac", m.span().start)?;
                    Some(
                        m.get_ref()
                            .parse::<MacAddr>()
                            .map_err(|e| fail(m.span().start, format!("mac: {e}")))?,
                    )
                }
                None => None,
            };
            let ifname = match l.ifname {
                Some(n) => {
                    edge_only("ifname", n.span().start)?;
                    let host = edge.map(|i| ends[i].clone()).unwrap_or_default();
                    if !host_ifnames.insert((host.clone(), n.get_ref().clone())) {
                        return Err(fail(
                            n.span().start,
                            format!("ifname: {host} has two interfaces named {:?}", n.get_ref()),
                        ));
                    }
                    check_name("ifname", n.get_ref(), 15)
                        .map_err(|m| fail(n.span().start, format!("ifname: {m}")))?;
                    Some(n.into_inner())
                }
                None => None,
            };
            let mut keyed: Vec<(&str, Spanned<toml::Value>)> = Vec::new();
            for (key, value) in [
                ("vlan", l.vlan),
                ("trunk", l.trunk),
                ("native", l.native),
                ("link", l.link),
                ("delay", l.delay),
                ("jitter", l.jitter),
                ("loss", l.loss),
                ("rate", l.rate),
                ("duplicate", l.duplicate),
                ("corrupt", l.corrupt),
                ("reorder", l.reorder),
            ] {
                if let Some(v) = value {
                    keyed.push((key, v));
                }
            }
            keyed.sort_by_key(|(_, v)| v.span().start);
            let mut keys = Vec::new();
            for (key, value) in keyed {
                let at = value.span().start;
                let text = value_text(value.get_ref())
                    .ok_or_else(|| fail(at, format!("{key}: expected a string, number or list")))?;
                // `native` only means something next to `trunk`: checked with all keys below.
                if key != "native" {
                    let pair = vec![(key.to_owned(), text.clone())];
                    check_port_keys(&pair).map_err(|(_, m)| fail(at, format!("{key}: {m}")))?;
                }
                keys.push((key.to_owned(), text));
            }
            if let Some(port) = l.port {
                let at = port.span().start;
                for (key, value) in port.into_inner() {
                    let text = value_text(&value).ok_or_else(|| {
                        fail(at, format!("port.{key}: expected a string, number or list"))
                    })?;
                    if IMPAIR_KEYS.contains(&key.as_str()) {
                        return Err(fail(
                            at,
                            format!(
                                "port.{key}: a port takes tx-{key} and rx-{key} (or write \
                                 {key} on the link itself for both directions)"
                            ),
                        ));
                    }
                    let pair = vec![(key.clone(), text.clone())];
                    check_port_keys(&pair)
                        .map_err(|(_, m)| fail(at, format!("port.{key}: {m}")))?;
                    keys.push((key, text));
                }
            }
            let owned: Vec<(String, String)> = keys
                .iter()
                .flat_map(|(k, v)| port_options(k, v, true))
                .collect();
            let pairs: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            PortSettings::default()
                .apply(&pairs)
                .map_err(|e| fail(ends_at, format!("the link's keys together: {e}")))?;
            links.push(Link {
                name,
                ends,
                ips,
                mac,
                ifname,
                keys,
            });
        }
        for vm in &vms {
            if !vm_links.contains(&vm.name) {
                return Err(fail(
                    0,
                    format!("vm {:?} has no [[link]] to a switch", vm.name),
                ));
            }
        }

        let mut checks = Vec::new();
        for c in raw.check.map(|c| c.ping).unwrap_or_default() {
            let at = c.span().start;
            let check = parse_ping(c.get_ref()).map_err(|m| fail(at, format!("ping: {m}")))?;
            match kind_of(&check.from) {
                Some(NodeKind::Host) => {}
                Some(_) => {
                    return Err(fail(
                        at,
                        format!(
                            "ping: pings start from a [[host]]; {:?} is not one",
                            check.from
                        ),
                    ));
                }
                None => return Err(fail(at, format!("ping: no node named {:?}", check.from))),
            }
            if let Target::Node(to) = &check.to {
                let has_address = links
                    .iter()
                    .any(|l| l.ends.contains(to) && !l.ips.is_empty())
                    || switches.iter().any(|s| &s.name == to && !s.ips.is_empty());
                if kind_of(to).is_none() {
                    return Err(fail(at, format!("ping: no node named {to:?}")));
                }
                if !has_address {
                    return Err(fail(
                        at,
                        format!("ping: {to:?} has no address (give its link an ip)"),
                    ));
                }
            }
            checks.push(check);
        }

        Ok(Topology {
            name,
            switches,
            hosts,
            vms,
            links,
            checks,
        })
    }

    /// What kind of node `name` is.
    pub fn kind(&self, name: &str) -> Option<NodeKind> {
        node_kind(&self.switches, &self.hosts, &self.vms, name)
    }
}

fn node_kind(switches: &[Switch], hosts: &[Host], vms: &[Vm], name: &str) -> Option<NodeKind> {
    if switches.iter().any(|s| s.name == name) {
        Some(NodeKind::Switch)
    } else if hosts.iter().any(|h| h.name == name) {
        Some(NodeKind::Host)
    } else if vms.iter().any(|v| v.name == name) {
        Some(NodeKind::Vm)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Switch,
    Host,
    Vm,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, LabError> {
        Topology::parse(Path::new("lab.toml"), text)
    }

    /// The error's line and message.
    fn error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(LabError::File { line, message, .. }) => (line, message),
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    const BASE: &str = "name = \"t\"\n[[switch]]\nname = \"s1\"\n[[host]]\nname = \"h1\"\n";

    #[test]
    fn the_shipped_examples_parse() {
        for (file, text) in [
            ("wan.toml", include_str!("../../docs/labs/wan.toml")),
            ("vlans.toml", include_str!("../../docs/labs/vlans.toml")),
            ("chain.toml", include_str!("../../docs/labs/chain.toml")),
            ("vms.toml", include_str!("../../docs/labs/vms.toml")),
        ] {
            let topo =
                Topology::parse(Path::new(file), text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!topo.checks.is_empty(), "{file} has checks");
        }
    }

    #[test]
    fn a_bad_link_key_names_its_line_and_key() {
        let text = format!("{BASE}[[link]]\nends = [\"h1\", \"s1\"]\ndelay = \"forty\"\n");
        let (line, message) = error(&text);
        assert_eq!(line, 8);
        assert!(message.starts_with("delay: "), "{message}");
        let text = format!("{BASE}[[link]]\nends = [\"h1\", \"s1\"]\nvlan = 5000\n");
        let (line, message) = error(&text);
        assert_eq!(line, 8);
        assert!(message.starts_with("vlan: "), "{message}");
    }

    #[test]
    fn unknown_keys_and_nodes_are_refused_with_their_line() {
        let (line, message) = error(&format!("{BASE}colour = \"red\"\n"));
        assert_eq!(line, 6);
        assert!(message.contains("colour"), "{message}");
        let text = format!("{BASE}[[link]]\nends = [\"h1\", \"s9\"]\n");
        let (line, message) = error(&text);
        assert_eq!(line, 7);
        assert!(message.contains("\"s9\""), "{message}");
        let text = format!("{BASE}[[link]]\nends = [\"h1\", \"s1\"]\nport = {{ tx-dealy = 4 }}\n");
        let (line, message) = error(&text);
        assert_eq!(line, 8);
        assert!(message.contains("tx-dealy"), "{message}");
    }

    #[test]
    fn links_need_a_switch_and_distinct_names() {
        let two_hosts =
            format!("{BASE}[[host]]\nname = \"h2\"\n[[link]]\nends = [\"h1\", \"h2\"]\n");
        assert!(error(&two_hosts).1.contains("must be a switch"));
        let twice =
            format!("{BASE}[[link]]\nends = [\"h1\", \"s1\"]\n[[link]]\nends = [\"h1\", \"s1\"]\n");
        let (line, message) = error(&twice);
        assert_eq!(line, 9);
        assert!(message.contains("give each link"), "{message}");
        let dup = format!("{BASE}[[host]]\nname = \"s1\"\n");
        assert!(error(&dup).1.contains("used twice"));
    }

    #[test]
    fn trunk_and_native_are_checked_together() {
        let text = format!(
            "{BASE}[[switch]]\nname = \"s2\"\n[[link]]\nends = [\"s1\", \"s2\"]\n\
             trunk = [10, 20]\nnative = 10\n"
        );
        let topo = parse(&text).unwrap();
        assert_eq!(
            topo.links[0].keys,
            vec![
                ("trunk".to_owned(), "10,20".to_owned()),
                ("native".to_owned(), "10".to_owned())
            ]
        );
    }

    #[test]
    fn ping_checks_read_their_expectation_and_bound() {
        let c = parse_ping("h1 -> h2 ok rtt >= 80ms").unwrap();
        assert_eq!(c.from, "h1");
        assert_eq!(c.to, Target::Node("h2".into()));
        assert!(c.expect_ok);
        assert_eq!(
            c.rtt,
            Some(RttBound {
                at_least: true,
                ms: 80.0
            })
        );
        let c = parse_ping("h1 -> fd00::2 fails").unwrap();
        assert_eq!(c.to, Target::Addr("fd00::2".parse().unwrap()));
        assert!(!c.expect_ok);
        assert!(parse_ping("h1 h2").is_err());
        assert!(parse_ping("h1 -> h2 rtt > 5").is_err());
        assert!(parse_ping("h1 -> h2 fails rtt <= 5").is_err());
        assert!(parse_ping("h1 -> h2 maybe").is_err());
        let text = format!("{BASE}[check]\nping = [\"h1 -> h1x\"]\n");
        let (line, message) = error(&text);
        assert_eq!(line, 7);
        assert!(message.contains("no node named \"h1x\""), "{message}");
    }

    #[test]
    fn a_switch_address_vlan_needs_an_address() {
        let (line, message) = error("name = \"t\"\n[[switch]]\nname = \"s1\"\nip-vlan = 7\n");
        assert_eq!(line, 4);
        assert!(message.starts_with("ip-vlan: "), "{message}");
        let text = "name = \"t\"\n[[switch]]\nname = \"s1\"\nip = \"10.0.0.1/24\"\nip-vlan = 7\n";
        assert_eq!(parse(text).unwrap().switches[0].ip_vlan, Some(7));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_lab_name("wan").is_ok());
        assert!(check_lab_name("Wan").is_err());
        assert!(check_lab_name("a-b").is_err());
        assert!(check_lab_name("abcdefghijk").is_err());
        let (line, message) = error("name = \"x y\"\n");
        assert_eq!(line, 1);
        assert!(message.starts_with("name: "), "{message}");
        let long = format!("{BASE}[[host]]\nname = \"abcdefghijklm\"\n");
        assert!(error(&long).1.contains("1 to 12"));
    }
}
