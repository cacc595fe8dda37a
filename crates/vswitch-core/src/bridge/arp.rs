//! ARP: the snooping table, the guard's decision and the suppression reply.
//!
//! Every ARP request, reply and gratuitous ARP that crosses the switch teaches the table
//! (VLAN, IPv4) → (MAC, port). With suppression on, a broadcast request for an address the table
//! holds on another port is answered by the switch on the requester's port, as the Linux
//! bridge's `neigh_suppress` does, instead of being flooded. With the guard on, ARP whose sender
//! claims an address that a different MAC on a different port holds is dropped; ARP that breaks
//! a static binding is dropped on every port.

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};

use super::PortId;
use super::table::{Counters, PortTable, Row, TableFull};
use crate::wire::{ETHERNET_HEADER_LEN, EthernetProtocol, MacAddr};

/// Length of an Ethernet/IPv4 ARP packet.
const ARP_LEN: usize = 28;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct ArpKey {
    vlan: u16,
    ip: Ipv4Addr,
}

/// The ARP fields the switch acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInfo {
    pub request: bool,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpInfo {
    /// Reads an Ethernet/IPv4 ARP packet (the Ethernet payload); `None` if it is not one.
    pub fn parse(payload: &[u8]) -> Option<ArpInfo> {
        let packet = ArpPacket::new_checked(payload).ok()?;
        match ArpRepr::parse(&packet).ok()? {
            ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } => {
                let request = match operation {
                    ArpOperation::Request => true,
                    ArpOperation::Reply => false,
                    _ => return None,
                };
                Some(ArpInfo {
                    request,
                    sender_mac: MacAddr(source_hardware_addr.0),
                    sender_ip: source_protocol_addr,
                    target_mac: MacAddr(target_hardware_addr.0),
                    target_ip: target_protocol_addr,
                })
            }
            _ => None,
        }
    }

    /// An ARP probe (RFC 5227 duplicate address detection): the sender has no address yet.
    pub fn is_probe(&self) -> bool {
        self.sender_ip.is_unspecified()
    }

    /// A gratuitous ARP: a host announcing its own address.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// One binding as shown to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpEntry {
    pub vlan: u16,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub port: PortId,
    /// Seconds since the binding was last seen; `None` for a static binding.
    pub age: Option<u32>,
}

/// Lifetime counters of ARP handling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArpCounters {
    /// Bindings learned, moved (to another MAC or port), expired and evicted.
    pub table: Counters,
    /// Requests the switch answered itself.
    pub suppressed: u64,
    /// ARP dropped by the guard.
    pub guarded: u64,
    /// Frames of EtherType ARP that are not valid Ethernet/IPv4 ARP (forwarded as they are).
    pub malformed: u64,
}

/// The ARP snooping table and counters.
#[derive(Debug)]
pub struct Arp {
    table: PortTable<ArpKey, MacAddr>,
    suppressed: u64,
    guarded: u64,
    malformed: u64,
}

impl Arp {
    /// A table of at most `capacity` bindings that age after `ageing` seconds.
    pub fn new(capacity: usize, ageing: u32) -> Arp {
        Arp {
            table: PortTable::new(capacity, ageing),
            suppressed: 0,
            guarded: 0,
            malformed: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Static bindings in the table.
    pub fn static_len(&self) -> usize {
        self.table.static_len()
    }

    pub fn counters(&self) -> ArpCounters {
        ArpCounters {
            table: self.table.counters(),
            suppressed: self.suppressed,
            guarded: self.guarded,
            malformed: self.malformed,
        }
    }

    pub(crate) fn count_malformed(&mut self) {
        self.malformed += 1;
    }

    pub(crate) fn count_guarded(&mut self) {
        self.guarded += 1;
    }

    pub(crate) fn count_suppressed(&mut self) {
        self.suppressed += 1;
    }

    pub fn set_ageing(&mut self, ageing: u32) {
        self.table.set_ageing(ageing);
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.table.set_capacity(capacity);
    }

    /// Who holds `ip` in `vlan`, and on which port.
    pub fn lookup(&self, vlan: u16, ip: Ipv4Addr) -> Option<(MacAddr, PortId)> {
        let (port, mac, _) = self.table.get(&ArpKey { vlan, ip })?;
        Some((mac, port))
    }

    /// Learns the sender of `arp`, seen on `port` in `vlan`. Probes teach nothing.
    pub fn snoop(&mut self, vlan: u16, arp: &ArpInfo, port: PortId, now: Duration) {
        if arp.is_probe() || !arp.sender_mac.is_learnable_source() {
            return;
        }
        let key = ArpKey {
            vlan,
            ip: arp.sender_ip,
        };
        self.table.learn(key, arp.sender_mac, port, now);
    }

    /// The binding `arp` (arriving on `port` in `vlan`) breaks, for which the guard drops it:
    /// its MAC, its port, and whether it is static. Static bindings hold on every port against
    /// any other MAC or port; learned ones (until they expire) only on `guarded` ports, and only
    /// against another MAC on another port, so hosts may move and NICs be replaced.
    pub fn clash(
        &self,
        vlan: u16,
        arp: &ArpInfo,
        port: PortId,
        guarded: bool,
    ) -> Option<(MacAddr, PortId, bool)> {
        if arp.is_probe() {
            return None;
        }
        let (holder_port, holder, is_static) = self.table.get(&ArpKey {
            vlan,
            ip: arp.sender_ip,
        })?;
        let clash = if is_static {
            holder != arp.sender_mac || holder_port != port
        } else {
            guarded && holder != arp.sender_mac && holder_port != port
        };
        clash.then_some((holder, holder_port, is_static))
    }

    /// The owner of the address a broadcast request asks for, if the switch may answer on the
    /// requester's behalf: known, on another port than the request's, and not a probe or a
    /// gratuitous ARP (those must reach everyone, so conflicts stay visible).
    pub fn answer(&self, vlan: u16, arp: &ArpInfo, port: PortId) -> Option<(MacAddr, PortId)> {
        if !arp.request || arp.is_probe() || arp.is_gratuitous() {
            return None;
        }
        match self.lookup(vlan, arp.target_ip)? {
            (owner, owner_port) if owner_port != port => Some((owner, owner_port)),
            _ => None,
        }
    }

    /// Adds a static binding (from the config file): never ages, enforced on every port.
    pub fn add_static(
        &mut self,
        vlan: u16,
        ip: Ipv4Addr,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), TableFull> {
        self.table.add_static(ArpKey { vlan, ip }, mac, port)
    }

    pub fn expire(&mut self, now: Duration) -> usize {
        self.table.expire(now)
    }

    /// Removes the binding of `ip` in `vlan`, learned or static.
    pub fn remove(&mut self, vlan: u16, ip: Ipv4Addr) -> bool {
        self.table.remove_key(&ArpKey { vlan, ip })
    }

    /// Forgets the learned bindings of `port`, or of all ports; static ones stay.
    pub fn flush(&mut self, port: Option<PortId>) -> usize {
        self.table.flush(port)
    }

    pub fn remove_port(&mut self, port: PortId) -> usize {
        self.table.remove_port(port)
    }

    /// Every binding, in no particular order.
    /// Up to `max` bindings from `cursor` on, handed to `each`; where to go on from, or `None`
    /// at the end (see [`PortTable::rows_from`]).
    pub fn entries_from(
        &self,
        cursor: usize,
        max: usize,
        now: Duration,
        mut each: impl FnMut(ArpEntry),
    ) -> Option<usize> {
        self.table.rows_from(cursor, max, now, |r| {
            each(ArpEntry {
                vlan: r.key.vlan,
                ip: r.key.ip,
                mac: r.value,
                port: r.port,
                age: r.age,
            })
        })
    }

    pub fn entries(&self, now: Duration) -> impl Iterator<Item = ArpEntry> + '_ {
        self.table
            .rows(now)
            .map(|r: Row<ArpKey, MacAddr>| ArpEntry {
                vlan: r.key.vlan,
                ip: r.key.ip,
                mac: r.value,
                port: r.port,
                age: r.age,
            })
    }
}

/// An ARP reply the switch made, as an Ethernet frame: small and fixed-size, so a verdict can
/// carry it by value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ArpReply([u8; ETHERNET_HEADER_LEN + ARP_LEN]);

impl ArpReply {
    /// The Ethernet frame answering `request` for `owner`: Ethernet from the owner to the
    /// requester, an ARP reply saying the target address is at the owner's MAC. Byte for byte
    /// what the Linux bridge sends with `neigh_suppress` (42 bytes, no padding).
    pub fn new(request: &ArpInfo, owner: MacAddr) -> ArpReply {
        let mut frame = [0; ETHERNET_HEADER_LEN + ARP_LEN];
        frame[..6].copy_from_slice(&request.sender_mac.0);
        frame[6..12].copy_from_slice(&owner.0);
        frame[12..14].copy_from_slice(&u16::from(EthernetProtocol::Arp).to_be_bytes());
        let mut packet = ArpPacket::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..]);
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(owner.0),
            source_protocol_addr: request.target_ip,
            target_hardware_addr: EthernetAddress(request.sender_mac.0),
            target_protocol_addr: request.sender_ip,
        }
        .emit(&mut packet);
        ArpReply(frame)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ArpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArpReply({:02x?})", &self.0[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
    const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
    const EVIL: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xee]);
    const P0: PortId = PortId(0);
    const P1: PortId = PortId(1);
    const P2: PortId = PortId(2);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn t(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// An ARP request from A (10.0.0.1) for 10.0.0.2, as bytes on the wire (the payload).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet, IPv4, 6, 4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 10, 0, 0, 1, // sender A, 10.0.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // target ?, 10.0.0.2
    ];

    fn request(sender: MacAddr, sip: Ipv4Addr, tip: Ipv4Addr) -> ArpInfo {
        ArpInfo {
            request: true,
            sender_mac: sender,
            sender_ip: sip,
            target_mac: MacAddr::ZERO,
            target_ip: tip,
        }
    }

    #[test]
    fn parses_requests_and_rejects_other_arp() {
        let info = ArpInfo::parse(&REQUEST).unwrap();
        assert_eq!(info, request(A, ip(1), ip(2)));
        assert!(!info.is_probe() && !info.is_gratuitous());
        assert_eq!(ArpInfo::parse(&REQUEST[..27]), None, "short");
        let mut rarp = REQUEST;
        rarp[7] = 3; // RARP request
        assert_eq!(ArpInfo::parse(&rarp), None);
        let mut ipv6ish = REQUEST;
        ipv6ish[5] = 16;
        assert_eq!(ArpInfo::parse(&ipv6ish), None);
    }

    #[test]
    fn the_reply_is_byte_exact() {
        let out = ArpReply::new(&request(A, ip(1), ip(2)), B);
        let want: [u8; 42] = [
            0x02, 0, 0, 0, 0, 0x0a, // to the requester
            0x02, 0, 0, 0, 0, 0x0b, // from the owner
            0x08, 0x06, // ARP
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // reply
            0x02, 0, 0, 0, 0, 0x0b, 10, 0, 0, 2, // 10.0.0.2 is at B
            0x02, 0, 0, 0, 0, 0x0a, 10, 0, 0, 1, // to A at 10.0.0.1
        ];
        assert_eq!(out.as_bytes(), want);
    }

    #[test]
    fn snooping_learns_senders_not_probes() {
        let mut arp = Arp::new(16, 300);
        arp.snoop(0, &request(A, ip(1), ip(2)), P0, t(0));
        assert_eq!(arp.counters().table.learned, 1);
        assert_eq!(arp.lookup(0, ip(1)), Some((A, P0)));
        assert_eq!(arp.lookup(10, ip(1)), None, "per VLAN");
        let probe = request(B, Ipv4Addr::UNSPECIFIED, ip(2));
        arp.snoop(0, &probe, P1, t(0));
        assert_eq!(arp.lookup(0, Ipv4Addr::UNSPECIFIED), None);
        assert_eq!(arp.len(), 1);
        // The same address later from another MAC moves the binding (a new host, a failover).
        arp.snoop(0, &request(B, ip(1), ip(2)), P1, t(1));
        assert_eq!(arp.lookup(0, ip(1)), Some((B, P1)));
        assert_eq!(arp.counters().table.moved, 1);
        assert_eq!(arp.expire(t(302)), 1);
        assert!(arp.is_empty());
    }

    #[test]
    fn answers_only_for_known_targets_on_other_ports() {
        let mut arp = Arp::new(16, 300);
        arp.snoop(0, &request(B, ip(2), ip(9)), P1, t(0));
        let req = request(A, ip(1), ip(2));
        assert_eq!(arp.answer(0, &req, P0), Some((B, P1)));
        assert_eq!(
            arp.answer(0, &req, P1),
            None,
            "the owner's own port answers itself"
        );
        assert_eq!(arp.answer(5, &req, P0), None, "other VLAN");
        assert_eq!(
            arp.answer(0, &request(A, ip(1), ip(3)), P0),
            None,
            "unknown target"
        );
        let probe = request(A, Ipv4Addr::UNSPECIFIED, ip(2));
        assert_eq!(arp.answer(0, &probe, P0), None, "probes are forwarded");
        let gratuitous = request(A, ip(2), ip(2));
        assert_eq!(
            arp.answer(0, &gratuitous, P0),
            None,
            "announcements are forwarded"
        );
        let reply = ArpInfo {
            request: false,
            ..req
        };
        assert_eq!(arp.answer(0, &reply, P0), None);
    }

    #[test]
    fn the_guard_stops_a_different_mac_on_a_different_port() {
        let mut arp = Arp::new(16, 300);
        arp.snoop(0, &request(B, ip(2), ip(1)), P1, t(0));
        let forged = ArpInfo {
            request: false,
            sender_mac: EVIL,
            sender_ip: ip(2),
            target_mac: A,
            target_ip: ip(1),
        };
        assert_eq!(arp.clash(0, &forged, P2, true), Some((B, P1, false)));
        assert_eq!(
            arp.clash(0, &forged, P2, false),
            None,
            "learned bindings bind only guarded ports"
        );
        // The real owner, or the same MAC moving (a migrated VM), or a new MAC on the same
        // port, pass.
        let guard = |mac, sip, port| arp.clash(0, &request(mac, sip, ip(1)), port, true);
        assert_eq!(guard(B, ip(2), P1), None);
        assert_eq!(guard(B, ip(2), P2), None);
        assert_eq!(guard(EVIL, ip(2), P1), None);
        assert_eq!(guard(EVIL, ip(3), P2), None);
        assert_eq!(
            arp.clash(0, &request(EVIL, Ipv4Addr::UNSPECIFIED, ip(2)), P2, true),
            None
        );
        // Once the binding has aged out, the address is free again.
        arp.expire(t(302));
        assert_eq!(arp.clash(0, &forged, P2, true), None);
    }

    #[test]
    fn static_bindings_never_age_and_are_enforced_everywhere() {
        let mut arp = Arp::new(16, 10);
        arp.add_static(0, ip(2), B, P1).unwrap();
        assert_eq!(arp.expire(t(1000)), 0);
        // Enforced whether the port is guarded or not.
        for guarded in [false, true] {
            let claim = |mac, port| arp.clash(0, &request(mac, ip(2), ip(1)), port, guarded);
            let held = Some((B, P1, true));
            assert_eq!(claim(EVIL, P2), held);
            assert_eq!(claim(EVIL, P1), held, "another MAC, even on the bound port");
            assert_eq!(claim(B, P2), held, "the right MAC on the wrong port");
            assert_eq!(claim(B, P1), None);
        }
        arp.snoop(0, &request(EVIL, ip(2), ip(1)), P2, t(1000));
        assert_eq!(arp.lookup(0, ip(2)), Some((B, P1)), "learning leaves it");
        assert_eq!(arp.counters().table, Counters::default());
        assert_eq!(arp.clash(0, &request(EVIL, ip(3), ip(1)), P2, false), None);
    }
}
