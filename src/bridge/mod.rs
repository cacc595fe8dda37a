//! The forwarding core: given a frame, the port it came in on and the time, decide where it goes.
//!
//! Nothing here reads a clock or touches a file descriptor. The reactor passes every frame and
//! the current time in and carries out the [`Verdict`]; that keeps the switch's behaviour
//! testable, benchmarkable and fuzzable without root or real ports.

pub mod fdb;
pub mod stats;
pub mod vlan;

use std::fmt;
use std::time::Duration;

use crate::wire::vlan::{self as tag, TPID_8021Q, VLAN_TAG_LEN};
use crate::wire::{ETHERNET_HEADER_LEN, EthernetFrame, MacAddr};
pub use fdb::{Fdb, FdbCounters, FdbEntry, Learned, TableFull};
pub use stats::{DropReason, PortStats};
pub use vlan::{Egress, VlanMode, VlanSet};

/// A port's number inside the switch. Numbers of removed ports are reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PortId(pub u16);

impl PortId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The learning table's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Most MAC entries held at once.
    pub mac_table_size: usize,
    /// Seconds an entry lives without traffic from its MAC.
    pub mac_ageing: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            mac_table_size: 8192,
            mac_ageing: 300,
        }
    }
}

/// What to do with a frame, and the VLAN it belongs to (0 for untagged frames on ports
/// without VLAN configuration). How it leaves each port is [`Bridge::egress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to this one port.
    Forward { port: PortId, vlan: u16 },
    /// Send it to every port in [`Bridge::flood_targets`].
    Flood { vlan: u16 },
    /// Do not send it anywhere; the reason is already counted on the ingress port.
    Drop(DropReason),
}

#[derive(Debug)]
struct PortState {
    stats: PortStats,
    vlan: VlanMode,
}

/// The switch's state: its ports, their counters and VLAN modes, and the learning table.
#[derive(Debug)]
pub struct Bridge {
    fdb: Fdb,
    ports: Vec<Option<PortState>>,
}

impl Bridge {
    pub fn new(config: BridgeConfig) -> Bridge {
        Bridge {
            fdb: Fdb::new(config.mac_table_size, config.mac_ageing),
            ports: Vec::new(),
        }
    }

    /// Attaches a new port that carries every VLAN ([`VlanMode::All`]) and returns its number
    /// (the lowest free one).
    ///
    /// # Panics
    /// When 65536 ports are attached at once.
    pub fn add_port(&mut self) -> PortId {
        self.add_port_with(VlanMode::All)
    }

    /// Attaches a new port in VLAN mode `vlan`.
    ///
    /// # Panics
    /// When 65536 ports are attached at once.
    pub fn add_port_with(&mut self, vlan: VlanMode) -> PortId {
        let index = match self.ports.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.ports.push(None);
                self.ports.len() - 1
            }
        };
        self.ports[index] = Some(PortState {
            stats: PortStats::default(),
            vlan,
        });
        PortId(u16::try_from(index).expect("at most 65536 ports"))
    }

    /// Detaches a port: its MAC entries go with it. Returns its final counters.
    pub fn remove_port(&mut self, port: PortId) -> Option<PortStats> {
        let state = self.ports.get_mut(port.index())?.take()?;
        self.fdb.remove_port(port);
        Some(state.stats)
    }

    /// The port's VLAN mode.
    pub fn vlan_mode(&self, port: PortId) -> Option<&VlanMode> {
        Some(&self.state(port)?.vlan)
    }

    /// Changes a port's VLAN mode. Its learned entries are forgotten (they may belong to VLANs
    /// it no longer carries); static ones stay. Returns whether the port exists.
    pub fn set_vlan_mode(&mut self, port: PortId, vlan: VlanMode) -> bool {
        let Some(state) = self.state_mut(port) else {
            return false;
        };
        state.vlan = vlan;
        self.fdb.flush(Some(port));
        true
    }

    fn state(&self, port: PortId) -> Option<&PortState> {
        self.ports.get(port.index())?.as_ref()
    }

    fn state_mut(&mut self, port: PortId) -> Option<&mut PortState> {
        self.ports.get_mut(port.index())?.as_mut()
    }

    /// Attached ports in increasing order.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| PortId(i as u16))
    }

    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    pub fn port_stats(&self, port: PortId) -> Option<&PortStats> {
        Some(&self.state(port)?.stats)
    }

    /// Decides the fate of `frame` (an Ethernet frame, without virtio-net header) that arrived
    /// on `port` at `now`, learning its source on the way.
    pub fn ingress(&mut self, port: PortId, frame: &[u8], now: Duration) -> Verdict {
        let Some(state) = self.ports.get_mut(port.index()).and_then(Option::as_mut) else {
            return Verdict::Drop(DropReason::PortGone);
        };
        state.stats.count_rx(frame.len());
        let verdict = decide(&mut self.fdb, &self.ports, port, frame, now);
        if let Verdict::Drop(reason) = verdict
            && let Some(state) = self.state_mut(port)
        {
            state.stats.count_drop(reason);
        }
        verdict
    }

    /// How a frame of `vlan` leaves `port`, or `None` if it must not.
    pub fn egress(&self, port: PortId, vlan: u16) -> Option<Egress> {
        self.state(port)?.vlan.egress(vlan)
    }

    /// Where a flooded frame of `vlan` from `ingress` goes: every other port in that VLAN.
    pub fn flood_targets(&self, ingress: PortId, vlan: u16) -> impl Iterator<Item = PortId> + '_ {
        self.ports()
            .filter(move |&p| p != ingress && self.egress(p, vlan).is_some())
    }

    /// The learning table's current settings.
    pub fn config(&self) -> BridgeConfig {
        BridgeConfig {
            mac_table_size: self.fdb.capacity(),
            mac_ageing: self.fdb.ageing(),
        }
    }

    /// Applies new table settings to the running table (shrinking evicts fairly).
    pub fn set_config(&mut self, config: BridgeConfig) {
        self.fdb.set_ageing(config.mac_ageing);
        self.fdb.set_capacity(config.mac_table_size);
    }

    /// Adds a static entry: frames to `mac` in `vlan` always go to `port`, which must be
    /// attached; `mac` must be an individual (unicast), non-zero address.
    pub fn add_static(&mut self, port: PortId, vlan: u16, mac: MacAddr) -> Result<(), StaticError> {
        if self.port_stats(port).is_none() {
            return Err(StaticError::NoSuchPort);
        }
        if !mac.is_learnable_source() {
            return Err(StaticError::NotUnicast(mac));
        }
        self.fdb.add_static(vlan, mac, port)?;
        Ok(())
    }

    /// Removes the entry (learned or static) for `mac` in `vlan`; whether there was one.
    pub fn remove_mac(&mut self, vlan: u16, mac: MacAddr) -> bool {
        self.fdb.remove_mac(vlan, mac)
    }

    /// Forgets the learned entries of one port, or of all; static entries stay.
    pub fn flush(&mut self, port: Option<PortId>) -> usize {
        self.fdb.flush(port)
    }

    /// Periodic housekeeping: expires MAC entries past their ageing time. Returns how many went.
    pub fn tick(&mut self, now: Duration) -> usize {
        self.fdb.expire(now)
    }

    /// Counts a frame of `bytes` sent on `port`.
    pub fn count_tx(&mut self, port: PortId, bytes: usize) {
        if let Some(state) = self.state_mut(port) {
            state.stats.count_tx(bytes);
        }
    }

    /// Counts a frame that could not be sent on `port`.
    pub fn count_drop(&mut self, port: PortId, reason: DropReason) {
        if let Some(state) = self.state_mut(port) {
            state.stats.count_drop(reason);
        }
    }
}

/// Why a static entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StaticError {
    #[error("no such port")]
    NoSuchPort,
    #[error("{0} is not an individual (unicast, non-zero) address")]
    NotUnicast(MacAddr),
    #[error(transparent)]
    TableFull(#[from] TableFull),
}

fn decide(
    fdb: &mut Fdb,
    ports: &[Option<PortState>],
    port: PortId,
    frame: &[u8],
    now: Duration,
) -> Verdict {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let tci = tag::tci(frame);
    if tci.is_none() && u16::from(eth.ethertype()) == TPID_8021Q {
        // Claims a tag but is too short to hold one.
        debug_assert!(frame.len() < ETHERNET_HEADER_LEN + VLAN_TAG_LEN);
        return Verdict::Drop(DropReason::Malformed);
    }
    let mode = |p: PortId| {
        ports
            .get(p.index())
            .and_then(Option::as_ref)
            .map(|s| &s.vlan)
    };
    let Some(vlan) = mode(port).and_then(|m| m.ingress(tci.map(tag::vid))) else {
        return Verdict::Drop(DropReason::VlanFiltered);
    };
    let src = MacAddr(eth.src_addr().0);
    let dst = MacAddr(eth.dst_addr().0);
    if !src.is_learnable_source() {
        return Verdict::Drop(DropReason::InvalidSource);
    }
    fdb.learn(vlan, src, port, now);
    if dst.is_multicast() {
        if dst.is_link_local() {
            return Verdict::Drop(DropReason::ReservedDest);
        }
        return Verdict::Flood { vlan };
    }
    match fdb.lookup(vlan, dst) {
        Some(out) if out == port => Verdict::Drop(DropReason::SamePort),
        Some(out) if mode(out).and_then(|m| m.egress(vlan)).is_none() => {
            Verdict::Drop(DropReason::VlanFiltered)
        }
        Some(out) => Verdict::Forward { port: out, vlan },
        None => Verdict::Flood { vlan },
    }
}

#[cfg(test)]
mod tests;
