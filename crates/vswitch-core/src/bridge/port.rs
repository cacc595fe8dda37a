//! A port's settings as the core uses them: its VLAN mode, ARP options, forwarding flags (the
//! Linux bridge's `bridge link set` flags), which IEEE 802.1D link-local groups it forwards, and
//! its administrative link state.

use std::fmt;
use std::str::FromStr;

use super::vlan::VlanMode;

/// A port's settings in the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortConfig {
    pub vlan: VlanMode,
    /// ARP suppression on this port: `None` follows the switch-wide setting.
    pub arp_suppress: Option<bool>,
    /// Drop ARP from this port that claims an address another MAC on another port holds.
    pub arp_guard: bool,
    pub flags: PortFlags,
    /// The link-local groups (01:80:c2:00:00:0X) this port forwards, in and out.
    pub link_local: LinkLocal,
    pub link: LinkState,
    pub security: Security,
    /// The switch's own port (`--ip`): ARP requests for its addresses go to it, never answered
    /// on its behalf, so its stack learns who asked and can reply to their pings at once.
    pub local: bool,
    /// A mirror's output: it sends only mirrored copies, takes no frame in and is never
    /// flooded to.
    pub mirror_dest: bool,
}

impl PortConfig {
    /// Whether a learned entry for a MAC in `vlan` may sit on this port, which holds `entries`
    /// entries now: it is in the VLAN, takes frames, learns, and neither its lock, its sticky
    /// list nor its `max-macs` keeps the MAC out. MAC-move damping pins only to such a port.
    pub fn can_hold_learned(&self, vlan: u16, entries: usize) -> bool {
        let sec = &self.security;
        self.vlan.egress(vlan).is_some()
            && self.link.rx()
            && self.flags.learning
            && !self.mirror_dest
            && !sec.locked
            && !sec.sticky
            && sec.max_macs.is_none_or(|max| entries < max as usize)
    }
}

impl From<VlanMode> for PortConfig {
    fn from(vlan: VlanMode) -> Self {
        PortConfig {
            vlan,
            ..PortConfig::default()
        }
    }
}

/// What a port takes part in, named as the Linux bridge names its port flags. The defaults are
/// a plain switch port's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortFlags {
    /// Sources of frames from this port are learned.
    pub learning: bool,
    /// Unknown unicast is flooded out of this port.
    pub flood: bool,
    /// Multicast (not broadcast) is flooded out of this port.
    pub mcast_flood: bool,
    /// Broadcast is flooded out of this port.
    pub bcast_flood: bool,
    /// Frames from this port reach only ports that are not isolated (a private VLAN's
    /// isolated port).
    pub isolated: bool,
    /// A frame may leave by this port when it came in by it (reflective relay, VEPA).
    pub hairpin: bool,
}

impl Default for PortFlags {
    fn default() -> Self {
        PortFlags {
            learning: true,
            flood: true,
            mcast_flood: true,
            bcast_flood: true,
            isolated: false,
            hairpin: false,
        }
    }
}

/// Port security and storm control: what a port lets in from its host besides its VLANs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// Only sources with a static entry on this port pass (`locked`).
    pub locked: bool,
    /// On a locked port, an unknown source leaves a locked entry for an operator to authorise.
    pub mab: bool,
    /// Most MAC entries on this port (static ones included); new sources past it are dropped.
    pub max_macs: Option<u32>,
    /// Sources learned on this port become sticky (static) entries.
    pub sticky: bool,
    /// Frames per second let in, by kind; past it they are dropped (`storm`).
    pub storm: StormLimits,
    pub storm_action: StormAction,
}

/// Ingress limits in frames per second for each kind of flooded traffic (`None`: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormLimits {
    pub broadcast: Option<u32>,
    pub multicast: Option<u32>,
    pub unknown: Option<u32>,
}

/// What a port does when a storm limit is passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StormAction {
    /// Drop the frames past the limit.
    #[default]
    Drop,
    /// Stop taking frames from the port (link `rx-down`) until an operator sets `link=up`.
    Block,
}

impl StormAction {
    pub fn name(self) -> &'static str {
        match self {
            StormAction::Drop => "drop",
            StormAction::Block => "block",
        }
    }
}

/// What kind of destination a flooded frame has: each port's flags say which kinds it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodKind {
    /// Unicast to a MAC the table does not know.
    Unknown,
    Multicast,
    Broadcast,
    /// An IEEE 802.1D reserved group, 01:80:c2:00:00:0X with this last byte.
    LinkLocal(u8),
}

impl FloodKind {
    /// The kind as logs say it.
    pub fn name(self) -> &'static str {
        match self {
            FloodKind::Unknown => "unknown-unicast",
            FloodKind::Multicast => "multicast",
            FloodKind::Broadcast => "broadcast",
            FloodKind::LinkLocal(_) => "link-local",
        }
    }
}

impl PortFlags {
    /// Whether this port takes a flooded frame of `kind`, judged by its flags alone.
    pub fn floods(&self, kind: FloodKind) -> bool {
        match kind {
            FloodKind::Unknown => self.flood,
            FloodKind::Multicast | FloodKind::LinkLocal(_) => self.mcast_flood,
            FloodKind::Broadcast => self.bcast_flood,
        }
    }
}

/// A set of IEEE 802.1D reserved group addresses (01:80:c2:00:00:00 to 0f), by last byte.
/// Pause (0x01) is never in it: MAC control frames are for the link, never forwarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkLocal(u16);

/// The link-local groups users know by name, with their last byte.
pub const LINK_LOCAL_NAMES: [(&str, u8); 6] = [
    ("stp", 0x00),
    ("lacp", 0x02),
    ("8021x", 0x03),
    ("pb-stp", 0x08),
    ("mvrp", 0x0d),
    ("lldp", 0x0e),
];

const PAUSE: u8 = 0x01;

impl LinkLocal {
    /// None: every reserved group is dropped (a standard bridge's behaviour).
    pub const NONE: LinkLocal = LinkLocal(0);
    /// Every group but pause.
    pub const ALL: LinkLocal = LinkLocal(!(1 << PAUSE));

    pub fn contains(self, last: u8) -> bool {
        last < 16 && self.0 & (1 << last) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Why a link-local list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkLocalError {
    #[error("pause frames (0x01) are never forwarded")]
    Pause,
    #[error(
        "unknown group {0:?} (use none, all, or a list of stp, lacp, 8021x, pb-stp, mvrp, lldp \
         and 0x00-0x0f)"
    )]
    Unknown(String),
}

impl FromStr for LinkLocal {
    type Err = LinkLocalError;

    /// `none`, `all`, or a comma-separated list of names and last bytes (`0x0e`, `0x04-0x07`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => return Ok(LinkLocal::NONE),
            "all" => return Ok(LinkLocal::ALL),
            _ => {}
        }
        let byte = |t: &str| {
            t.strip_prefix("0x")
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|&b| b < 16)
        };
        let mut set = 0u16;
        for item in s.split(',') {
            let unknown = || LinkLocalError::Unknown(item.to_owned());
            let (lo, hi) = if let Some(&(_, b)) = LINK_LOCAL_NAMES.iter().find(|(n, _)| *n == item)
            {
                (b, b)
            } else if let Some((a, b)) = item.split_once('-') {
                let (a, b) = (byte(a).ok_or_else(unknown)?, byte(b).ok_or_else(unknown)?);
                if a > b {
                    return Err(unknown());
                }
                (a, b)
            } else {
                let b = byte(item).ok_or_else(unknown)?;
                (b, b)
            };
            if (lo..=hi).contains(&PAUSE) {
                return Err(LinkLocalError::Pause);
            }
            for b in lo..=hi {
                set |= 1 << b;
            }
        }
        Ok(LinkLocal(set))
    }
}

impl fmt::Display for LinkLocal {
    /// `none`, `all`, or the groups by name where they have one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == LinkLocal::NONE {
            return f.write_str("none");
        }
        if *self == LinkLocal::ALL {
            return f.write_str("all");
        }
        let items: Vec<String> = (0u8..16)
            .filter(|&b| self.contains(b))
            .map(|b| match LINK_LOCAL_NAMES.iter().find(|&&(_, v)| v == b) {
                Some((name, _)) => (*name).to_owned(),
                None => format!("0x{b:02x}"),
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

/// A port's administrative link state; `rx` is frames from the port's host, `tx` frames to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    #[default]
    Up,
    Down,
    /// Frames from the host are dropped; frames to it pass (a unidirectional failure).
    RxDown,
    /// Frames to the host are dropped; frames from it pass.
    TxDown,
}

impl LinkState {
    pub const NAMES: [(&str, LinkState); 4] = [
        ("up", LinkState::Up),
        ("down", LinkState::Down),
        ("rx-down", LinkState::RxDown),
        ("tx-down", LinkState::TxDown),
    ];

    /// Frames from the port's host are taken.
    pub fn rx(self) -> bool {
        matches!(self, LinkState::Up | LinkState::TxDown)
    }

    /// Frames to the port's host are sent.
    pub fn tx(self) -> bool {
        matches!(self, LinkState::Up | LinkState::RxDown)
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::RxDown => "rx-down",
            LinkState::TxDown => "tx-down",
        }
    }
}

impl FromStr for LinkState {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LinkState::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|&(_, state)| state)
            .ok_or(())
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_lists_parse_and_print_back() {
        for text in [
            "none",
            "all",
            "lldp",
            "stp,lacp,lldp",
            "0x04,lldp",
            "8021x,0x0f",
        ] {
            let set: LinkLocal = text.parse().unwrap();
            assert_eq!(set.to_string(), text);
        }
        let range: LinkLocal = "0x04-0x07".parse().unwrap();
        assert_eq!(range.to_string(), "0x04,0x05,0x06,0x07");
        assert!(LinkLocal::ALL.contains(0x0e) && LinkLocal::ALL.contains(0x02));
        assert!(!LinkLocal::ALL.contains(0x01), "pause is never in it");
        assert!(!LinkLocal::ALL.contains(0x10));
        assert_eq!("0x01".parse::<LinkLocal>(), Err(LinkLocalError::Pause));
        assert_eq!("0x00-0x03".parse::<LinkLocal>(), Err(LinkLocalError::Pause));
        for bad in ["", "lldp,", "0x10", "0x", "ldp", "0x07-0x04", "14"] {
            assert!(bad.parse::<LinkLocal>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_states_say_which_way_frames_pass() {
        let ways = |s: LinkState| (s.rx(), s.tx());
        assert_eq!(ways(LinkState::Up), (true, true));
        assert_eq!(ways(LinkState::Down), (false, false));
        assert_eq!(ways(LinkState::RxDown), (false, true));
        assert_eq!(ways(LinkState::TxDown), (true, false));
        for (name, state) in LinkState::NAMES {
            assert_eq!(name.parse::<LinkState>(), Ok(state));
            assert_eq!(state.to_string(), name);
        }
    }
}
