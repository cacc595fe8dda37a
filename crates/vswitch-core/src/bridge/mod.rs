//! The forwarding core: given a frame, the port it came in on and the time, decide where it goes.
//!
//! Nothing here reads a clock or touches a file descriptor. The datapath passes every frame and
//! the current time in and carries out the [`Verdict`], which holds everything the core decided
//! (a reply to send, a guard event to log); that keeps the switch's behaviour testable,
//! benchmarkable and fuzzable without root or real ports.
//!
//! [`Bridge::ingress`] runs two of a frame's stages: admission ([`admission`]: what the ingress
//! port's settings let in, and into which VLAN) and the decision (learn, look up, verdict).

pub mod admission;
pub mod arp;
pub mod fdb;
pub mod port;
pub mod stats;
mod storm;
pub mod table;
pub mod vlan;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::Duration;

use crate::wire::{EthernetFrame, EthernetProtocol, MacAddr};
use admission::Ingress;
pub use arp::{Arp, ArpCounters, ArpEntry, ArpInfo, ArpReply};
pub use fdb::{
    Change, Fdb, FdbChange, FdbCounters, FdbEntry, JOURNAL_CAP, Learned, MacKey, Mark, MoveLimit,
    TableFull,
};
pub use port::{
    FloodKind, LinkLocal, LinkState, PortConfig, PortFlags, Security, StormAction, StormLimits,
};
pub use stats::{Counters, DropReason, PortStats};
use std::net::Ipv4Addr;
use storm::Storm;
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
    /// Most MAC entries held at once (and most ARP bindings).
    pub mac_table_size: usize,
    /// Seconds an entry lives without traffic from its MAC (and an ARP binding without ARP).
    pub mac_ageing: u32,
    /// Answer ARP requests for known addresses instead of flooding them, on ports that do not
    /// say otherwise.
    pub arp_suppress: bool,
    /// MAC-move damping (loop protection); `None` turns it off.
    pub mac_move: Option<MoveLimit>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            mac_table_size: 8192,
            mac_ageing: 300,
            arp_suppress: false,
            mac_move: Some(MoveLimit::default()),
        }
    }
}

/// What to do with a frame, and the VLAN it belongs to (0 for untagged frames on ports
/// without VLAN configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to this one port, tagged or not as `egress` says.
    Forward {
        port: PortId,
        vlan: u16,
        egress: Egress,
    },
    /// Send it to every port [`Bridge::flood`] lists for this VLAN and kind of destination.
    Flood { vlan: u16, kind: FloodKind },
    /// Do not send it anywhere; the reason is already counted on the ingress port.
    Drop(DropReason),
    /// Send `frame` (an answer the switch made to an ARP request) back out of the ingress
    /// port, in this VLAN; the frame itself goes nowhere.
    Reply { vlan: u16, frame: ArpReply },
    /// Dropped by the ARP guard (counted as [`DropReason::ArpGuard`]); the event says what was
    /// claimed and who holds it, for the edge to log.
    Guarded(GuardEvent),
    /// Dropped by port security or loop protection, which has something to report (counted
    /// as [`Alert::reason`]).
    Alert(Alert),
}

/// Something port security or loop protection did that an operator must hear of: the frame
/// that caused it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alert {
    /// The port reached its `max-macs` (said once until it is below it again).
    MacLimit { port: PortId, limit: u32 },
    /// A locked port with MAB saw an unknown source: a locked entry waits for authorisation.
    Locked {
        port: PortId,
        vlan: u16,
        mac: MacAddr,
    },
    /// A storm limit was passed with `storm-action=block`: the port takes nothing now.
    StormBlocked { port: PortId, kind: FloodKind },
    /// `mac` moved between ports too often (a loop): pinned to `home`, frames from `port`
    /// dropped.
    MacFlap {
        vlan: u16,
        mac: MacAddr,
        home: PortId,
        port: PortId,
    },
}

impl Alert {
    /// The drop reason the frame is counted under.
    pub fn reason(&self) -> DropReason {
        match self {
            Alert::MacLimit { .. } => DropReason::MacLimit,
            Alert::Locked { .. } => DropReason::Locked,
            Alert::StormBlocked { .. } => DropReason::Storm,
            Alert::MacFlap { .. } => DropReason::MacFlap,
        }
    }
}

#[derive(Debug)]
struct PortState {
    /// Received frames and the drops at admission and decision.
    rx: Counters,
    config: PortConfig,
    storm: Storm,
    /// The port is at its `max-macs` and has said so.
    at_mac_limit: bool,
}

/// An ARP the guard dropped, for the edge to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardEvent {
    pub port: PortId,
    pub arp: ArpInfo,
    /// Who holds the address, and where.
    pub holder: (MacAddr, PortId),
    /// Whether the holder's binding is static (from the config file) rather than learned.
    pub is_static: bool,
}

/// The switch's state: its ports, their counters and settings, the MAC and ARP tables.
#[derive(Debug)]
pub struct Bridge {
    fdb: Fdb,
    arp: Arp,
    ports: Vec<Option<PortState>>,
    /// Numbers of removed ports, lowest first, for reuse.
    free: BinaryHeap<Reverse<u16>>,
    arp_suppress: bool,
}

impl Bridge {
    pub fn new(config: BridgeConfig) -> Bridge {
        let mut fdb = Fdb::new(config.mac_table_size, config.mac_ageing);
        fdb.set_move_limit(config.mac_move);
        Bridge {
            fdb,
            arp: Arp::new(config.mac_table_size, config.mac_ageing),
            ports: Vec::new(),
            free: BinaryHeap::new(),
            arp_suppress: config.arp_suppress,
        }
    }

    /// Attaches a new port with `config` (a [`PortConfig`], or just a [`VlanMode`]) and returns
    /// its number (the lowest free one), unless 65536 ports are attached already.
    pub fn attach(&mut self, config: impl Into<PortConfig>) -> Result<PortId, TooManyPorts> {
        let index = match self.free.pop() {
            Some(Reverse(i)) => usize::from(i),
            None if self.ports.len() <= usize::from(u16::MAX) => {
                self.ports.push(None);
                self.ports.len() - 1
            }
            None => return Err(TooManyPorts),
        };
        let id = PortId(u16::try_from(index).map_err(|_| TooManyPorts)?);
        self.ports[index] = Some(PortState {
            rx: Counters::default(),
            config: config.into(),
            storm: Storm::default(),
            at_mac_limit: false,
        });
        Ok(id)
    }

    /// Detaches a port: its MAC entries go with it. Returns its final receive counters.
    pub fn remove_port(&mut self, port: PortId) -> Option<Counters> {
        let state = self.ports.get_mut(port.index())?.take()?;
        self.free.push(Reverse(port.0));
        self.fdb.remove_port(port);
        self.arp.remove_port(port);
        Some(state.rx)
    }

    /// The port's VLAN mode.
    pub fn vlan_mode(&self, port: PortId) -> Option<&VlanMode> {
        Some(&self.state(port)?.config.vlan)
    }

    /// The port's settings.
    pub fn port_config(&self, port: PortId) -> Option<&PortConfig> {
        Some(&self.state(port)?.config)
    }

    /// Changes a port's settings. A new VLAN mode forgets the port's learned MAC and ARP
    /// entries (they may belong to VLANs it no longer carries), and so does locking the port
    /// (for MACs); static ones stay. Returns
    /// whether the port exists.
    pub fn set_port_config(&mut self, port: PortId, config: PortConfig) -> bool {
        let Some(state) = self.state_mut(port) else {
            return false;
        };
        let vlan_changed = state.config.vlan != config.vlan;
        // A port that turns locked keeps only what an operator allowed (static entries); one
        // that turns into a mirror's output learns nothing more and forgets what it learned.
        let locking = !state.config.security.locked && config.security.locked
            || !state.config.mirror_dest && config.mirror_dest;
        state.config = config;
        // Damping pinned MACs to this port under its old settings.
        self.fdb.forget_moves(port);
        if locking {
            self.fdb.flush(Some(port));
        }
        if vlan_changed {
            self.fdb.flush(Some(port));
            self.arp.flush(Some(port));
        }
        true
    }

    /// The ARP snooping table.
    pub fn arp(&self) -> &Arp {
        &self.arp
    }

    /// Binds `ip` in `vlan` to `mac` on `port` for good (a static ARP binding).
    pub fn add_arp_static(
        &mut self,
        port: PortId,
        vlan: u16,
        ip: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<(), StaticError> {
        self.check_static(port, mac)?;
        self.arp.add_static(vlan, ip, mac, port)?;
        Ok(())
    }

    /// What a static MAC entry and a static ARP binding both need: an attached port and an
    /// individual, non-zero MAC.
    fn check_static(&self, port: PortId, mac: MacAddr) -> Result<(), StaticError> {
        if self.state(port).is_none() {
            return Err(StaticError::NoSuchPort);
        }
        if !mac.is_learnable_source() {
            return Err(StaticError::NotUnicast(mac));
        }
        Ok(())
    }

    /// Removes the binding of `ip` in `vlan` (a static binding that left the config file).
    pub fn remove_arp_static(&mut self, vlan: u16, ip: Ipv4Addr) -> bool {
        self.arp.remove(vlan, ip)
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

    /// Turns the MAC table's journal of changes on or off (for `vswitchctl monitor`).
    pub fn set_fdb_journal(&mut self, on: bool) {
        self.fdb.set_journal(on);
    }

    /// Hands the MAC table's changes since the last call to `each`; returns how many were lost.
    pub fn drain_fdb_journal(&mut self, each: impl FnMut(FdbChange)) -> u64 {
        self.fdb.drain_journal(each)
    }

    /// The port's receive side: frames in, and frames dropped at admission and decision.
    pub fn counters(&self, port: PortId) -> Option<&Counters> {
        Some(&self.state(port)?.rx)
    }

    /// Decides the fate of `frame` (an Ethernet frame, without virtio-net header) that arrived
    /// on `port` at `now`, learning its source on the way.
    pub fn ingress(&mut self, port: PortId, frame: &[u8], now: Duration) -> Verdict {
        let index = port.index();
        let Some(state) = self.ports.get_mut(index).and_then(Option::as_mut) else {
            return Verdict::Drop(DropReason::PortGone);
        };
        state.rx.count(frame.len());
        let verdict = match Ingress::admit(port, &state.config, self.arp_suppress, frame) {
            Ok(ingress) => self.decide(&ingress, frame, now),
            Err(reason) => Verdict::Drop(reason),
        };
        let dropped = match verdict {
            Verdict::Drop(reason) => Some(reason),
            Verdict::Guarded(_) => Some(DropReason::ArpGuard),
            Verdict::Alert(alert) => Some(alert.reason()),
            _ => None,
        };
        if let Some(reason) = dropped
            && let Some(state) = &mut self.ports[index]
        {
            state.rx.count_drop(reason);
        }
        verdict
    }

    /// How a frame of `vlan` leaves `port`, or `None` if it must not.
    pub fn egress(&self, port: PortId, vlan: u16) -> Option<Egress> {
        self.state(port)?.config.vlan.egress(vlan)
    }

    /// Where a flooded frame of `vlan` and `kind` from `ingress` goes, with how it leaves each
    /// port: every port in that VLAN whose flags take that kind, but the ingress port (unless
    /// it is in hairpin mode), isolated ports if the ingress is isolated, and for link-local
    /// groups only ports that forward that group too.
    pub fn flood(
        &self,
        ingress: PortId,
        vlan: u16,
        kind: FloodKind,
    ) -> impl Iterator<Item = (PortId, Egress)> + '_ {
        let from = self.state(ingress).map(|s| s.config.flags);
        self.ports.iter().enumerate().filter_map(move |(i, p)| {
            let config = &p.as_ref()?.config;
            let flags = config.flags;
            let take = !config.mirror_dest
                && flags.floods(kind)
                && (i != ingress.index() || flags.hairpin)
                && !(flags.isolated && from.is_some_and(|f| f.isolated))
                && match kind {
                    FloodKind::LinkLocal(last) => config.link_local.contains(last),
                    _ => true,
                };
            if !take {
                return None;
            }
            Some((PortId(i as u16), config.vlan.egress(vlan)?))
        })
    }

    /// The ports of [`Bridge::flood`].
    pub fn flood_targets(
        &self,
        ingress: PortId,
        vlan: u16,
        kind: FloodKind,
    ) -> impl Iterator<Item = PortId> + '_ {
        self.flood(ingress, vlan, kind).map(|(port, _)| port)
    }

    /// The learning table's current settings.
    pub fn config(&self) -> BridgeConfig {
        BridgeConfig {
            mac_table_size: self.fdb.capacity(),
            mac_ageing: self.fdb.ageing(),
            arp_suppress: self.arp_suppress,
            mac_move: self.fdb.move_limit(),
        }
    }

    /// Applies new table settings to the running table (shrinking evicts fairly). A size
    /// below the static entries (or bindings) the tables hold is refused, and nothing changes:
    /// the tables never hold more than their size.
    pub fn set_config(&mut self, config: BridgeConfig) -> Result<(), BelowStatics> {
        let statics = self.fdb.static_len().max(self.arp.static_len());
        if config.mac_table_size < statics {
            return Err(BelowStatics {
                size: config.mac_table_size,
                statics,
            });
        }
        self.fdb.set_ageing(config.mac_ageing);
        self.fdb.set_capacity(config.mac_table_size);
        self.arp.set_ageing(config.mac_ageing);
        self.arp.set_capacity(config.mac_table_size);
        self.arp_suppress = config.arp_suppress;
        if self.fdb.move_limit() != config.mac_move {
            self.fdb.set_move_limit(config.mac_move);
        }
        Ok(())
    }

    /// Adds a static entry: frames to `mac` in `vlan` always go to `port`, which must be
    /// attached; `mac` must be an individual (unicast), non-zero address.
    pub fn add_static(&mut self, port: PortId, vlan: u16, mac: MacAddr) -> Result<(), StaticError> {
        self.check_static(port, mac)?;
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

    /// Periodic housekeeping: expires MAC entries and ARP bindings past their ageing time.
    /// Returns how many MAC entries went.
    pub fn tick(&mut self, now: Duration) -> usize {
        self.arp.expire(now);
        self.fdb.expire(now)
    }

    /// The rest of [`Bridge::ingress`], for a frame the port's settings admit.
    fn decide(&mut self, ingress: &Ingress, frame: &[u8], now: Duration) -> Verdict {
        let &Ingress {
            port,
            vlan,
            guarded,
            suppress,
            flags,
            link_local,
            security,
            l3,
            ethertype,
        } = ingress;
        // `tag::l3` found a whole Ethernet header.
        let eth = EthernetFrame::new_unchecked(frame);
        let src = MacAddr(eth.src_addr().0);
        let dst = MacAddr(eth.dst_addr().0);
        if !src.is_learnable_source() {
            return Verdict::Drop(DropReason::InvalidSource);
        }
        if security.locked
            && let Some(verdict) =
                self.locked(port, vlan, src, security.mab, security.max_macs, now)
        {
            return verdict;
        }
        let kind = if dst.is_broadcast() {
            Some(FloodKind::Broadcast)
        } else if dst.is_link_local() {
            Some(FloodKind::LinkLocal(dst.0[5]))
        } else if dst.is_multicast() {
            Some(FloodKind::Multicast)
        } else {
            None
        };
        if let Some(kind) = kind
            && let Some(verdict) = self.storm(port, &security, kind, now)
        {
            return verdict;
        }
        let arp = if ethertype == EthernetProtocol::Arp {
            self.arp_in(&frame[l3..])
        } else {
            None
        };
        if let Some(arp) = &arp
            && let Some((mac, holder_port, is_static)) = self.arp.clash(vlan, arp, port, guarded)
        {
            self.arp.count_guarded();
            return Verdict::Guarded(GuardEvent {
                port,
                arp: *arp,
                holder: (mac, holder_port),
                is_static,
            });
        }
        if flags.learning
            && let Some(verdict) = self.learn(port, vlan, src, &security, now)
        {
            return verdict;
        }
        if let Some(arp) = &arp {
            self.arp.snoop(vlan, arp, port, now);
            if dst.is_broadcast()
                && suppress
                && let Some((owner, owner_port)) = self.arp.answer(vlan, arp, port)
            {
                match self.state(owner_port) {
                    // The switch's own stack answers for itself, learning the asker...
                    Some(to) if to.config.local && reaches(flags, &to.config) => {
                        return match to.config.vlan.egress(vlan) {
                            Some(egress) => Verdict::Forward {
                                port: owner_port,
                                vlan,
                                egress,
                            },
                            None => Verdict::Drop(DropReason::VlanFiltered),
                        };
                    }
                    // ...where the asker may reach it; elsewhere the request floods as any
                    // broadcast does, so isolation and mirrors keep it from the own port.
                    Some(to) if to.config.local => {}
                    _ => {
                        self.arp.count_suppressed();
                        return Verdict::Reply {
                            vlan,
                            frame: ArpReply::new(arp, owner),
                        };
                    }
                }
            }
        }
        if let Some(kind) = kind {
            if let FloodKind::LinkLocal(last) = kind
                && !link_local.contains(last)
            {
                return Verdict::Drop(DropReason::ReservedDest);
            }
            return Verdict::Flood { vlan, kind };
        }
        let Some(out) = self.fdb.lookup(vlan, dst) else {
            let kind = FloodKind::Unknown;
            if let Some(verdict) = self.storm(port, &security, kind, now) {
                return verdict;
            }
            return Verdict::Flood { vlan, kind };
        };
        if out == port && !flags.hairpin {
            return Verdict::Drop(DropReason::SamePort);
        }
        let Some(to) = self.state(out) else {
            return Verdict::Drop(DropReason::PortGone);
        };
        if flags.isolated && to.config.flags.isolated {
            return Verdict::Drop(DropReason::Isolated);
        }
        if to.config.mirror_dest {
            // A static entry on a mirror's output: the port sends only mirrored copies.
            return Verdict::Drop(DropReason::MirrorPort);
        }
        match to.config.vlan.egress(vlan) {
            Some(egress) => Verdict::Forward {
                port: out,
                vlan,
                egress,
            },
            None => Verdict::Drop(DropReason::VlanFiltered),
        }
    }

    /// A locked port: `src` passes only with a static entry on `port`; an unknown one leaves a
    /// locked entry with MAB. `None` lets the frame on.
    fn locked(
        &mut self,
        port: PortId,
        vlan: u16,
        src: MacAddr,
        mab: bool,
        max_macs: Option<u32>,
        now: Duration,
    ) -> Option<Verdict> {
        let entry = self.fdb.get(vlan, src);
        let full = max_macs.is_some_and(|limit| self.fdb.port_len(port) >= limit as usize);
        match entry {
            Some((p, _, true)) if p == port => None,
            // A new locked entry counts against max-macs like a learned one.
            None if mab && full => Some(Verdict::Drop(DropReason::MacLimit)),
            _ if mab && self.fdb.lock(vlan, src, port, now) => {
                Some(Verdict::Alert(Alert::Locked {
                    port,
                    vlan,
                    mac: src,
                }))
            }
            _ => Some(Verdict::Drop(DropReason::Locked)),
        }
    }

    /// Storm control for a frame of `kind`: `None` if it is within the port's limit.
    fn storm(
        &mut self,
        port: PortId,
        security: &Security,
        kind: FloodKind,
        now: Duration,
    ) -> Option<Verdict> {
        let state = self.state_mut(port)?;
        if state.storm.admit(&security.storm, kind, now) {
            return None;
        }
        if security.storm_action == StormAction::Block && state.config.link.rx() {
            state.config.link = match state.config.link {
                LinkState::TxDown => LinkState::Down,
                _ => LinkState::RxDown,
            };
            return Some(Verdict::Alert(Alert::StormBlocked { port, kind }));
        }
        Some(Verdict::Drop(DropReason::Storm))
    }

    /// Learns `src` on `port` as its security settings allow: within `max-macs`, as a sticky
    /// entry on a sticky port, and not against MAC-move damping. `None` lets the frame on.
    fn learn(
        &mut self,
        port: PortId,
        vlan: u16,
        src: MacAddr,
        security: &Security,
        now: Duration,
    ) -> Option<Verdict> {
        if security.max_macs.is_some() || security.sticky {
            let entry = self.fdb.get(vlan, src);
            let known_here = matches!(entry, Some((p, _, _)) if p == port);
            // Learned before the port turned sticky: it becomes sticky now.
            if security.sticky && known_here && entry.is_some_and(|(_, _, is_static)| !is_static) {
                let _ = self.fdb.add_sticky(vlan, src, port);
                return None;
            }
            if !known_here {
                if let Some(limit) = security.max_macs {
                    let full = self.fdb.port_len(port) >= limit as usize;
                    let state = self.state_mut(port)?;
                    if full {
                        if state.at_mac_limit {
                            return Some(Verdict::Drop(DropReason::MacLimit));
                        }
                        state.at_mac_limit = true;
                        return Some(Verdict::Alert(Alert::MacLimit { port, limit }));
                    }
                    state.at_mac_limit = false;
                }
                if security.sticky {
                    // A static entry elsewhere stays where the operator put it (learning never
                    // moves one); a table full of static entries keeps the MAC unlearned.
                    if !entry.is_some_and(|(_, _, is_static)| is_static) {
                        let _ = self.fdb.add_sticky(vlan, src, port);
                    }
                    return None;
                }
            }
        }
        let ports = &self.ports;
        let can_hold = |home: PortId, entries: usize| {
            ports
                .get(home.index())
                .and_then(Option::as_ref)
                .is_some_and(|state| state.config.can_hold_learned(vlan, entries))
        };
        match self.fdb.learn(vlan, src, port, now, can_hold) {
            Learned::Ok => None,
            Learned::Pinned { .. } => Some(Verdict::Drop(DropReason::MacFlap)),
            Learned::Flapping { home } => Some(Verdict::Alert(Alert::MacFlap {
                vlan,
                mac: src,
                home,
                port,
            })),
        }
    }

    /// The ARP packet in an ARP frame's `payload` (malformed ARP is counted and `None`).
    fn arp_in(&mut self, payload: &[u8]) -> Option<ArpInfo> {
        let info = ArpInfo::parse(payload);
        if info.is_none() {
            self.arp.count_malformed();
        }
        info
    }
}

/// Whether a frame from a port with `flags` may go out of a port with settings `to`, as far
/// as isolation and mirrors go.
fn reaches(flags: PortFlags, to: &PortConfig) -> bool {
    !(to.mirror_dest || flags.isolated && to.flags.isolated)
}

/// A table size below the static entries the tables hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{size} is below the {statics} static entries the tables hold; delete some first")]
pub struct BelowStatics {
    pub size: usize,
    pub statics: usize,
}

/// A port could not be attached: port numbers are 16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the switch has 65536 ports, as many as it can number")]
pub struct TooManyPorts;

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

#[cfg(test)]
mod tests;
