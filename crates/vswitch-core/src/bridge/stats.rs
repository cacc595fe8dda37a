//! Per-port counters and the reasons a frame can be dropped.

use std::fmt;

/// Why a frame was not delivered. Ingress reasons are counted on the port the frame came in on,
/// egress reasons on the port it could not be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet (or virtio-net) header, or than the 802.1Q tag it claims.
    Malformed,
    /// Source MAC is multicast, broadcast or zero, which no station may send from.
    InvalidSource,
    /// Destination is an IEEE 802.1D reserved address (01:80:c2:00:00:0x): STP, LACP, LLDP, ...
    ReservedDest,
    /// The destination lives behind the port the frame came in on.
    SamePort,
    /// The egress port could not take the frame now (EAGAIN, ENOBUFS).
    TxFull,
    /// The egress port's link is down (EIO).
    LinkDown,
    /// Any other send error.
    TxError,
    /// The frame carries a partial checksum or GSO super-frame the egress port cannot take.
    NoOffload,
    /// The frame came from a port that is no longer attached.
    PortGone,
    /// The frame's VLAN is not allowed on the port it came in on (a tagged frame on an access
    /// port, an untagged one on a trunk without a native VLAN, a VLAN not in the trunk list,
    /// VID 4095), or its destination's port is not in that VLAN.
    VlanFiltered,
    /// ARP dropped by the guard: its sender claimed an address bound to another MAC and port.
    ArpGuard,
    /// The egress port's queue was full: frames held for later (a delay, a rate limit, a ring
    /// that is momentarily full) past its bound.
    QueueFull,
    /// The port's link is set down for this direction (`link=down`, `rx-down`, `tx-down`).
    AdminDown,
    /// Both ports are isolated: isolated ports only talk to ports that are not.
    Isolated,
    /// Lost on purpose: the port's impairment (`tx-loss`, `rx-loss`) chose this frame.
    ImpairLoss,
    /// The port's impairment queue (`tx-limit`, `rx-limit`) was full.
    ImpairOverflow,
    /// From a locked port, by a source without a static entry there.
    Locked,
    /// A new source on a port at its `max-macs`.
    MacLimit,
    /// Past the port's storm limit for its kind (broadcast, multicast, unknown unicast).
    Storm,
    /// Its source MAC is pinned to another port for moving too often (a loop).
    MacFlap,
    /// Arrived on a mirror's output port, which takes nothing in.
    MirrorPort,
    /// Refused by a tunnel port: not its encapsulation, a VNI it does not carry, or from an
    /// address that is not one of its remotes.
    Tunnel,
    /// Would not fit the egress port's MTU (a tunnel's underlay with the encapsulation).
    TooBig,
}

impl DropReason {
    pub const ALL: [DropReason; 23] = [
        DropReason::Malformed,
        DropReason::InvalidSource,
        DropReason::ReservedDest,
        DropReason::SamePort,
        DropReason::TxFull,
        DropReason::LinkDown,
        DropReason::TxError,
        DropReason::NoOffload,
        DropReason::PortGone,
        DropReason::VlanFiltered,
        DropReason::ArpGuard,
        DropReason::QueueFull,
        DropReason::AdminDown,
        DropReason::Isolated,
        DropReason::ImpairLoss,
        DropReason::ImpairOverflow,
        DropReason::Locked,
        DropReason::MacLimit,
        DropReason::Storm,
        DropReason::MacFlap,
        DropReason::MirrorPort,
        DropReason::Tunnel,
        DropReason::TooBig,
    ];

    /// The name used in logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::InvalidSource => "invalid_source",
            DropReason::ReservedDest => "reserved_dest",
            DropReason::SamePort => "same_port",
            DropReason::TxFull => "tx_full",
            DropReason::LinkDown => "link_down",
            DropReason::TxError => "tx_error",
            DropReason::NoOffload => "no_offload",
            DropReason::PortGone => "port_gone",
            DropReason::VlanFiltered => "vlan_filtered",
            DropReason::ArpGuard => "arp_guard",
            DropReason::QueueFull => "queue_full",
            DropReason::AdminDown => "admin_down",
            DropReason::Isolated => "isolated",
            DropReason::ImpairLoss => "impair_loss",
            DropReason::ImpairOverflow => "impair_overflow",
            DropReason::Locked => "locked",
            DropReason::MacLimit => "mac_limit",
            DropReason::Storm => "storm",
            DropReason::MacFlap => "mac_flap",
            DropReason::MirrorPort => "mirror_port",
            DropReason::Tunnel => "tunnel",
            DropReason::TooBig => "too_big",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Frames and bytes in one direction of one port, and the frames dropped there by reason.
/// Bytes count the Ethernet frame without the virtio-net header; a GSO super-frame counts as one
/// frame. The core keeps a port's receive side (ingress drops included); the datapath keeps its
/// transmit side, where sends happen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames: u64,
    pub bytes: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn count(&mut self, bytes: usize) {
        self.frames += 1;
        self.bytes += bytes as u64;
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }
}

/// Frames and bytes through one port, both directions, and its drops by reason (ingress
/// reasons counted on receive, egress reasons on transmit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl PortStats {
    /// One port's statistics from its receive and transmit counters.
    pub fn new(rx: &Counters, tx: &Counters) -> PortStats {
        PortStats {
            rx_frames: rx.frames,
            rx_bytes: rx.bytes,
            tx_frames: tx.frames,
            tx_bytes: tx.bytes,
            drops: std::array::from_fn(|i| rx.drops[i] + tx.drops[i]),
        }
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Adds the drops of `more` (counted at another stage of the same port).
    pub fn add_drops(&mut self, more: &Counters) {
        for (d, m) in self.drops.iter_mut().zip(more.drops) {
            *d += m;
        }
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Each reason with its count, in [`DropReason::ALL`] order.
    pub fn drop_counts(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.drops(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
    }

    #[test]
    fn counts_add_up() {
        let (mut rx, mut tx) = (Counters::default(), Counters::default());
        rx.count(60);
        rx.count(1514);
        tx.count(42);
        tx.count_drop(DropReason::TxFull);
        tx.count_drop(DropReason::TxFull);
        rx.count_drop(DropReason::Malformed);
        let s = PortStats::new(&rx, &tx);
        assert_eq!((s.rx_frames, s.rx_bytes), (2, 1574));
        assert_eq!((s.tx_frames, s.tx_bytes), (1, 42));
        assert_eq!(s.drops(DropReason::TxFull), 2);
        assert_eq!(s.total_drops(), 3);
        assert_eq!(s.drop_counts().filter(|&(_, n)| n > 0).count(), 2);
    }
}
