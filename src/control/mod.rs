//! The control protocol: one JSON request per line, one JSON reply per line, over a Unix stream
//! socket. `docs/control.md` documents every command.
//!
//! A request is an object whose `cmd` names the command, with its arguments beside it:
//! `{"cmd":"fdb-add","port":"tap0","mac":"02:00:00:00:00:01"}`. A reply is `{"ok":VALUE}` or
//! `{"error":"MESSAGE"}`. The types here are shared by the server (`vswitchd`) and the client
//! (`vswitchctl`), so both sides agree on every field.

pub mod client;
pub mod commands;
pub mod metrics;
mod reload;
pub mod server;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::wire::MacAddr;

/// Longest request line the server accepts, newline included.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// A command to the switch.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// The switch at a glance.
    Show {},
    /// Every MAC table entry.
    FdbShow {},
    /// Forget learned entries (of one port, or all); static entries stay.
    FdbFlush {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
    /// Add a static entry.
    FdbAdd {
        port: String,
        mac: MacAddr,
        #[serde(default)]
        vlan: u16,
        /// For a tunnel port: the remote VTEP frames to `mac` go to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<IpAddr>,
    },
    /// Delete an entry, learned or static.
    FdbDel {
        mac: MacAddr,
        #[serde(default)]
        vlan: u16,
    },
    /// The MAC table's counters.
    FdbStats {},
    /// The static and sticky entries, for a config file's `[[fdb]]` tables.
    FdbSave {},
    /// The attached ports.
    PortList {},
    /// Attach a port: `spec` has the `--port` grammar.
    PortAdd { spec: String },
    /// Detach a port (a TAP the switch created is deleted).
    PortDel { name: String },
    /// Change a port's settings at runtime: each item is `key=value` (or several,
    /// comma-separated) of the `--port` grammar.
    PortSet { name: String, settings: Vec<String> },
    /// Every setting of one port, with its carrier and impairment counts.
    PortShow { name: String },
    /// A live capture of `ports` (pcapng): after a one-line reply the connection carries the
    /// capture's bytes until it ends (`count` frames, a port removed, or the client hanging up).
    Capture {
        ports: Vec<String>,
        /// `rx`, `tx` or `both` (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direction: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snaplen: Option<u32>,
        /// Only frames the switch classified into this VLAN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        /// Only frames from or to this MAC.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        /// Only frames of this EtherType (after any VLAN tags).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ethertype: Option<u16>,
    },
    /// Events as they happen: after a one-line reply the connection carries one JSON line per
    /// event (`crate::monitor::Event`) of the `kinds` named (`fdb`, `port`, `security`,
    /// `reload`, `all`; none means all) until the client hangs up.
    Monitor {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kinds: Vec<String>,
    },
    /// Counters of one port or all.
    PortStats {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Every ARP binding the switch has seen.
    ArpShow {},
    /// ARP counters.
    ArpStats {},
    /// Re-read the config file and apply the difference.
    Reload {},
    /// The counters in the Prometheus text format (a string).
    Metrics {},
    /// Mirror what `from` receive and send (or one `direction`) out of `to`.
    MirrorAdd {
        name: String,
        from: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direction: Option<String>,
        /// Only frames in this VLAN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        to: String,
    },
    /// Remove a mirror.
    MirrorDel { name: String },
    /// The mirrors and their counters.
    MirrorList {},
    /// The daemon's version.
    Version {},
}

/// A reply line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Ok(serde_json::Value),
    Error(String),
}

/// One attached port.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub id: u16,
    pub name: String,
    pub kind: String,
    /// `up`, or `link-down` while the port's last send found its link down.
    pub state: String,
    /// MAC table entries on this port.
    pub macs: usize,
    /// VLAN mode: `all`, `access N`, or `trunk LIST [native N]`.
    pub vlan: String,
    /// Kind-specific facts, e.g. whether a TAP was created by the switch.
    pub detail: String,
}

/// The MAC table's size and settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FdbSummary {
    pub entries: usize,
    #[serde(rename = "static")]
    pub static_entries: usize,
    pub max: usize,
    pub ageing: u32,
}

/// The reply to `show`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShowReply {
    pub name: String,
    pub version: String,
    pub uptime: u64,
    pub config: Option<String>,
    pub fdb: FdbSummary,
    pub ports: Vec<PortInfo>,
}

/// One row of `fdb-show`: `age` for learned entries, `static: true` for static ones.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FdbRow {
    pub port: String,
    pub vlan: u16,
    pub mac: MacAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    #[serde(default, rename = "static", skip_serializing_if = "std::ops::Not::not")]
    pub is_static: bool,
    /// Learned on a `sticky` port and kept as a static entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sticky: bool,
    /// Left by MAB on a locked port: waits for `fdb add`, not used for forwarding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// On a tunnel port: the remote VTEP the MAC is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// One row of `arp-show`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ArpRow {
    pub vlan: u16,
    pub ip: std::net::Ipv4Addr,
    pub mac: MacAddr,
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    #[serde(default, rename = "static", skip_serializing_if = "std::ops::Not::not")]
    pub is_static: bool,
}

/// The reply to `arp-stats`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ArpStatsReply {
    pub entries: usize,
    pub learned: u64,
    pub moved: u64,
    pub expired: u64,
    pub evicted: u64,
    /// Requests the switch answered itself.
    pub suppressed: u64,
    /// ARP dropped by the guard.
    pub guarded: u64,
    /// ARP frames that did not parse (forwarded as they were).
    pub malformed: u64,
    /// Whether suppression is on switch-wide.
    pub suppress: bool,
}

/// The reply to `fdb-stats`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FdbStatsReply {
    pub entries: usize,
    pub max: usize,
    #[serde(rename = "static")]
    pub static_entries: usize,
    pub learned: u64,
    pub moved: u64,
    pub expired: u64,
    pub evicted: u64,
}

/// One port's counters, in `port-stats`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PortStatsRow {
    pub name: String,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Dropped frames by reason (every reason, zero or not).
    pub drops: BTreeMap<String, u64>,
    /// Frames live captures of the port wrote to their streams.
    #[serde(default)]
    pub captured: u64,
    /// Frames live captures of the port lost to a reader that fell behind (the switch
    /// forwarded them: these are not drops).
    #[serde(default)]
    pub capture_dropped: u64,
}

/// The reply to `port-show` (and `port-set`, after the change).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PortShowReply {
    pub name: String,
    pub kind: String,
    pub state: String,
    /// `switch` when `link` drives the port's carrier, else why it cannot.
    pub carrier: String,
    /// Every setting by key, its value as a spec writes it.
    pub settings: BTreeMap<String, String>,
    /// What each direction's impairment did.
    pub impairment: ImpairmentReply,
}

/// Frames the impairment of each direction delayed, lost, duplicated, ...
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ImpairmentReply {
    pub rx: crate::datapath::impair::ImpairCounts,
    pub tx: crate::datapath::impair::ImpairCounts,
}

/// One mirror in `mirror-list`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MirrorRow {
    pub name: String,
    pub from: Vec<String>,
    /// `rx`, `tx` or `both`.
    pub direction: String,
    /// Only frames in this VLAN (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub to: String,
    /// Copies sent out of `to`.
    pub frames: u64,
    /// Copies lost: the mirror's queue was full or `to` could not take them.
    pub dropped: u64,
}

/// The reply to `reload`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadReply {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Ports whose settings changed; they kept forwarding (a new VLAN mode forgot their
    /// learned MACs).
    pub reconfigured: Vec<String>,
    /// Ports whose kind or target changed: closed and opened again.
    #[serde(default)]
    pub replaced: Vec<String>,
    pub unchanged: Vec<String>,
    /// Ports the file asks for that could not be opened (after their old spec was closed).
    pub failed: Vec<String>,
    /// Settings that changed in the file but apply only at the next start.
    pub needs_restart: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shape() {
        let r: Request = serde_json::from_str(r#"{"cmd":"fdb-show"}"#).unwrap();
        assert_eq!(r, Request::FdbShow {});
        let r: Request =
            serde_json::from_str(r#"{"cmd":"fdb-add","port":"tap0","mac":"02:00:00:00:00:01"}"#)
                .unwrap();
        assert_eq!(
            r,
            Request::FdbAdd {
                port: "tap0".into(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
                vlan: 0,
                remote: None,
            }
        );
        let line = serde_json::to_string(&Request::FdbFlush { port: None }).unwrap();
        assert_eq!(line, r#"{"cmd":"fdb-flush"}"#);
        let line = serde_json::to_string(&Request::PortStats {
            name: Some("tap1".into()),
        })
        .unwrap();
        assert_eq!(line, r#"{"cmd":"port-stats","name":"tap1"}"#);
    }

    #[test]
    fn unknown_commands_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"self-destruct"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"show","extra":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"port-del"}"#).is_err());
        let e = serde_json::from_str::<Request>(r#"{"cmd":"fdb-del","mac":"zz"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid MAC"), "{e}");
    }

    #[test]
    fn replies_are_ok_or_error() {
        let ok = serde_json::to_string(&Reply::Ok(serde_json::json!({"removed": 2}))).unwrap();
        assert_eq!(ok, r#"{"ok":{"removed":2}}"#);
        let err = serde_json::to_string(&Reply::Error("no such port".into())).unwrap();
        assert_eq!(err, r#"{"error":"no such port"}"#);
    }

    #[test]
    fn fdb_rows_show_age_or_static() {
        let learned = FdbRow {
            port: "tap0".into(),
            vlan: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            age: Some(12),
            is_static: false,
            sticky: false,
            locked: false,
            remote: None,
        };
        assert_eq!(
            serde_json::to_string(&learned).unwrap(),
            r#"{"port":"tap0","vlan":0,"mac":"02:00:00:00:00:01","age":12}"#
        );
        let fixed = FdbRow {
            age: None,
            is_static: true,
            ..learned
        };
        assert_eq!(
            serde_json::to_string(&fixed).unwrap(),
            r#"{"port":"tap0","vlan":0,"mac":"02:00:00:00:00:01","static":true}"#
        );
    }
}
