//! The bridge: sequences of frames and operator actions on ports of mixed VLAN modes, flags,
//! ARP guard and suppression, port security and the switch's own port, every verdict checked
//! against the ingress port's settings and the tables.

use std::net::Ipv4Addr;
use std::time::Duration;

use vswitch::bridge::{
    Alert, ArpEntry, ArpInfo, Bridge, BridgeConfig, DropReason, Egress, FdbEntry, FloodKind,
    LinkLocal, LinkState, Mark, MoveLimit, PortConfig, PortFlags, PortId, Security, StaticError,
    StormAction, StormLimits, Verdict, VlanMode, VlanSet,
};
use vswitch::wire::MacAddr;
use vswitch::wire::vlan as tag;

use super::{Input, be16};

/// VLANs ports are configured with; frames also carry 0, 100 (no port has it) and 4095.
const VIDS: [u16; 4] = [1, 10, 20, 4094];
const HOSTS: [MacAddr; 4] = [
    MacAddr([0x02, 0, 0, 0, 0, 0x01]),
    MacAddr([0x02, 0, 0, 0, 0, 0x02]),
    MacAddr([0x02, 0, 0, 0, 0, 0x03]),
    MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
];
/// The switch's own port's MAC (`--ip-mac`).
const OWN_MAC: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 0xfe]);
const IPS: [Ipv4Addr; 6] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(10, 0, 0, 4),
    Ipv4Addr::new(10, 0, 0, 254),
    Ipv4Addr::UNSPECIFIED,
];

fn vlan_mode(inp: &mut Input) -> VlanMode {
    match inp.below(4) {
        0 | 1 => VlanMode::All,
        // Access 0 is the own port's mode without `--ip-vlan`.
        2 => VlanMode::Access(inp.pick(&[0, 1, 10, 20, 4094])),
        _ => {
            let bits = inp.u8();
            let mut vlans = VlanSet::new();
            for (i, &vid) in VIDS.iter().enumerate() {
                if bits & (1 << i) != 0 {
                    vlans.insert(vid);
                }
            }
            if vlans.is_empty() {
                vlans.insert(VIDS[0]);
            }
            let native = (bits & 0x80 != 0).then(|| inp.pick(&VIDS));
            VlanMode::Trunk {
                vlans: Box::new(vlans),
                native,
            }
        }
    }
}

fn link_local(bits: u16) -> LinkLocal {
    let groups: Vec<String> = (0..16u8)
        .filter(|&b| b != 1 && bits & (1 << b) != 0)
        .map(|b| format!("0x{b:02x}"))
        .collect();
    if groups.is_empty() {
        return LinkLocal::NONE;
    }
    groups
        .join(",")
        .parse()
        .expect("groups without pause parse")
}

/// A port's settings; all-zero bytes give a default port.
fn port_config(inp: &mut Input, local: bool) -> PortConfig {
    let f = inp.u8();
    let flags = PortFlags {
        learning: f & 1 == 0,
        flood: f & 2 == 0,
        mcast_flood: f & 4 == 0,
        bcast_flood: f & 8 == 0,
        isolated: f & 16 != 0,
        hairpin: f & 32 != 0,
    };
    let a = inp.u8();
    let arp_suppress = match a & 3 {
        2 => Some(false),
        3 => Some(true),
        _ => None,
    };
    let link_local = if a & 8 != 0 {
        link_local(inp.u16())
    } else {
        LinkLocal::NONE
    };
    let link = match a >> 4 {
        1 => LinkState::Down,
        2 => LinkState::RxDown,
        3 => LinkState::TxDown,
        _ => LinkState::Up,
    };
    let s = inp.u8();
    let mut count = |bit: u8, n: usize| (s & bit != 0).then(|| 1 + inp.below(n) as u32);
    let security = Security {
        locked: s & 1 != 0,
        mab: s & 2 != 0,
        sticky: s & 4 != 0,
        max_macs: count(8, 4),
        storm: StormLimits {
            broadcast: count(16, 3),
            multicast: count(32, 3),
            unknown: count(64, 3),
        },
        storm_action: if s & 128 != 0 {
            StormAction::Block
        } else {
            StormAction::Drop
        },
    };
    PortConfig {
        vlan: vlan_mode(inp),
        arp_suppress,
        arp_guard: a & 4 != 0,
        flags,
        link_local,
        link,
        security,
        local,
        // Set on a port when it becomes a mirror's output (`Datapath::add_mirror`).
        mirror_dest: f & 64 != 0,
    }
}

fn mac(inp: &mut Input) -> MacAddr {
    match inp.below(16) {
        n @ 0..=7 => HOSTS[n % 4],
        8 => MacAddr::BROADCAST,
        9 => MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x01]),
        10 => MacAddr([0x01, 0x80, 0xc2, 0, 0, inp.u8() & 0x0f]),
        11 => MacAddr::ZERO,
        12 => OWN_MAC,
        13 => MacAddr([0x33, 0x33, 0, 0, 0, 0x01]),
        _ => {
            let mut b = [0; 6];
            b.iter_mut().for_each(|x| *x = inp.u8());
            MacAddr(b)
        }
    }
}

fn vid(inp: &mut Input) -> u16 {
    match inp.below(8) {
        n @ 0..=3 => VIDS[n],
        4 => 0,
        5 => 4095,
        6 => 100,
        _ => inp.u16() & 0x0fff,
    }
}

/// An Ethernet frame: addresses from a small pool, up to two tags, an ARP packet, an IPv4
/// header or bytes; sometimes cut short.
fn frame(inp: &mut Input) -> Vec<u8> {
    let (dst, src) = (mac(inp), mac(inp));
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    let push_tag = |f: &mut Vec<u8>, tpid: u16, inp: &mut Input| {
        let tci = u16::from(inp.u8() & 0xf0) << 8 | vid(inp);
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    };
    match inp.below(8) {
        0..=3 => {}
        4 | 5 => push_tag(&mut f, 0x8100, inp),
        6 => {
            push_tag(&mut f, 0x8100, inp);
            push_tag(&mut f, 0x8100, inp);
        }
        _ => {
            let outer = inp.pick(&[0x88a8, 0x9100]);
            push_tag(&mut f, outer, inp);
            push_tag(&mut f, 0x8100, inp);
        }
    }
    match inp.below(4) {
        0 | 1 => {
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0]);
            f.push(inp.pick(&[1, 1, 2, 3]));
            let sender = if inp.bit() { src } else { mac(inp) };
            f.extend_from_slice(&sender.0);
            f.extend_from_slice(&inp.pick(&IPS).octets());
            let target = if inp.bit() { MacAddr::ZERO } else { mac(inp) };
            f.extend_from_slice(&target.0);
            f.extend_from_slice(&inp.pick(&IPS).octets());
        }
        2 => f.extend_from_slice(&[
            0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]),
        _ => {
            f.extend_from_slice(&inp.u16().to_be_bytes());
            let n = inp.below(32);
            f.extend_from_slice(inp.take(n));
        }
    }
    if inp.u8() == 0xff {
        f.truncate(inp.below(24));
    }
    f
}

/// The VLAN a frame is in on a port of `mode`, as `docs/vlan.md` states it, or why it is
/// dropped at admission. Written apart from the bridge's own code on purpose.
fn classify(mode: &VlanMode, frame: &[u8]) -> Result<u16, DropReason> {
    if frame.len() < 14 {
        return Err(DropReason::Malformed);
    }
    let (vid, inner) = if be16(frame, 12) == 0x8100 {
        if frame.len() < 18 {
            return Err(DropReason::Malformed);
        }
        (Some(be16(frame, 14) & 0x0fff), be16(frame, 16))
    } else {
        (None, be16(frame, 12))
    };
    // A priority tag (VID 0) counts as untagged.
    let vid = vid.filter(|&v| v != 0);
    if vid == Some(4095) {
        return Err(DropReason::VlanFiltered);
    }
    let vlan = match (mode, vid) {
        (VlanMode::All, v) => v.unwrap_or(0),
        (VlanMode::Access(n), None) => *n,
        (VlanMode::Trunk { native, .. }, None) => native.ok_or(DropReason::VlanFiltered)?,
        (VlanMode::Trunk { vlans, native }, Some(v)) if vlans.contains(v) || *native == Some(v) => {
            v
        }
        _ => return Err(DropReason::VlanFiltered),
    };
    // Double tagging: a tag behind an untagged classification would be bared at the next hop.
    if vid.is_none() && *mode != VlanMode::All && matches!(inner, 0x8100 | 0x88a8 | 0x9100) {
        return Err(DropReason::VlanFiltered);
    }
    Ok(vlan)
}

/// How a frame of `vlan` leaves a port of `mode`, as `docs/vlan.md` states it.
fn egress_of(mode: &VlanMode, vlan: u16) -> Option<Egress> {
    match mode {
        VlanMode::All if vlan == 0 => Some(Egress::Untagged),
        VlanMode::All => Some(Egress::Tagged),
        VlanMode::Access(n) => (*n == vlan).then_some(Egress::Untagged),
        VlanMode::Trunk { native, .. } if *native == Some(vlan) => Some(Egress::Untagged),
        VlanMode::Trunk { vlans, .. } => {
            (vlan != 0 && vlans.contains(vlan)).then_some(Egress::Tagged)
        }
    }
}

/// The ARP packet of a frame, if it is Ethernet/IPv4 ARP behind at most one 802.1Q tag.
fn arp_of(frame: &[u8]) -> Option<ArpInfo> {
    let (l3, ethertype) = tag::l3(frame)?;
    (u16::from(ethertype) == 0x0806)
        .then(|| ArpInfo::parse(&frame[l3..]))
        .flatten()
}

/// A bridge under test and what the checks remember about it.
struct Run {
    bridge: Bridge,
    now: Duration,
    /// Ports attached at the start (some are removed and attached again).
    ports: usize,
    /// Per port: its `max-macs` has held since it was attached, with no static entry added
    /// and no settings changed since, so it must hold now.
    limit_kept: Vec<bool>,
}

impl Run {
    fn cfg(&self, port: PortId) -> Option<&PortConfig> {
        self.bridge.port_config(port)
    }

    fn port(&self, inp: &mut Input) -> PortId {
        PortId(inp.below(self.ports) as u16)
    }

    fn ingress(&mut self, port: PortId, frame: &[u8]) {
        let Some(cin) = self.cfg(port).cloned() else {
            let verdict = self.bridge.ingress(port, frame, self.now);
            assert_eq!(verdict, Verdict::Drop(DropReason::PortGone));
            return;
        };
        let global_suppress = self.bridge.config().arp_suppress;
        let before = self.bridge.counters(port).expect("attached").clone();
        let statics: Vec<FdbEntry> = self
            .bridge
            .fdb()
            .entries(self.now)
            .filter(|e| e.age.is_none())
            .collect();
        let fdb_full_of_statics = self.bridge.fdb().len() >= self.bridge.fdb().capacity()
            && self.bridge.fdb().static_len() == self.bridge.fdb().len();
        let src_before = (frame.len() >= 12)
            .then(|| classify(&cin.vlan, frame).ok())
            .flatten()
            .and_then(|v| {
                self.bridge
                    .fdb()
                    .get(v, MacAddr(frame[6..12].try_into().unwrap()))
            });

        let verdict = self.bridge.ingress(port, frame, self.now);

        let after = self.bridge.counters(port).expect("still attached");
        assert_eq!(after.frames, before.frames + 1, "rx frames counted");
        assert_eq!(after.bytes, before.bytes + frame.len() as u64, "rx bytes");
        let dropped = match verdict {
            Verdict::Drop(reason) => Some(reason),
            Verdict::Guarded(_) => Some(DropReason::ArpGuard),
            Verdict::Alert(alert) => Some(alert.reason()),
            _ => None,
        };
        if let Some(reason) = dropped {
            assert_eq!(
                after.drops(reason),
                before.drops(reason) + 1,
                "{reason:?} counted"
            );
        }

        // Admission: the link, the frame's length, its VLAN.
        let admitted = if !cin.link.rx() {
            Err(DropReason::AdminDown)
        } else if cin.mirror_dest {
            Err(DropReason::MirrorPort)
        } else {
            classify(&cin.vlan, frame)
        };
        let vlan = match admitted {
            Ok(vlan) => vlan,
            Err(reason) => {
                assert_eq!(verdict, Verdict::Drop(reason), "admission of {frame:02x?}");
                return;
            }
        };
        let dst = MacAddr(frame[..6].try_into().unwrap());
        let src = MacAddr(frame[6..12].try_into().unwrap());
        if !src.is_learnable_source() {
            assert_eq!(verdict, Verdict::Drop(DropReason::InvalidSource));
            return;
        }
        for e in &statics {
            let now = self.bridge.fdb().get(e.vlan, e.mac);
            assert_eq!(
                now,
                Some((e.port, e.mark, true)),
                "a frame from {src} on port {port} moved static entry {e:?} (verdict {verdict:?})"
            );
        }
        let arp = arp_of(frame);
        let suppress = cin.arp_suppress.unwrap_or(global_suppress);
        let fdb = self.bridge.fdb();
        match verdict {
            Verdict::Forward {
                port: out,
                vlan: v,
                egress,
            } => {
                assert_eq!(v, vlan, "forwarded in a VLAN other than its classification");
                assert!(
                    out != port || cin.flags.hairpin,
                    "forwarded back out of its ingress port {port} without hairpin"
                );
                let cout = self
                    .cfg(out)
                    .expect("forwarded to a port that is not attached");
                assert!(!cout.mirror_dest, "forwarded to mirror output {out}");
                assert_eq!(Some(egress), egress_of(&cout.vlan, v), "egress on {out}");
                assert_eq!(self.bridge.egress(out, v), Some(egress));
                let own_port_arp = dst.is_multicast();
                let isolated = cin.flags.isolated && cout.flags.isolated;
                assert!(
                    !isolated,
                    "isolated port {port} reached isolated port {out} (to {dst})"
                );
                if own_port_arp {
                    // Only an ARP request for the switch's own address goes to one port.
                    let arp = arp.expect("a broadcast forwarded to one port is ARP");
                    assert!(dst.is_broadcast() && arp.request && suppress && cout.local);
                    assert_ne!(out, port);
                    let owner = self.bridge.arp().lookup(v, arp.target_ip);
                    assert_eq!(owner.map(|(_, p)| p), Some(out), "the asked address's port");
                } else {
                    assert_eq!(
                        fdb.lookup(v, dst),
                        Some(out),
                        "forwarded where the table says"
                    );
                }
                self.passed(port, &cin, vlan, src, src_before, fdb_full_of_statics);
            }
            Verdict::Flood { vlan: v, kind } => {
                assert_eq!(v, vlan, "flooded in a VLAN other than its classification");
                let want = if dst.is_broadcast() {
                    FloodKind::Broadcast
                } else if dst.is_link_local() {
                    assert!(cin.link_local.contains(dst.0[5]), "reserved group flooded");
                    FloodKind::LinkLocal(dst.0[5])
                } else if dst.is_multicast() {
                    FloodKind::Multicast
                } else {
                    assert_eq!(fdb.lookup(v, dst), None, "known unicast flooded");
                    FloodKind::Unknown
                };
                assert_eq!(kind, want, "flood kind of {dst}");
                self.check_flood(port, &cin, v, kind);
                self.passed(port, &cin, vlan, src, src_before, fdb_full_of_statics);
            }
            Verdict::Reply {
                vlan: v,
                frame: reply,
            } => {
                assert_eq!(v, vlan, "ARP reply in a VLAN other than the request's");
                let arp = arp.expect("a reply answers ARP");
                assert!(dst.is_broadcast() && suppress && arp.request && !arp.is_probe());
                assert!(!arp.is_gratuitous(), "gratuitous ARP must reach everyone");
                let (owner, owner_port) = self
                    .bridge
                    .arp()
                    .lookup(v, arp.target_ip)
                    .expect("the switch answers only for addresses it knows");
                assert_ne!(owner_port, port, "answered for a host on the asking port");
                let r = reply.as_bytes();
                assert_eq!(r.len(), 42);
                assert_eq!(&r[..6], &arp.sender_mac.0, "reply to the asker");
                assert_eq!(&r[6..12], &owner.0, "reply from the owner");
                let info = ArpInfo::parse(&r[14..]).expect("the reply is ARP");
                assert_eq!(be16(r, 12), 0x0806);
                assert!(!info.request);
                assert_eq!((info.sender_mac, info.sender_ip), (owner, arp.target_ip));
                assert_eq!(
                    (info.target_mac, info.target_ip),
                    (arp.sender_mac, arp.sender_ip)
                );
                self.passed(port, &cin, vlan, src, src_before, fdb_full_of_statics);
            }
            Verdict::Drop(reason) => self.check_drop(port, &cin, vlan, dst, reason),
            Verdict::Guarded(event) => {
                assert_eq!(event.port, port);
                let arp = arp.expect("the guard drops only ARP");
                assert_eq!(event.arp, arp);
                assert!(event.holder.0 != arp.sender_mac || event.holder.1 != port);
                assert!(
                    event.is_static || cin.arp_guard,
                    "learned bindings guard guarded ports"
                );
            }
            Verdict::Alert(alert) => self.check_alert(port, &cin, vlan, src, alert),
        }
    }

    /// A frame from `src` that the bridge passed on: what locking and learning promise.
    fn passed(
        &self,
        port: PortId,
        cin: &PortConfig,
        vlan: u16,
        src: MacAddr,
        before: Option<(PortId, Mark, bool)>,
        full_of_statics: bool,
    ) {
        let entry = self.bridge.fdb().get(vlan, src);
        if cin.security.locked {
            assert!(
                matches!(entry, Some((p, _, true)) if p == port),
                "locked port {port} passed {src} without a static entry there ({entry:?})"
            );
            return;
        }
        if !cin.flags.learning || before.is_some_and(|(_, _, is_static)| is_static) {
            return;
        }
        if before.is_none() && full_of_statics {
            return;
        }
        if cin.security.sticky {
            assert!(
                matches!(entry, Some((p, Mark::Sticky, true)) if p == port),
                "sticky port {port} did not keep {src} in VLAN {vlan}: {entry:?}, was {before:?}; \
                 table: {:?}",
                self.bridge.fdb().entries(self.now).collect::<Vec<_>>()
            );
        } else {
            assert_eq!(
                entry,
                Some((port, Mark::Plain, false)),
                "{src} not learned on port {port}"
            );
        }
    }

    fn check_flood(&self, port: PortId, cin: &PortConfig, vlan: u16, kind: FloodKind) {
        let targets: Vec<(PortId, Egress)> = self.bridge.flood(port, vlan, kind).collect();
        for &(out, egress) in &targets {
            assert!(
                out != port || cin.flags.hairpin,
                "flooded back out of ingress port {port} without hairpin"
            );
            let cout = self
                .cfg(out)
                .expect("flooded to a port that is not attached");
            assert_eq!(
                Some(egress),
                egress_of(&cout.vlan, vlan),
                "flood egress on {out}"
            );
            assert!(cout.flags.floods(kind), "port {out} does not take {kind:?}");
            assert!(!cout.mirror_dest, "flooded to mirror output {out}");
            assert!(
                !(cin.flags.isolated && cout.flags.isolated),
                "isolated to isolated"
            );
            if let FloodKind::LinkLocal(last) = kind {
                assert!(cout.link_local.contains(last));
            }
        }
        let expected = self
            .bridge
            .ports()
            .filter(|&p| {
                let c = self.cfg(p).expect("listed");
                (p != port || c.flags.hairpin)
                    && c.flags.floods(kind)
                    && !c.mirror_dest
                    && !(cin.flags.isolated && c.flags.isolated)
                    && egress_of(&c.vlan, vlan).is_some()
                    && match kind {
                        FloodKind::LinkLocal(last) => c.link_local.contains(last),
                        _ => true,
                    }
            })
            .count();
        assert_eq!(targets.len(), expected, "flood to every port that takes it");
    }

    fn check_drop(
        &self,
        port: PortId,
        cin: &PortConfig,
        vlan: u16,
        dst: MacAddr,
        reason: DropReason,
    ) {
        let sec = &cin.security;
        let out = self.bridge.fdb().lookup(vlan, dst);
        match reason {
            DropReason::Locked => assert!(sec.locked),
            DropReason::MacLimit => assert!(sec.max_macs.is_some()),
            DropReason::MacFlap => assert!(self.bridge.config().mac_move.is_some()),
            DropReason::Storm => {
                let s = sec.storm;
                assert!(s.broadcast.is_some() || s.multicast.is_some() || s.unknown.is_some());
            }
            DropReason::ReservedDest => {
                assert!(dst.is_link_local() && !cin.link_local.contains(dst.0[5]));
            }
            DropReason::SamePort => {
                assert!(
                    !cin.flags.hairpin && out == Some(port),
                    "same_port to {out:?}"
                );
            }
            DropReason::MirrorPort => {
                let to = out.and_then(|p| self.cfg(p)).expect("a known destination");
                assert!(to.mirror_dest, "mirror_port drop to {out:?}");
            }
            DropReason::Isolated => {
                let to = out.and_then(|p| self.cfg(p)).expect("a known destination");
                assert!(cin.flags.isolated && to.flags.isolated);
            }
            DropReason::VlanFiltered => {
                // Admitted, so the destination's port is not in the VLAN.
                let to = if dst.is_broadcast() {
                    self.bridge
                        .ports()
                        .find(|&p| self.cfg(p).is_some_and(|c| c.local))
                } else {
                    out
                };
                let to = to.expect("a destination port");
                assert_eq!(self.bridge.egress(to, vlan), None);
            }
            other => panic!("frame admitted on port {port} then dropped as {other:?}"),
        }
    }

    fn check_alert(&self, port: PortId, cin: &PortConfig, vlan: u16, src: MacAddr, alert: Alert) {
        let sec = &cin.security;
        match alert {
            Alert::MacLimit { port: p, limit } => {
                assert_eq!((p, Some(limit)), (port, sec.max_macs));
            }
            Alert::Locked {
                port: p,
                vlan: v,
                mac,
            } => {
                assert_eq!((p, v, mac), (port, vlan, src));
                assert!(sec.locked && sec.mab);
                let entry = self.bridge.fdb().get(vlan, src);
                assert_eq!(
                    entry,
                    Some((port, Mark::Locked, false)),
                    "MAB left a locked entry"
                );
                assert_eq!(
                    self.bridge.fdb().lookup(vlan, src),
                    None,
                    "locked entries never forward"
                );
            }
            Alert::StormBlocked { port: p, .. } => {
                assert_eq!(p, port);
                assert_eq!(sec.storm_action, StormAction::Block);
                assert!(
                    !self.cfg(port).expect("attached").link.rx(),
                    "blocked port takes frames"
                );
            }
            Alert::MacFlap {
                vlan: v,
                mac,
                home,
                port: p,
            } => {
                assert_eq!((v, mac, p), (vlan, src, port));
                assert_ne!(
                    home, port,
                    "a frame from the port {src} is pinned to dropped"
                );
                assert!(self.bridge.config().mac_move.is_some());
                assert_eq!(
                    self.bridge.fdb().lookup(vlan, src),
                    Some(home),
                    "pinned home"
                );
            }
        }
    }

    /// What holds after every step: the tables within their bounds, entries only on attached
    /// ports, learned entries only in VLANs their port is in, `max-macs` kept.
    fn check_tables(&self) {
        let fdb = self.bridge.fdb();
        let capacity = self.bridge.config().mac_table_size;
        assert_eq!(fdb.capacity(), capacity);
        let arp: Vec<ArpEntry> = self.bridge.arp().entries(self.now).collect();
        assert!(
            fdb.len() <= capacity,
            "MAC table over its cap of {capacity}: {} entries, {} static",
            fdb.len(),
            fdb.static_len()
        );
        assert!(
            arp.len() <= capacity,
            "ARP table over its cap of {capacity}: {arp:?}"
        );
        for e in fdb.entries(self.now) {
            let cfg = self.cfg(e.port);
            assert!(cfg.is_some(), "MAC entry {e:?} on a port that is gone");
            if e.age.is_some() {
                assert!(
                    self.bridge.egress(e.port, e.vlan).is_some(),
                    "learned entry {e:?} in a VLAN its port is not in ({:?})",
                    cfg.map(|c| &c.vlan)
                );
            }
        }
        for e in self.bridge.arp().entries(self.now) {
            assert!(
                self.cfg(e.port).is_some(),
                "ARP binding {e:?} on a port that is gone"
            );
        }
        for e in fdb.entries(self.now) {
            // A locked port holds static entries and MAB's locked ones: nothing that forwards
            // without an operator's say.
            let locked = self.cfg(e.port).is_some_and(|c| c.security.locked);
            let unauthorised = locked && e.age.is_some() && e.mark == Mark::Plain;
            assert!(
                !unauthorised,
                "locked port {} holds learned entry {e:?}",
                e.port
            );
        }
        for (i, &kept) in self.limit_kept.iter().enumerate() {
            let port = PortId(i as u16);
            if let Some(limit) = self.cfg(port).and_then(|c| c.security.max_macs)
                && kept
            {
                let entries: Vec<FdbEntry> =
                    fdb.entries(self.now).filter(|e| e.port == port).collect();
                assert!(
                    entries.len() <= limit as usize,
                    "port {port} holds {} MACs, max-macs={limit}: {entries:?}",
                    entries.len()
                );
            }
        }
    }
}

/// Frames and operator actions on a bridge with 2 to 5 ports of mixed VLAN modes, flags, ARP
/// guard and suppression, port security and storm control, and maybe the switch's own port,
/// with a small MAC table. Checks every verdict against the ingress port's settings and the
/// tables, and the tables after every step.
pub fn bridge(data: &[u8]) {
    let mut inp = Input(data);
    let opts = inp.u8();
    let config = BridgeConfig {
        mac_table_size: 1 + inp.below(16),
        mac_ageing: 1 + inp.below(30) as u32,
        arp_suppress: opts & 1 != 0,
        mac_move: (opts & 2 == 0).then(|| MoveLimit {
            moves: 1 + inp.below(4) as u32,
            window: 1 + inp.below(8) as u32,
            hold: 1 + inp.below(16) as u32,
        }),
    };
    let mut run = Run {
        bridge: Bridge::new(config),
        now: Duration::ZERO,
        ports: 2 + inp.below(4),
        limit_kept: Vec::new(),
    };
    for i in 0..run.ports {
        let local = i + 1 == run.ports && opts & 4 != 0;
        let cfg = port_config(&mut inp, local);
        run.limit_kept.push(true);
        assert_eq!(run.bridge.attach(cfg), Ok(PortId(i as u16)));
    }
    for _ in 0..256 {
        if inp.is_empty() {
            break;
        }
        run.now += match inp.below(4) {
            0 => Duration::ZERO,
            1 => Duration::from_millis(inp.u8().into()),
            2 => Duration::from_millis(100 * u64::from(inp.u8())),
            _ => Duration::from_secs(inp.u8().into()),
        };
        match inp.below(16) {
            0..=9 => {
                // One past the last port: a port that is not attached.
                let port = PortId(inp.below(run.ports + 1) as u16);
                let frame = frame(&mut inp);
                run.ingress(port, &frame);
            }
            10 => {
                let port = run.port(&mut inp);
                let local = run.cfg(port).is_some_and(|c| c.local);
                let mut cfg = port_config(&mut inp, local);
                let old = run.cfg(port).cloned().expect("attached");
                if inp.bit() {
                    // A port set that changes the flags only, as most do.
                    cfg.vlan = old.vlan.clone();
                }
                run.limit_kept[port.index()] = false;
                assert!(run.bridge.set_port_config(port, cfg.clone()));
                let learned = run.bridge.fdb().port_learned(port);
                if old.vlan != cfg.vlan || (!old.security.locked && cfg.security.locked) {
                    assert_eq!(
                        learned, 0,
                        "learned entries kept over a VLAN change or a lock"
                    );
                }
            }
            11 => {
                let port = PortId(inp.below(run.ports + 1) as u16);
                let vlan = inp.pick(&[0, 1, 10, 20, 100, 4094]);
                let mac = mac(&mut inp);
                let fdb = run.bridge.fdb();
                let full = fdb.len() >= fdb.capacity() && fdb.static_len() == fdb.len();
                match run.bridge.add_static(port, vlan, mac) {
                    Ok(()) => {
                        let entry = run.bridge.fdb().get(vlan, mac);
                        assert_eq!(entry, Some((port, Mark::Plain, true)));
                        run.limit_kept[port.index()] = false;
                    }
                    Err(StaticError::NoSuchPort) => assert!(run.cfg(port).is_none()),
                    Err(StaticError::NotUnicast(m)) => {
                        assert!(m == mac && !mac.is_learnable_source());
                    }
                    Err(StaticError::TableFull(_)) => assert!(full, "refused with room left"),
                }
            }
            12 => {
                run.bridge.tick(run.now);
                let ageing = run.bridge.config().mac_ageing;
                for e in run.bridge.fdb().entries(run.now) {
                    assert!(
                        e.age.is_none_or(|a| a <= ageing),
                        "{e:?} outlived {ageing} s"
                    );
                }
                for e in run.bridge.arp().entries(run.now) {
                    assert!(
                        e.age.is_none_or(|a| a <= ageing),
                        "{e:?} outlived {ageing} s"
                    );
                }
            }
            13 => {
                let port = run.port(&mut inp);
                let local = run.cfg(port).is_some_and(|c| c.local);
                assert!(run.bridge.remove_port(port).is_some());
                assert_eq!(
                    run.bridge.fdb().port_len(port),
                    0,
                    "entries left on a removed port"
                );
                run.check_tables();
                let cfg = port_config(&mut inp, local);
                assert_eq!(
                    run.bridge.attach(cfg),
                    Ok(port),
                    "the lowest free number again"
                );
                run.limit_kept[port.index()] = true;
            }
            14 => {
                let port = PortId(inp.below(run.ports + 1) as u16);
                let vlan = inp.pick(&[0, 1, 10, 20, 4094]);
                let (ip, mac) = (inp.pick(&IPS), mac(&mut inp));
                match run.bridge.add_arp_static(port, vlan, ip, mac) {
                    Ok(()) => assert_eq!(run.bridge.arp().lookup(vlan, ip), Some((mac, port))),
                    Err(StaticError::NoSuchPort) => assert!(run.cfg(port).is_none()),
                    Err(StaticError::NotUnicast(_)) => assert!(!mac.is_learnable_source()),
                    Err(StaticError::TableFull(_)) => {}
                }
            }
            _ => {
                let config = BridgeConfig {
                    mac_table_size: 1 + inp.below(16),
                    mac_ageing: 1 + inp.below(30) as u32,
                    arp_suppress: inp.bit(),
                    mac_move: run.bridge.config().mac_move,
                };
                let before = run.bridge.config();
                let arp_statics = run
                    .bridge
                    .arp()
                    .entries(run.now)
                    .filter(|e| e.age.is_none())
                    .count();
                let statics = run.bridge.fdb().static_len().max(arp_statics);
                match run.bridge.set_config(config) {
                    Ok(()) => assert_eq!(run.bridge.config(), config),
                    Err(e) => {
                        assert_eq!((e.size, e.statics), (config.mac_table_size, statics));
                        assert!(e.size < e.statics);
                        assert_eq!(
                            run.bridge.config(),
                            before,
                            "a refused size changes nothing"
                        );
                    }
                }
            }
        }
        run.check_tables();
    }
}
