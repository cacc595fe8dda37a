//! `vswitchctl`: its command line (clap, shared with the man page test) and how it prints each
//! reply as text.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{DEFAULT_NAME, PortSettings, default_ctl_socket, parse_switch_name};
use crate::control::{
    ArpRow, ArpStatsReply, FdbRow, FdbStatsReply, MirrorRow, PortInfo, PortShowReply, PortStatsRow,
    ReloadReply, Request, ShowReply,
};
use crate::datapath::impair::ImpairCounts;
use crate::wire::MacAddr;
use crate::wire::vlan::MAX_VID;

const AFTER_HELP: &str = "\
Examples:
  vswitchctl show                      the switch, its ports and its MAC table at a glance
  vswitchctl fdb show                  learned and static MAC entries, ovs-appctl style
  vswitchctl --json fdb show | jq .    the same for scripts
  vswitchctl fdb add tap1 02:00:00:00:00:10
  vswitchctl port add tap3             attach a new TAP while the switch runs
  vswitchctl -n lab port stats tap0    talk to the switch started with --name lab

Exit status: 0 success; 1 the daemon refused the command (its message is printed);
2 usage error; 3 the daemon could not be reached (the message names the socket).";

/// `vswitchctl`'s arguments.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "vswitchctl",
    version,
    about = "Inspect and control a running vswitchd",
    long_about = "Inspect and control a running vswitchd over its control socket: the MAC \
                  table, ports and their counters, config reloads.",
    after_long_help = AFTER_HELP,
    disable_help_subcommand = true
)]
pub struct CtlArgs {
    /// Talk to the switch started with --name NAME (socket /run/vswitchd/NAME.ctl).
    #[arg(short = 'n', long, value_name = "NAME", value_parser = parse_switch_name, conflicts_with = "socket")]
    pub name: Option<String>,

    /// Talk to the control socket at PATH.
    #[arg(short = 's', long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the daemon's reply as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for the daemon.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The switch, its ports and its MAC table at a glance.
    Show,
    /// The MAC table (forwarding database).
    #[command(subcommand)]
    Fdb(FdbCommand),
    /// Ports: list, attach, detach, counters.
    #[command(subcommand)]
    Port(PortCommand),
    /// The ARP bindings the switch has seen, and its ARP counters.
    #[command(subcommand)]
    Arp(ArpCommand),
    /// Capture ports live as pcapng: `vswitchctl capture tap1 -w - | tshark -r -`, or
    /// `| wireshark -k -i -`. Frames as they are on each port's wire (received as they came,
    /// sent after VLAN tagging; a TSO super-frame as one packet). Ends after -c COUNT frames,
    /// when a port is removed, or on Ctrl-C; the file always ends on a whole block. A reader
    /// that falls behind loses frames from the capture (counted in its statistics blocks),
    /// never from the switch.
    Capture {
        /// The ports, comma-separated: one pcapng interface each.
        #[arg(value_name = "PORT[,PORT...]", value_delimiter = ',', required = true)]
        ports: Vec<String>,
        /// Which frames: received from the port's host, sent to it, or both.
        #[arg(long, value_parser = ["rx", "tx", "both"], default_value = "both")]
        direction: String,
        /// Stop after COUNT frames.
        #[arg(short = 'c', long, value_name = "COUNT")]
        count: Option<u64>,
        /// Bytes kept of each frame, 64 to 262144 [default: 262144].
        #[arg(long, value_name = "BYTES")]
        snaplen: Option<u32>,
        /// Only frames the switch classified into this VLAN (0 to 4094).
        #[arg(long, value_name = "VID", value_parser = clap::value_parser!(u16).range(0..=4094))]
        vlan: Option<u16>,
        /// Only frames from or to this MAC.
        #[arg(long, value_name = "MAC")]
        mac: Option<MacAddr>,
        /// Only frames of this EtherType after any VLAN tags: 0x0806, arp, ipv4, ipv6 or lldp.
        #[arg(long, value_name = "TYPE", value_parser = parse_ethertype)]
        ethertype: Option<u16>,
        /// Where to write: a file, or - for standard output.
        #[arg(short = 'w', value_name = "FILE|-", required = true)]
        write: String,
    },
    /// Port mirrors (SPAN): copies of some ports' frames out of another port.
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Print events as they happen, one line each, until Ctrl-C (like `bridge monitor`): MAC
    /// entries learned, moved, aged, evicted, added, deleted, flushed; ports attached, removed
    /// (with the reason) and changing state (up, admin-down, link-down, waiting...); port
    /// security and loop protection acting (at most once a second per port, with a count);
    /// config reloads. With --json, one JSON object per line with a `time` (Unix seconds) and
    /// an `event` field. A reader that falls behind loses events and is told how many.
    Monitor {
        /// Which events: fdb, port, security, reload or all [default: all].
        #[arg(value_name = "KIND", value_parser = ["fdb", "port", "security", "reload", "all"])]
        kinds: Vec<String>,
        /// Start each line with the event's time of day (UTC, to the millisecond), as
        /// `ip monitor -t` does.
        #[arg(short = 't', long)]
        timestamp: bool,
    },
    /// The counters in the Prometheus text exposition format: per-port frames, bytes and drops
    /// by reason, MAC and ARP tables, uptime (for node_exporter's textfile collector).
    Metrics,
    /// Re-read the config file and apply the difference (as SIGHUP does).
    Reload,
    /// This program's version and the daemon's.
    Version,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum FdbCommand {
    /// Every entry: port, VLAN, MAC, age in seconds (or "static").
    Show,
    /// Forget learned entries, of one port or all; static entries stay.
    Flush {
        /// Only this port's entries.
        port: Option<String>,
    },
    /// Add a static entry: frames to MAC always go to PORT; it never ages and learning does not
    /// move it.
    Add {
        port: String,
        mac: MacAddr,
        /// VLAN of the entry, 0 to 4094 [default: 0].
        #[arg(value_parser = clap::value_parser!(u16).range(0..=i64::from(MAX_VID)))]
        vlan: Option<u16>,
        /// For a vxlan port: the remote VTEP (one of its remote= addresses) that frames to
        /// MAC go to, instead of every remote until the MAC is heard.
        #[arg(long, value_name = "ADDR")]
        remote: Option<std::net::IpAddr>,
    },
    /// Delete an entry, learned or static.
    Del {
        mac: MacAddr,
        /// VLAN of the entry, 0 to 4094 [default: 0].
        #[arg(value_parser = clap::value_parser!(u16).range(0..=i64::from(MAX_VID)))]
        vlan: Option<u16>,
    },
    /// Table size and lifetime counters: learned, moved, expired, evicted.
    Stats,
    /// Print the static and sticky entries as `[[fdb]]` tables for the config file, so they
    /// survive a restart: `vswitchctl fdb save >> /etc/vswitchd/lab.toml`.
    Save,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum MirrorCommand {
    /// Send copies of what the --from ports receive and send (or --direction) out of the --to
    /// port, which then takes no frames in and learns nothing while it is a mirror's output.
    Add {
        name: String,
        /// Source ports, comma-separated.
        #[arg(
            long,
            value_name = "PORT[,PORT...]",
            value_delimiter = ',',
            required = true
        )]
        from: Vec<String>,
        #[arg(long, value_parser = ["rx", "tx", "both"], default_value = "both")]
        direction: String,
        /// Only frames the switch classified into this VLAN (0 to 4094; 0 is an untagged
        /// switch's one VLAN) [default: every frame].
        #[arg(long, value_name = "VID", value_parser = clap::value_parser!(u16).range(0..=4094))]
        vlan: Option<u16>,
        /// The output port.
        #[arg(long, value_name = "PORT")]
        to: String,
    },
    /// Remove a mirror; its output port forwards again.
    Del { name: String },
    /// The mirrors with frames sent and dropped.
    List,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ArpCommand {
    /// Every binding: VLAN, IPv4 address, MAC, port, age in seconds (or "static").
    Show,
    /// Bindings learned, moved, expired, evicted; requests answered, ARP guarded, malformed.
    Stats,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum PortCommand {
    /// Attached ports with kind, state and MAC count.
    List,
    /// Attach a port; SPEC has the --port grammar ([KIND:]NAME[,key=value...]).
    Add { spec: String },
    /// Detach a port; its MAC entries go with it, and a TAP vswitchd created is deleted.
    Del { name: String },
    /// Frames and bytes received and sent, and drops by reason; of one port or all. With
    /// --rate, frames/s and bits/s over SECS seconds instead (a `top` for the switch).
    Stats {
        name: Option<String>,
        /// Rates over this many seconds [default: 1].
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1",
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        rate: Option<u64>,
    },
    /// Change settings of a running port, e.g. `port set tap1 tx-delay=50 link=down`; the
    /// keys of a --port spec (vswitchd --help lists them). Frames, MAC entries and counters
    /// stay; a new VLAN mode forgets the port's learned MACs.
    Set {
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Every setting of a port, whether the switch drives its carrier, and what its
    /// impairment did.
    Show { name: String },
}

impl CtlArgs {
    /// The control socket to use.
    pub fn socket_path(&self) -> PathBuf {
        match (&self.socket, &self.name) {
            (Some(path), _) => path.clone(),
            (None, Some(name)) => default_ctl_socket(name),
            (None, None) => default_ctl_socket(DEFAULT_NAME),
        }
    }
}

impl Command {
    /// The request this command sends.
    pub fn request(&self) -> Request {
        match self.clone() {
            Command::Show => Request::Show {},
            Command::Capture {
                ports,
                direction,
                count,
                snaplen,
                vlan,
                mac,
                ethertype,
                ..
            } => Request::Capture {
                ports,
                direction: Some(direction),
                count,
                snaplen,
                vlan,
                mac: mac.map(|m| m.to_string()),
                ethertype,
            },
            Command::Reload => Request::Reload {},
            Command::Metrics => Request::Metrics {},
            Command::Monitor { kinds, .. } => Request::Monitor { kinds },
            Command::Mirror(MirrorCommand::Add {
                name,
                from,
                direction,
                vlan,
                to,
            }) => Request::MirrorAdd {
                name,
                from,
                direction: Some(direction),
                vlan,
                to,
            },
            Command::Mirror(MirrorCommand::Del { name }) => Request::MirrorDel { name },
            Command::Mirror(MirrorCommand::List) => Request::MirrorList {},
            Command::Version => Request::Version {},
            Command::Fdb(c) => match c {
                FdbCommand::Show => Request::FdbShow {},
                FdbCommand::Flush { port } => Request::FdbFlush { port },
                FdbCommand::Add {
                    port,
                    mac,
                    vlan,
                    remote,
                } => Request::FdbAdd {
                    port,
                    mac,
                    vlan: vlan.unwrap_or(0),
                    remote,
                },
                FdbCommand::Del { mac, vlan } => Request::FdbDel {
                    mac,
                    vlan: vlan.unwrap_or(0),
                },
                FdbCommand::Stats => Request::FdbStats {},
                FdbCommand::Save => Request::FdbSave {},
            },
            Command::Arp(ArpCommand::Show) => Request::ArpShow {},
            Command::Arp(ArpCommand::Stats) => Request::ArpStats {},
            Command::Port(c) => match c {
                PortCommand::List => Request::PortList {},
                PortCommand::Add { spec } => Request::PortAdd { spec },
                PortCommand::Del { name } => Request::PortDel { name },
                PortCommand::Stats { name, .. } => Request::PortStats { name },
                PortCommand::Set { name, settings } => Request::PortSet { name, settings },
                PortCommand::Show { name } => Request::PortShow { name },
            },
        }
    }

    /// Whether a reply reports that part of the command failed (a reload that could not open
    /// every port): vswitchctl then exits 1 after printing it.
    pub fn partly_failed(&self, value: &Value) -> bool {
        *self == Command::Reload && value["failed"].as_array().is_some_and(|f| !f.is_empty())
    }

    /// Puts a reply in order where the daemon does not: table dumps come in table order, a
    /// piece at a time, and are sorted here (fdb by port, VLAN, MAC; arp by VLAN, IP).
    pub fn arrange(&self, value: Value) -> Value {
        fn sorted<T: DeserializeOwned + serde::Serialize, K: Ord>(
            value: Value,
            key: impl Fn(&T) -> K,
        ) -> Value {
            match serde_json::from_value::<Vec<T>>(value.clone()) {
                Ok(mut rows) => {
                    rows.sort_by_key(|r| key(r));
                    serde_json::to_value(rows).unwrap_or(value)
                }
                Err(_) => value,
            }
        }
        match self {
            Command::Fdb(FdbCommand::Show) => {
                sorted(value, |r: &FdbRow| (r.port.clone(), r.vlan, r.mac))
            }
            Command::Arp(ArpCommand::Show) => sorted(value, |r: &ArpRow| (r.vlan, r.ip)),
            _ => value,
        }
    }

    /// The daemon's reply as text for people.
    pub fn render(&self, value: Value) -> Result<String, String> {
        Ok(match self {
            Command::Show => show(&typed::<ShowReply>(value)?),
            Command::Fdb(FdbCommand::Show) => fdb_table(&typed::<Vec<FdbRow>>(value)?),
            Command::Fdb(FdbCommand::Stats) => fdb_stats(&typed::<FdbStatsReply>(value)?),
            Command::Fdb(FdbCommand::Save) => fdb_snippet(&typed::<Vec<FdbRow>>(value)?),
            Command::Fdb(FdbCommand::Flush { .. }) => {
                let n = value["removed"].as_u64().unwrap_or(0);
                let entries = if n == 1 { "entry" } else { "entries" };
                format!("flushed {n} learned {entries}\n")
            }
            Command::Fdb(FdbCommand::Add { .. } | FdbCommand::Del { .. }) => String::new(),
            Command::Port(PortCommand::List) => port_table(&typed::<Vec<PortInfo>>(value)?),
            Command::Port(PortCommand::Add { .. }) => port_table(&[typed::<PortInfo>(value)?]),
            Command::Port(PortCommand::Del { .. }) => format!(
                "port {} detached ({} MAC entries removed)\n",
                value["name"].as_str().unwrap_or("?"),
                value["macs_removed"]
            ),
            Command::Port(PortCommand::Set { .. } | PortCommand::Show { .. }) => {
                port_show(&typed::<PortShowReply>(value)?)
            }
            Command::Port(PortCommand::Stats { .. }) => {
                port_stats(&typed::<Vec<PortStatsRow>>(value)?)
            }
            Command::Arp(ArpCommand::Show) => arp_table(&typed::<Vec<ArpRow>>(value)?),
            Command::Arp(ArpCommand::Stats) => arp_stats(&typed::<ArpStatsReply>(value)?),
            Command::Reload => reload(&typed::<ReloadReply>(value)?),
            Command::Metrics => value.as_str().unwrap_or_default().to_owned(),
            Command::Mirror(MirrorCommand::Del { .. }) => String::new(),
            Command::Mirror(_) => mirror_table(&typed::<Vec<MirrorRow>>(value)?),
            // A capture's bytes go to its file and events to standard output, as they come.
            Command::Capture { .. } | Command::Monitor { .. } => String::new(),
            // vswitchctl's own version is printed before the daemon is asked.
            Command::Version => format!("vswitchd {}\n", value["version"].as_str().unwrap_or("?")),
        })
    }
}

/// An EtherType: hexadecimal (`0x0806`), or a name for the common ones.
fn parse_ethertype(text: &str) -> Result<u16, String> {
    let named = match text.to_ascii_lowercase().as_str() {
        "arp" => Some(0x0806),
        "ipv4" | "ip" => Some(0x0800),
        "ipv6" => Some(0x86dd),
        "lldp" => Some(0x88cc),
        _ => None,
    };
    if let Some(t) = named {
        return Ok(t);
    }
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| format!("{text:?}: expected 0xNNNN, arp, ipv4, ipv6 or lldp"))?;
    u16::from_str_radix(hex, 16).map_err(|e| format!("{text:?}: {e}"))
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("unexpected reply from vswitchd: {e}"))
}

/// `1d02h03m04s`, dropping leading zero units.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m{s:02}s"),
    }
}

fn show(r: &ShowReply) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: vswitchd {}, up {}",
        r.name,
        r.version,
        duration(r.uptime)
    );
    if let Some(config) = &r.config {
        let _ = writeln!(out, "  config file: {config}");
    }
    let _ = writeln!(
        out,
        "  MAC table: {} of {} entries ({} static), ageing {} s",
        r.fdb.entries, r.fdb.max, r.fdb.static_entries, r.fdb.ageing
    );
    let _ = writeln!(out, "  ports: {}", r.ports.len());
    for line in port_table(&r.ports).lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
}

/// `port show`: the port, then its settings in the order specs write them, each impaired
/// direction on one line with the keys that are set (the JSON reply has every key), then what
/// the impairment did.
fn port_show(r: &PortShowReply) -> String {
    let mut out = format!("port {} ({}, {})\n", r.name, r.kind, r.state);
    let mut line = |key: &str, value: &str| out += &format!("  {key:<15}{value}\n");
    line("carrier", &r.carrier);
    let defaults = PortSettings::default().keys();
    let impair = |k: &str| k.starts_with("tx-") || k.starts_with("rx-");
    // A trunk's keys stand where `vlan` stands.
    let order = defaults.iter().map(|(k, _)| k.clone());
    let keys = ["trunk".to_owned(), "native".to_owned()]
        .into_iter()
        .chain(order);
    let mut seen = Vec::new();
    for key in keys.chain(r.settings.keys().cloned()) {
        if impair(&key) || seen.contains(&key) {
            continue;
        }
        if let Some(value) = r.settings.get(&key) {
            line(&key, value);
        }
        seen.push(key);
    }
    for (dir, counts) in [("tx", &r.impairment.tx), ("rx", &r.impairment.rx)] {
        let set: Vec<String> = defaults
            .iter()
            .filter_map(|(k, default)| {
                let item = k.strip_prefix(dir)?.strip_prefix('-')?;
                let v = r.settings.get(k)?;
                (v != default).then(|| format!("{item}={v}"))
            })
            .collect();
        let what = if set.is_empty() {
            "none".to_owned()
        } else {
            set.join(" ")
        };
        line(&format!("{dir}-impair"), &what);
        if *counts != ImpairCounts::default() {
            let c = counts;
            line(
                "",
                &format!(
                    "{} delayed, {} lost, {} duplicated, {} corrupted, {} reordered, {} overflowed",
                    c.delayed, c.lost, c.duplicated, c.corrupted, c.reordered, c.overflowed
                ),
            );
        }
    }
    out
}

fn port_table(ports: &[PortInfo]) -> String {
    let w = ports.iter().map(|p| p.name.len()).max().unwrap_or(0).max(4);
    let v = ports.iter().map(|p| p.vlan.len()).max().unwrap_or(0).max(5);
    let k = ports.iter().map(|p| p.kind.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{:>4}  {:<w$}  {:<k$}  {:<9}  {:>5}  {:<v$}  detail\n",
        "id", "name", "kind", "state", "MACs", "VLANs"
    );
    for p in ports {
        let _ = writeln!(
            out,
            "{:>4}  {:<w$}  {:<k$}  {:<9}  {:>5}  {:<v$}  {}",
            p.id, p.name, p.kind, p.state, p.macs, p.vlan, p.detail
        );
    }
    out
}

/// The rows of `ovs-appctl fdb/show`, with port names: ` port  VLAN  MAC                Age`.
pub fn fdb_table(rows: &[FdbRow]) -> String {
    let w = rows.iter().map(|r| r.port.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{:>w$}  {:>4}  {:<17}  {:>3}\n",
        "port", "VLAN", "MAC", "Age"
    );
    for r in rows {
        let via = r
            .remote
            .as_ref()
            .map(|remote| format!("  via {remote}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>w$}  {:>4}  {:<17}  {:>3}{via}",
            r.port,
            r.vlan,
            r.mac.to_string(),
            age(r)
        );
    }
    out
}

/// An entry's age in seconds, or "static"/"sticky"; a locked entry says so after its age.
fn age(row: &FdbRow) -> String {
    match row.age {
        None if row.sticky => "sticky".to_owned(),
        None => "static".to_owned(),
        Some(a) if row.locked => format!("{a} locked"),
        Some(a) => a.to_string(),
    }
}

/// `fdb save`: the static and sticky entries as `[[fdb]]` tables for the config file.
fn fdb_snippet(rows: &[FdbRow]) -> String {
    let mut out = String::from(
        "# Static and sticky MAC entries, for vswitchd's config file (`vswitchctl fdb save >> FILE`).\n",
    );
    for r in rows {
        let _ = write!(
            out,
            "\n[[fdb]]\nport = {:?}\nmac = \"{}\"\nvlan = {}\n",
            r.port, r.mac, r.vlan
        );
    }
    out
}

/// ARP bindings: ` VLAN  IP               MAC                port  Age`.
pub fn arp_table(rows: &[ArpRow]) -> String {
    let w = rows.iter().map(|r| r.port.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:>4}  {:<15}  {:<17}  {:<w$}  {:>3}\n",
        "VLAN", "IP", "MAC", "port", "Age"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>4}  {:<15}  {:<17}  {:<w$}  {:>3}",
            r.vlan,
            r.ip.to_string(),
            r.mac.to_string(),
            r.port,
            r.age.map_or_else(|| "static".to_owned(), |a| a.to_string())
        );
    }
    out
}

fn arp_stats(s: &ArpStatsReply) -> String {
    format!(
        "bindings: {}\nlearned: {}\nmoved: {}\nexpired: {}\nevicted: {}\n\
         suppression: {}\nrequests answered: {}\nguard drops: {}\nmalformed: {}\n",
        s.entries,
        s.learned,
        s.moved,
        s.expired,
        s.evicted,
        if s.suppress {
            "on"
        } else {
            "off (per-port settings apply)"
        },
        s.suppressed,
        s.guarded,
        s.malformed
    )
}

fn fdb_stats(s: &FdbStatsReply) -> String {
    format!(
        "current entries: {}\nmax entries: {}\nstatic entries: {}\nlearned: {}\nmoved: {}\n\
         expired: {}\nevicted: {}\n",
        s.entries, s.max, s.static_entries, s.learned, s.moved, s.expired, s.evicted
    )
}

/// `mirror list`: name, sources, direction, output, copies sent and dropped.
fn mirror_table(rows: &[MirrorRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{}: {} ({}{}) -> {}: {} frames, {} dropped",
            r.name,
            r.from.join(","),
            r.direction,
            r.vlan.map(|v| format!(", vlan {v}")).unwrap_or_default(),
            r.to,
            r.frames,
            r.dropped
        );
    }
    out
}

/// One port's rates between two `port stats` replies.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PortRate {
    pub name: String,
    pub rx_fps: f64,
    pub rx_bps: f64,
    pub tx_fps: f64,
    pub tx_bps: f64,
    pub drops_ps: f64,
}

/// The rates of the ports in both `before` and `after`, taken `secs` apart.
pub fn port_rates(before: &[PortStatsRow], after: &[PortStatsRow], secs: f64) -> Vec<PortRate> {
    let per_sec = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.name == a.name)?;
            let drops = |r: &PortStatsRow| r.drops.values().sum::<u64>();
            Some(PortRate {
                name: a.name.clone(),
                rx_fps: per_sec(b.rx_frames, a.rx_frames),
                rx_bps: per_sec(b.rx_bytes, a.rx_bytes) * 8.0,
                tx_fps: per_sec(b.tx_frames, a.tx_frames),
                tx_bps: per_sec(b.tx_bytes, a.tx_bytes) * 8.0,
                drops_ps: per_sec(drops(b), drops(a)),
            })
        })
        .collect()
}

/// `port stats --rate`: one line per port.
pub fn rate_table(rates: &[PortRate]) -> String {
    let w = rates.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    let bits = |b: f64| match b {
        b if b >= 1e9 => format!("{:.2}G", b / 1e9),
        b if b >= 1e6 => format!("{:.2}M", b / 1e6),
        b if b >= 1e3 => format!("{:.2}k", b / 1e3),
        b => format!("{b:.0}"),
    };
    let mut out = format!(
        "{:<w$}  {:>10}  {:>9}  {:>10}  {:>9}  {:>8}\n",
        "port", "rx frames/s", "rx bit/s", "tx frames/s", "tx bit/s", "drops/s"
    );
    for r in rates {
        let _ = writeln!(
            out,
            "{:<w$}  {:>11.0}  {:>9}  {:>11.0}  {:>9}  {:>8.0}",
            r.name,
            r.rx_fps,
            bits(r.rx_bps),
            r.tx_fps,
            bits(r.tx_bps),
            r.drops_ps
        );
    }
    out
}

fn port_stats(rows: &[PortStatsRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(out, "{}:", r.name);
        let _ = writeln!(out, "  rx: {} frames, {} bytes", r.rx_frames, r.rx_bytes);
        let _ = writeln!(out, "  tx: {} frames, {} bytes", r.tx_frames, r.tx_bytes);
        let total: u64 = r.drops.values().sum();
        let detail: Vec<String> = r
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if detail.is_empty() {
            let _ = writeln!(out, "  drops: {total}");
        } else {
            let _ = writeln!(out, "  drops: {total} ({})", detail.join(", "));
        }
        if r.captured > 0 || r.capture_dropped > 0 {
            let _ = writeln!(
                out,
                "  capture: {} frames captured, {} lost to slow readers",
                r.captured, r.capture_dropped
            );
        }
    }
    out
}

fn reload(r: &ReloadReply) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = format!(
        "added: {}\nremoved: {}\nreconfigured: {}\nreplaced: {}\nunchanged: {}\n",
        list(&r.added),
        list(&r.removed),
        list(&r.reconfigured),
        list(&r.replaced),
        list(&r.unchanged)
    );
    if !r.failed.is_empty() {
        let _ = writeln!(out, "failed: {}", list(&r.failed));
    }
    for note in &r.needs_restart {
        let _ = writeln!(out, "needs a restart to apply: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<CtlArgs, clap::Error> {
        CtlArgs::try_parse_from(std::iter::once("vswitchctl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        CtlArgs::command().debug_assert();
    }

    #[test]
    fn commands_map_to_requests() {
        let req = |args: &[&str]| parse(args).unwrap().command.request();
        assert_eq!(req(&["show"]), Request::Show {});
        assert_eq!(req(&["fdb", "flush"]), Request::FdbFlush { port: None });
        assert_eq!(
            req(&["fdb", "add", "tap0", "02:00:00:00:00:01", "7"]),
            Request::FdbAdd {
                port: "tap0".into(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
                vlan: 7,
                remote: None,
            }
        );
        assert_eq!(
            req(&["port", "stats", "tap1"]),
            Request::PortStats {
                name: Some("tap1".into())
            }
        );
        assert!(parse(&["fdb", "add", "tap0", "nonsense"]).is_err());
        assert!(parse(&["fdb", "del", "02:00:00:00:00:01", "4095"]).is_err());
        assert!(parse(&["-n", "a", "-s", "/x", "show"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn socket_path_follows_name_or_path() {
        assert_eq!(
            parse(&["show"]).unwrap().socket_path(),
            PathBuf::from("/run/vswitchd/vswitch0.ctl")
        );
        assert_eq!(
            parse(&["-n", "lab", "show"]).unwrap().socket_path(),
            PathBuf::from("/run/vswitchd/lab.ctl")
        );
        assert_eq!(
            parse(&["-s", "/tmp/x.ctl", "show"]).unwrap().socket_path(),
            PathBuf::from("/tmp/x.ctl")
        );
    }

    #[test]
    fn fdb_rows_line_up_like_ovs() {
        let rows = vec![
            FdbRow {
                port: "tap0".into(),
                vlan: 0,
                mac: "02:00:00:00:00:01".parse().unwrap(),
                age: Some(3),
                is_static: false,
                sticky: false,
                locked: false,
                remote: None,
            },
            FdbRow {
                port: "tap1".into(),
                vlan: 10,
                mac: "02:00:00:00:00:02".parse().unwrap(),
                age: None,
                is_static: true,
                sticky: false,
                locked: false,
                remote: None,
            },
            FdbRow {
                port: "tap2".into(),
                vlan: 0,
                mac: "02:00:00:00:00:03".parse().unwrap(),
                age: None,
                is_static: true,
                sticky: true,
                locked: false,
                remote: None,
            },
            FdbRow {
                port: "tap3".into(),
                vlan: 0,
                mac: "02:00:00:00:00:04".parse().unwrap(),
                age: Some(7),
                is_static: false,
                sticky: false,
                locked: true,
                remote: None,
            },
        ];
        assert_eq!(
            fdb_table(&rows),
            concat!(
                " port  VLAN  MAC                Age\n",
                " tap0     0  02:00:00:00:00:01    3\n",
                " tap1    10  02:00:00:00:00:02  static\n",
                " tap2     0  02:00:00:00:00:03  sticky\n",
                " tap3     0  02:00:00:00:00:04  7 locked\n",
            )
        );
        let snippet = fdb_snippet(&rows[1..3]);
        assert!(
            snippet.contains("[[fdb]]\nport = \"tap1\"\nmac = \"02:00:00:00:00:02\"\nvlan = 10\n")
        );
        assert_eq!(snippet.matches("[[fdb]]").count(), 2);
    }

    #[test]
    fn rates_are_differences_over_time() {
        let row = |frames: u64, bytes: u64| PortStatsRow {
            name: "tap0".into(),
            rx_frames: frames,
            rx_bytes: bytes,
            tx_frames: frames / 2,
            tx_bytes: bytes / 2,
            drops: [("malformed".to_owned(), frames / 10)]
                .into_iter()
                .collect(),
            captured: 0,
            capture_dropped: 0,
        };
        let rates = port_rates(&[row(100, 10_000)], &[row(300, 1_010_000)], 2.0);
        assert_eq!(
            rates,
            [PortRate {
                name: "tap0".into(),
                rx_fps: 100.0,
                rx_bps: 4_000_000.0,
                tx_fps: 50.0,
                tx_bps: 2_000_000.0,
                drops_ps: 10.0,
            }]
        );
        let table = rate_table(&rates);
        assert!(
            table.contains("4.00M") && table.contains("2.00M"),
            "{table}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3723), "1h02m03s");
        assert_eq!(duration(90061), "1d01h01m01s");
    }
}
