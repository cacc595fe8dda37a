//! Port VLAN modes, as Open vSwitch has them: which VLAN an arriving frame belongs to, and how
//! (if at all) a frame of a VLAN leaves a port.
//!
//! - [`VlanMode::All`] (no VLAN keys): every VLAN passes tagged, untagged frames are VLAN 0. A
//!   switch without VLAN configuration passes tagged frames through untouched and learns per tag.
//! - [`VlanMode::Access`] (`vlan=N`): untagged frames (or priority-tagged, VID 0) are VLAN N and
//!   leave untagged; tagged frames are dropped.
//! - [`VlanMode::Trunk`] (`trunk=LIST[,native=N]`): the listed VLANs pass tagged; untagged frames
//!   are dropped unless a native VLAN is set, which they then belong to and which leaves
//!   untagged (it is also accepted tagged).

use std::fmt;
use std::str::FromStr;

use crate::wire::vlan::MAX_VID;

/// A set of VLAN ids (0 to 4095), one bit each.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet([u64; 64]);

impl VlanSet {
    pub fn new() -> VlanSet {
        VlanSet([0; 64])
    }

    pub fn insert(&mut self, vid: u16) {
        let vid = usize::from(vid & 0x0fff);
        self.0[vid / 64] |= 1 << (vid % 64);
    }

    pub fn contains(&self, vid: u16) -> bool {
        let vid = usize::from(vid & 0x0fff);
        self.0[vid / 64] & (1 << (vid % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The ids in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=4095u16).filter(|&v| self.contains(v))
    }
}

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet::new()
    }
}

/// A VLAN list that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VlanListError {
    #[error("empty VLAN list")]
    Empty,
    #[error("{0:?} is not a VLAN id (1 to 4094)")]
    BadId(String),
    #[error("range {0:?} runs backwards")]
    Backwards(String),
}

/// Parses one VLAN id, 1 to 4094.
pub fn parse_vid(s: &str) -> Result<u16, VlanListError> {
    match s.trim().parse::<u16>() {
        Ok(v) if (1..=MAX_VID).contains(&v) => Ok(v),
        _ => Err(VlanListError::BadId(s.to_owned())),
    }
}

impl FromStr for VlanSet {
    type Err = VlanListError;

    /// `10,20,30-40`: ids and inclusive ranges, separated by commas.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = VlanSet::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse_vid(lo)?, parse_vid(hi)?);
                    if lo > hi {
                        return Err(VlanListError::Backwards(item.to_owned()));
                    }
                    (lo..=hi).for_each(|v| set.insert(v));
                }
                None => set.insert(parse_vid(item)?),
            }
        }
        if set.is_empty() {
            return Err(VlanListError::Empty);
        }
        Ok(set)
    }
}

impl fmt::Display for VlanSet {
    /// Compact ranges: `10,20,30-40`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut ids = self.iter().peekable();
        while let Some(lo) = ids.next() {
            let mut hi = lo;
            while ids.peek() == Some(&(hi + 1)) {
                hi = ids.next().unwrap_or(hi);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet({self})")
    }
}

/// How a port treats VLANs. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum VlanMode {
    #[default]
    All,
    Access(u16),
    Trunk {
        vlans: Box<VlanSet>,
        native: Option<u16>,
    },
}

/// How a frame leaves a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    Untagged,
    Tagged,
}

impl VlanMode {
    /// The VLAN a frame arriving with VLAN id `vid` (`None` untagged; 0 is a priority tag and
    /// counts as untagged) belongs to, or `None` if the port does not accept it.
    pub fn ingress(&self, vid: Option<u16>) -> Option<u16> {
        let vid = vid.filter(|&v| v != 0);
        if vid.is_some_and(|v| v > MAX_VID) {
            return None;
        }
        match (self, vid) {
            (VlanMode::All, None) => Some(0),
            (VlanMode::All, Some(v)) => Some(v),
            (VlanMode::Access(n), None) => Some(*n),
            (VlanMode::Access(_), Some(_)) => None,
            (VlanMode::Trunk { native, .. }, None) => *native,
            (VlanMode::Trunk { vlans, native }, Some(v)) => {
                (vlans.contains(v) || *native == Some(v)).then_some(v)
            }
        }
    }

    /// How a frame of `vlan` leaves this port, or `None` if the port is not in that VLAN.
    pub fn egress(&self, vlan: u16) -> Option<Egress> {
        match self {
            VlanMode::All if vlan == 0 => Some(Egress::Untagged),
            VlanMode::All => Some(Egress::Tagged),
            VlanMode::Access(n) => (*n == vlan).then_some(Egress::Untagged),
            VlanMode::Trunk { native, .. } if *native == Some(vlan) => Some(Egress::Untagged),
            VlanMode::Trunk { vlans, .. } => {
                (vlan != 0 && vlans.contains(vlan)).then_some(Egress::Tagged)
            }
        }
    }
}

impl fmt::Display for VlanMode {
    /// As `show` prints it: `all`, `access 10`, `trunk 10,20 native 30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VlanMode::All => f.write_str("all"),
            VlanMode::Access(0) => f.write_str("untagged"),
            VlanMode::Access(n) => write!(f, "access {n}"),
            VlanMode::Trunk { vlans, native } => {
                write!(f, "trunk {vlans}")?;
                if let Some(n) = native {
                    write!(f, " native {n}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(list: &str, native: Option<u16>) -> VlanMode {
        VlanMode::Trunk {
            vlans: Box::new(list.parse().unwrap()),
            native,
        }
    }

    #[test]
    fn lists_parse_and_print_compactly() {
        let set: VlanSet = "10,20,30-40, 41".parse().unwrap();
        assert!(set.contains(10) && set.contains(35) && set.contains(41));
        assert!(!set.contains(11) && !set.contains(0));
        assert_eq!(set.to_string(), "10,20,30-41");
        assert_eq!("4094".parse::<VlanSet>().unwrap().to_string(), "4094");
        assert_eq!("".parse::<VlanSet>(), Err(VlanListError::Empty));
        assert_eq!(" , ".parse::<VlanSet>(), Err(VlanListError::Empty));
        for bad in ["0", "4095", "x", "10-", "-5", "1.5"] {
            assert!(bad.parse::<VlanSet>().is_err(), "{bad}");
        }
        assert!(matches!(
            "40-30".parse::<VlanSet>(),
            Err(VlanListError::Backwards(_))
        ));
    }

    #[test]
    fn all_passes_everything_and_untagged_is_vlan_0() {
        let m = VlanMode::All;
        assert_eq!(m.ingress(None), Some(0));
        assert_eq!(m.ingress(Some(0)), Some(0));
        assert_eq!(m.ingress(Some(42)), Some(42));
        assert_eq!(m.ingress(Some(4095)), None);
        assert_eq!(m.egress(0), Some(Egress::Untagged));
        assert_eq!(m.egress(42), Some(Egress::Tagged));
    }

    #[test]
    fn access_takes_untagged_and_priority_tagged_only() {
        let m = VlanMode::Access(10);
        assert_eq!(m.ingress(None), Some(10));
        assert_eq!(m.ingress(Some(0)), Some(10));
        assert_eq!(m.ingress(Some(10)), None);
        assert_eq!(m.ingress(Some(20)), None);
        assert_eq!(m.egress(10), Some(Egress::Untagged));
        assert_eq!(m.egress(20), None);
        assert_eq!(m.egress(0), None);
    }

    #[test]
    fn trunk_takes_its_list_and_optionally_a_native_vlan() {
        let m = trunk("10,20", None);
        assert_eq!(m.ingress(None), None);
        assert_eq!(m.ingress(Some(10)), Some(10));
        assert_eq!(m.ingress(Some(30)), None);
        assert_eq!(m.egress(20), Some(Egress::Tagged));
        assert_eq!(m.egress(30), None);
        assert_eq!(m.egress(0), None);

        let m = trunk("20", Some(10));
        assert_eq!(m.ingress(None), Some(10));
        assert_eq!(m.ingress(Some(0)), Some(10));
        assert_eq!(m.ingress(Some(10)), Some(10), "native also accepted tagged");
        assert_eq!(m.egress(10), Some(Egress::Untagged));
        assert_eq!(m.egress(20), Some(Egress::Tagged));
    }

    #[test]
    fn modes_print_as_show_lists_them() {
        assert_eq!(VlanMode::All.to_string(), "all");
        assert_eq!(VlanMode::Access(7).to_string(), "access 7");
        assert_eq!(
            trunk("10,20,30-40", Some(5)).to_string(),
            "trunk 10,20,30-40 native 5"
        );
    }
}
