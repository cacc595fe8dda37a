//! Events for `vswitchctl monitor`: what changed in the switch, one line each, as it happens —
//! MAC entries learned, moved, aged, evicted, added, deleted and flushed; ports attached,
//! removed and changing state; what port security and loop protection did; reloads.
//!
//! Nothing is recorded while nobody watches ([`Events::set_on`]). While someone does, the
//! datapath and the switch push events here and the loop hands them to each watching client
//! once per turn; the queue between two turns is bounded, and what does not fit is counted and
//! reported as a [`What::Lost`] event.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Most events held between two turns of the loop; past it they are counted as lost.
const QUEUE_CAP: usize = 65_536;

/// One event: when, and what.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: f64,
    #[serde(flatten)]
    pub what: What,
}

impl Event {
    /// The event's time of day, UTC, as `HH:MM:SS.mmm`.
    pub fn time_of_day(&self) -> String {
        let ms = (self.time * 1000.0).round() as u64 % 86_400_000;
        let (s, ms) = (ms / 1000, ms % 1000);
        format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// What happened. Ports are named; MACs are lowercase with colons, as in `fdb show`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum What {
    /// A MAC was learned on a port (`locked`: a MAB entry waiting for authorisation).
    Learned {
        port: String,
        vlan: u16,
        mac: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        locked: bool,
    },
    /// A MAC moved from one port to another.
    Moved {
        vlan: u16,
        mac: String,
        from: String,
        to: String,
    },
    /// An entry was not seen for the ageing time.
    Aged {
        port: String,
        vlan: u16,
        mac: String,
    },
    /// An entry went to make room in a full table.
    Evicted {
        port: String,
        vlan: u16,
        mac: String,
    },
    /// A static entry was added (`sticky`: learned on a sticky port).
    Added {
        port: String,
        vlan: u16,
        mac: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sticky: bool,
    },
    /// An entry was deleted (`fdb del`, reload).
    Deleted {
        port: String,
        vlan: u16,
        mac: String,
    },
    /// The learned entries of a port, or of every port (`port` absent), were flushed.
    Flushed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        entries: usize,
    },
    /// A port was attached.
    Attached { port: String, kind: String },
    /// A port was removed, with its MAC entries.
    Removed { port: String, reason: String },
    /// A port's state changed: `up`, `admin-down`, `rx-down`, `tx-down`, `link-down`,
    /// `waiting` (a socket port without its peer), as `port list` shows it.
    Link { port: String, state: String },
    /// Port security or loop protection acted (`alert`: `mac-flap`, `mac-limit`, `locked`,
    /// `storm-blocked`, `arp-guard`); `count` is how many times since the last such event on
    /// the port (they are reported at most once a second per port).
    Security {
        port: String,
        alert: String,
        detail: String,
        count: u64,
    },
    /// The config file was reloaded.
    Reloaded { summary: String },
    /// Events this client did not get: the switch's queue or this client's filled up.
    Lost { events: u64 },
}

/// Which events a monitor client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fdb,
    Port,
    Security,
    Reload,
}

impl Kind {
    pub const NAMES: [&str; 4] = ["fdb", "port", "security", "reload"];

    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "fdb" => Kind::Fdb,
            "port" => Kind::Port,
            "security" => Kind::Security,
            "reload" => Kind::Reload,
            _ => return None,
        })
    }
}

impl What {
    /// The kind a client asks for to see this event; `None` for [`What::Lost`], which every
    /// client sees.
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            What::Learned { .. }
            | What::Moved { .. }
            | What::Aged { .. }
            | What::Evicted { .. }
            | What::Added { .. }
            | What::Deleted { .. }
            | What::Flushed { .. } => Kind::Fdb,
            What::Attached { .. } | What::Removed { .. } | What::Link { .. } => Kind::Port,
            What::Security { .. } => Kind::Security,
            What::Reloaded { .. } => Kind::Reload,
            What::Lost { .. } => return None,
        })
    }
}

/// One line per event, in the spirit of `bridge monitor`: the event, then its subject.
impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Learned {
                port,
                vlan,
                mac,
                locked,
            } => {
                let locked = if *locked { " (locked, waiting)" } else { "" };
                write!(f, "learned  {mac} vlan {vlan} port {port}{locked}")
            }
            What::Moved {
                vlan,
                mac,
                from,
                to,
            } => write!(f, "moved    {mac} vlan {vlan} port {to} (from {from})"),
            What::Aged { port, vlan, mac } => write!(f, "aged     {mac} vlan {vlan} port {port}"),
            What::Evicted { port, vlan, mac } => {
                write!(f, "evicted  {mac} vlan {vlan} port {port} (table full)")
            }
            What::Added {
                port,
                vlan,
                mac,
                sticky,
            } => {
                let how = if *sticky { "sticky" } else { "static" };
                write!(f, "added    {mac} vlan {vlan} port {port} {how}")
            }
            What::Deleted { port, vlan, mac } => {
                write!(f, "deleted  {mac} vlan {vlan} port {port}")
            }
            What::Flushed { port, entries } => match port {
                Some(port) => write!(f, "flushed  {entries} entries of port {port}"),
                None => write!(f, "flushed  {entries} entries of every port"),
            },
            What::Attached { port, kind } => write!(f, "attached port {port} ({kind})"),
            What::Removed { port, reason } => write!(f, "removed  port {port}: {reason}"),
            What::Link { port, state } => write!(f, "link     port {port} {state}"),
            What::Security {
                port,
                alert,
                detail,
                count,
            } => {
                write!(f, "security port {port} {alert}: {detail}")?;
                if *count > 1 {
                    write!(f, " ({count} times)")?;
                }
                Ok(())
            }
            What::Reloaded { summary } => write!(f, "reloaded {summary}"),
            What::Lost { events } => {
                write!(f, "lost     {events} events (the monitor fell behind)")
            }
        }
    }
}

/// The events of the current turn, while someone watches.
#[derive(Debug, Default)]
pub struct Events {
    on: bool,
    queue: Vec<Event>,
    lost: u64,
}

impl Events {
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Starts or stops recording; stopping forgets what was queued.
    pub fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.queue.clear();
            self.lost = 0;
        }
    }

    /// Records `what` now, if someone watches.
    pub fn push(&mut self, what: What) {
        if !self.on {
            return;
        }
        if self.queue.len() >= QUEUE_CAP {
            self.lost += 1;
            return;
        }
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.queue.push(Event { time, what });
    }

    /// Counts events lost before they reached this queue.
    pub fn add_lost(&mut self, lost: u64) {
        if self.on {
            self.lost += lost;
        }
    }

    /// Hands the queued events to `each`, oldest first, with a [`What::Lost`] event first if
    /// some were lost.
    pub fn drain(&mut self, mut each: impl FnMut(&Event)) {
        if self.lost > 0 {
            let lost = std::mem::take(&mut self.lost);
            let mut event = Event {
                time: 0.0,
                what: What::Lost { events: lost },
            };
            if let Some(first) = self.queue.first() {
                event.time = first.time;
            }
            each(&event);
        }
        self.queue.iter().for_each(&mut each);
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_recorded_while_nobody_watches() {
        let mut events = Events::default();
        events.push(What::Reloaded {
            summary: "x".into(),
        });
        let mut seen = 0;
        events.drain(|_| seen += 1);
        assert_eq!(seen, 0);
    }

    #[test]
    fn events_print_as_lines_and_round_trip_through_json() {
        let what = What::Moved {
            vlan: 10,
            mac: "02:00:00:00:00:01".into(),
            from: "tap1".into(),
            to: "tap2".into(),
        };
        assert_eq!(
            what.to_string(),
            "moved    02:00:00:00:00:01 vlan 10 port tap2 (from tap1)"
        );
        let event = Event { time: 1.5, what };
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(
            line,
            r#"{"time":1.5,"event":"moved","vlan":10,"mac":"02:00:00:00:00:01","from":"tap1","to":"tap2"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
        let at = Event {
            time: 1_796_093_023.908,
            ..event.clone()
        };
        assert_eq!(at.time_of_day(), "02:43:43.908");
        assert_eq!(event.what.kind(), Some(Kind::Fdb));
    }

    #[test]
    fn a_full_queue_counts_what_it_drops_and_says_so_first() {
        let mut events = Events::default();
        events.set_on(true);
        for _ in 0..QUEUE_CAP + 3 {
            events.push(What::Link {
                port: "p".into(),
                state: "up".into(),
            });
        }
        let mut seen = Vec::new();
        events.drain(|e| seen.push(e.what.clone()));
        assert_eq!(seen.len(), QUEUE_CAP + 1);
        assert_eq!(seen[0], What::Lost { events: 3 });
        let mut again = 0;
        events.drain(|_| again += 1);
        assert_eq!(again, 0, "drained");
    }
}
