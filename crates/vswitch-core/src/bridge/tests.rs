//! Tests of the forwarding decisions, with frames built byte by byte.

use super::*;

/// Attaching cannot fail in these tests: they have a handful of ports.
impl Bridge {
    fn add_port(&mut self) -> PortId {
        self.attach(VlanMode::All).unwrap()
    }

    fn add_port_with(&mut self, config: impl Into<PortConfig>) -> PortId {
        self.attach(config).unwrap()
    }
}

fn forward(port: PortId, vlan: u16, egress: Egress) -> Verdict {
    Verdict::Forward { port, vlan, egress }
}

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0xab);
    f
}

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
const C: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc];
const BCAST: [u8; 6] = [0xff; 6];

fn bridge_with(ports: usize, config: BridgeConfig) -> (Bridge, Vec<PortId>) {
    let mut b = Bridge::new(config);
    let ids = (0..ports).map(|_| b.add_port()).collect();
    (b, ids)
}

fn t(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[test]
fn the_65537th_port_is_refused() {
    let mut b = Bridge::new(BridgeConfig::default());
    for i in 0..=u16::MAX {
        assert_eq!(b.add_port(), PortId(i));
    }
    assert_eq!(b.attach(VlanMode::All), Err(TooManyPorts));
    b.remove_port(PortId(7));
    assert_eq!(b.attach(VlanMode::All), Ok(PortId(7)));
}

#[test]
fn unknown_unicast_floods_then_known_unicast_goes_to_one_port() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Unknown
        }
    );
    assert_eq!(
        b.ingress(p[1], &frame(A, B), t(0)),
        forward(p[0], 0, Egress::Untagged)
    );
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(0)),
        forward(p[1], 0, Egress::Untagged)
    );
    assert_eq!(b.fdb().len(), 2);
}

#[test]
fn broadcast_and_multicast_flood_to_all_but_the_ingress() {
    let (mut b, p) = bridge_with(4, BridgeConfig::default());
    b.ingress(p[1], &frame(A, B), t(0));
    assert_eq!(
        b.ingress(p[1], &frame(BCAST, B), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    let ipv4_mcast = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    assert_eq!(
        b.ingress(p[1], &frame(ipv4_mcast, B), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Multicast
        }
    );
    let ipv6_mcast = [0x33, 0x33, 0, 0, 0, 1];
    assert_eq!(
        b.ingress(p[1], &frame(ipv6_mcast, B), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Multicast
        }
    );
    let targets: Vec<_> = b.flood_targets(p[1], 0, FloodKind::Broadcast).collect();
    assert_eq!(targets, vec![p[0], p[2], p[3]]);
}

#[test]
fn never_reflects_to_the_ingress_port() {
    let (mut b, p) = bridge_with(2, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[0], &frame(BCAST, C), t(0));
    // A and C share port 0 (a hub or a VM with two MACs): A to C stays there.
    assert_eq!(
        b.ingress(p[0], &frame(C, A), t(0)),
        Verdict::Drop(DropReason::SamePort)
    );
    assert_eq!(b.counters(p[0]).unwrap().drops(DropReason::SamePort), 1);
    assert!(
        b.flood_targets(p[0], 0, FloodKind::Broadcast)
            .all(|q| q != p[0])
    );
}

#[test]
fn reserved_destinations_are_dropped_by_default() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    for last in 0x00..=0x0f {
        let dst = [0x01, 0x80, 0xc2, 0, 0, last];
        assert_eq!(
            b.ingress(p[0], &frame(dst, A), t(0)),
            Verdict::Drop(DropReason::ReservedDest),
            "01:80:c2:00:00:{last:02x}"
        );
    }
    // 01:80:c2:00:00:10 and up are ordinary multicast.
    let dst = [0x01, 0x80, 0xc2, 0, 0, 0x10];
    assert_eq!(
        b.ingress(p[0], &frame(dst, A), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Multicast
        }
    );
    assert_eq!(
        b.counters(p[0]).unwrap().drops(DropReason::ReservedDest),
        16
    );
    // The sender was still learned, as the kernel bridge does.
    assert_eq!(b.fdb().lookup(0, MacAddr(A)), Some(p[0]));
}

#[test]
fn invalid_sources_are_dropped_and_not_learned() {
    let (mut b, p) = bridge_with(2, BridgeConfig::default());
    for src in [BCAST, [0x01, 0, 0x5e, 0, 0, 1], [0; 6]] {
        assert_eq!(
            b.ingress(p[0], &frame(B, src), t(0)),
            Verdict::Drop(DropReason::InvalidSource)
        );
    }
    assert!(b.fdb().is_empty());
    assert_eq!(
        b.counters(p[0]).unwrap().drops(DropReason::InvalidSource),
        3
    );
}

#[test]
fn short_frames_are_malformed_drops() {
    let (mut b, p) = bridge_with(2, BridgeConfig::default());
    for len in [0, 1, 6, 13] {
        assert_eq!(
            b.ingress(p[0], &frame(B, A)[..len], t(0)),
            Verdict::Drop(DropReason::Malformed)
        );
    }
    // 14 bytes is a (tiny) Ethernet frame: the switch forwards what it cannot prove wrong.
    assert_eq!(
        b.ingress(p[0], &frame(B, A)[..14], t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Unknown
        }
    );
    let s = b.counters(p[0]).unwrap();
    assert_eq!((s.frames, s.drops(DropReason::Malformed)), (5, 4));
}

#[test]
fn a_mac_that_moves_is_followed() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[2], &frame(BCAST, A), t(1));
    assert_eq!(
        b.ingress(p[1], &frame(A, B), t(1)),
        forward(p[2], 0, Egress::Untagged)
    );
    assert_eq!(b.fdb().counters().moved, 1);
}

#[test]
fn entries_age_out_and_flooding_resumes() {
    let config = BridgeConfig {
        mac_ageing: 10,
        ..BridgeConfig::default()
    };
    let (mut b, p) = bridge_with(3, config);
    b.ingress(p[1], &frame(BCAST, B), t(0));
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(5)),
        forward(p[1], 0, Egress::Untagged)
    );
    assert_eq!(b.tick(t(10)), 0);
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(10)),
        forward(p[1], 0, Egress::Untagged)
    );
    assert_eq!(b.tick(t(11)), 1);
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(11)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Unknown
        }
    );
    assert_eq!(b.fdb().counters().expired, 1);
}

#[test]
fn removing_a_port_forgets_its_macs_and_reuses_its_number() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[1], &frame(BCAST, B), t(0));
    b.ingress(p[2], &frame(BCAST, C), t(0));
    let last = b.remove_port(p[1]).unwrap();
    assert_eq!(last.frames, 1);
    assert_eq!(b.remove_port(p[1]), None);
    assert_eq!(b.fdb().lookup(0, MacAddr(B)), None);
    assert_eq!(b.fdb().lookup(0, MacAddr(C)), Some(p[2]));
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Unknown
        }
    );
    assert_eq!(
        b.flood_targets(p[0], 0, FloodKind::Unknown)
            .collect::<Vec<_>>(),
        vec![p[2]]
    );
    assert_eq!(
        b.ingress(p[1], &frame(B, A), t(1)),
        Verdict::Drop(DropReason::PortGone)
    );
    assert_eq!(b.add_port(), p[1]);
    assert_eq!(b.counters(p[1]).unwrap().frames, 0);
}

#[test]
fn counters_follow_rx() {
    let (mut b, p) = bridge_with(2, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[0], &frame(B, A)[..20], t(0));
    let s0 = b.counters(p[0]).unwrap();
    assert_eq!((s0.frames, s0.bytes), (2, 80));
    assert_eq!(b.counters(p[1]).unwrap(), &Counters::default());
}

fn tagged(dst: [u8; 6], src: [u8; 6], tci: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(64, 0xab);
    f
}

fn trunk(list: &str, native: Option<u16>) -> VlanMode {
    VlanMode::Trunk {
        vlans: Box::new(list.parse().unwrap()),
        native,
    }
}

/// Ports: 0, 1 access VLAN 10; 2, 3 access VLAN 20; 4 trunk 10,20; 5 no VLAN config.
fn vlan_bridge() -> (Bridge, Vec<PortId>) {
    let mut b = Bridge::new(BridgeConfig::default());
    let modes = [
        VlanMode::Access(10),
        VlanMode::Access(10),
        VlanMode::Access(20),
        VlanMode::Access(20),
        trunk("10,20", None),
        VlanMode::All,
    ];
    let ids = modes.into_iter().map(|m| b.add_port_with(m)).collect();
    (b, ids)
}

#[test]
fn flooding_stays_inside_the_vlan() {
    let (mut b, p) = vlan_bridge();
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, A), t(0)),
        Verdict::Flood {
            vlan: 10,
            kind: FloodKind::Broadcast
        }
    );
    let targets: Vec<_> = b.flood_targets(p[0], 10, FloodKind::Broadcast).collect();
    assert_eq!(targets, vec![p[1], p[4], p[5]]);
    assert_eq!(
        b.ingress(p[2], &frame(BCAST, B), t(0)),
        Verdict::Flood {
            vlan: 20,
            kind: FloodKind::Broadcast
        }
    );
    let targets: Vec<_> = b.flood_targets(p[2], 20, FloodKind::Broadcast).collect();
    assert_eq!(targets, vec![p[3], p[4], p[5]]);
    // Untagged frames on the unconfigured port are VLAN 0: no access or trunk port carries it.
    assert_eq!(
        b.ingress(p[5], &frame(BCAST, C), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    assert_eq!(b.flood_targets(p[5], 0, FloodKind::Broadcast).count(), 0);
}

#[test]
fn how_each_port_sends_each_vlan() {
    let (b, p) = vlan_bridge();
    assert_eq!(b.egress(p[0], 10), Some(Egress::Untagged));
    assert_eq!(b.egress(p[0], 20), None);
    assert_eq!(b.egress(p[4], 10), Some(Egress::Tagged));
    assert_eq!(b.egress(p[4], 0), None);
    assert_eq!(b.egress(p[5], 20), Some(Egress::Tagged));
    assert_eq!(b.egress(p[5], 0), Some(Egress::Untagged));
}

#[test]
fn learning_is_per_vlan() {
    let (mut b, p) = vlan_bridge();
    // The same MAC lives behind port 0 in VLAN 10 and behind the trunk in VLAN 20.
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[4], &tagged(BCAST, A, 20), t(0));
    assert_eq!(b.fdb().lookup(10, MacAddr(A)), Some(p[0]));
    assert_eq!(b.fdb().lookup(20, MacAddr(A)), Some(p[4]));
    assert_eq!(b.fdb().counters().moved, 0);
    assert_eq!(
        b.ingress(p[2], &frame(A, B), t(0)),
        forward(p[4], 20, Egress::Tagged)
    );
    assert_eq!(
        b.ingress(p[4], &tagged(A, B, 10), t(0)),
        forward(p[0], 10, Egress::Untagged)
    );
}

#[test]
fn frames_outside_a_port_s_vlans_are_filtered() {
    let (mut b, p) = vlan_bridge();
    let drop = Verdict::Drop(DropReason::VlanFiltered);
    assert_eq!(
        b.ingress(p[0], &tagged(BCAST, A, 10), t(0)),
        drop,
        "tagged on access"
    );
    assert_eq!(
        b.ingress(p[4], &frame(BCAST, A), t(0)),
        drop,
        "untagged on trunk"
    );
    assert_eq!(
        b.ingress(p[4], &tagged(BCAST, A, 30), t(0)),
        drop,
        "VLAN not in trunk"
    );
    assert_eq!(
        b.ingress(p[5], &tagged(BCAST, A, 4095), t(0)),
        drop,
        "reserved VID"
    );
    assert_eq!(b.counters(p[4]).unwrap().drops(DropReason::VlanFiltered), 2);
    assert!(b.fdb().is_empty(), "filtered frames teach nothing");
    // A priority tag (VID 0, PCP 5) on an access port is untagged traffic of that VLAN.
    assert_eq!(
        b.ingress(p[0], &tagged(BCAST, A, 0xa000), t(0)),
        Verdict::Flood {
            vlan: 10,
            kind: FloodKind::Broadcast
        }
    );
    // A static entry on a port outside the frame's VLAN does not leak the frame there.
    b.add_static(p[2], 10, MacAddr(C)).unwrap();
    assert_eq!(b.ingress(p[1], &frame(C, B), t(0)), drop);
    // A frame claiming a tag too short to hold one is malformed.
    assert_eq!(
        b.ingress(p[5], &tagged(BCAST, A, 5)[..16], t(0)),
        Verdict::Drop(DropReason::Malformed)
    );
}

#[test]
fn changing_a_port_s_vlan_mode_forgets_what_it_learned() {
    let (mut b, p) = vlan_bridge();
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.add_static(p[0], 10, MacAddr(C)).unwrap();
    let access = PortConfig::from(VlanMode::Access(20));
    assert!(b.set_port_config(p[0], access));
    assert_eq!(b.vlan_mode(p[0]), Some(&VlanMode::Access(20)));
    assert_eq!(b.fdb().lookup(10, MacAddr(A)), None);
    assert_eq!(
        b.fdb().lookup(10, MacAddr(C)),
        Some(p[0]),
        "static entries stay"
    );
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, A), t(0)),
        Verdict::Flood {
            vlan: 20,
            kind: FloodKind::Broadcast
        }
    );
    assert!(!b.set_port_config(PortId(99), PortConfig::default()));
}

/// An Ethernet ARP frame: `op` 1 request or 2 reply.
fn arp_frame(
    dst: [u8; 6],
    op: u8,
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, op]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f
}

const IP_A: [u8; 4] = [10, 0, 0, 1];
const IP_B: [u8; 4] = [10, 0, 0, 2];

fn suppressing(ports: usize) -> (Bridge, Vec<PortId>) {
    bridge_with(
        ports,
        BridgeConfig {
            arp_suppress: true,
            ..BridgeConfig::default()
        },
    )
}

#[test]
fn arp_snooping_learns_bindings_per_vlan() {
    let (mut b, p) = vlan_bridge();
    b.ingress(p[0], &arp_frame(BCAST, 1, A, IP_A, [0; 6], IP_B), t(0));
    b.ingress(p[2], &arp_frame(BCAST, 1, B, IP_A, [0; 6], IP_B), t(0));
    let ip = std::net::Ipv4Addr::from(IP_A);
    assert_eq!(b.arp().lookup(10, ip), Some((MacAddr(A), p[0])));
    assert_eq!(b.arp().lookup(20, ip), Some((MacAddr(B), p[2])));
    assert_eq!(b.arp().counters().table.learned, 2);
}

#[test]
fn a_known_target_is_answered_on_the_requesters_port() {
    let (mut b, p) = suppressing(3);
    // B announces itself by answering someone; now the switch knows 10.0.0.2 is at B on p1.
    b.ingress(p[1], &arp_frame(C, 2, B, IP_B, C, [10, 0, 0, 3]), t(0));
    let request = arp_frame(BCAST, 1, A, IP_A, [0; 6], IP_B);
    let Verdict::Reply { vlan: 0, frame } = b.ingress(p[0], &request, t(1)) else {
        panic!("no reply")
    };
    assert_eq!(frame.as_bytes(), &arp_frame(A, 2, B, IP_B, A, IP_A)[..]);
    assert_eq!(b.arp().counters().suppressed, 1);
    // Unknown targets, probes and announcements are flooded as usual.
    let unknown = arp_frame(BCAST, 1, A, IP_A, [0; 6], [10, 0, 0, 9]);
    assert_eq!(
        b.ingress(p[0], &unknown, t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    let probe = arp_frame(BCAST, 1, A, [0; 4], [0; 6], IP_B);
    assert_eq!(
        b.ingress(p[0], &probe, t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    let announce = arp_frame(BCAST, 1, A, IP_A, [0; 6], IP_A);
    assert_eq!(
        b.ingress(p[0], &announce, t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    // A port may opt out.
    b.set_port_config(
        p[0],
        PortConfig {
            arp_suppress: Some(false),
            ..PortConfig::default()
        },
    );
    assert_eq!(
        b.ingress(p[0], &request, t(2)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
}

#[test]
fn without_suppression_requests_are_flooded() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[1], &arp_frame(C, 2, B, IP_B, C, [10, 0, 0, 3]), t(0));
    let request = arp_frame(BCAST, 1, A, IP_A, [0; 6], IP_B);
    assert_eq!(
        b.ingress(p[0], &request, t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
}

#[test]
fn the_guard_drops_forged_arp_only_on_guarded_ports() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[1], &arp_frame(BCAST, 1, B, IP_B, [0; 6], IP_A), t(0));
    let forged = arp_frame(BCAST, 2, C, IP_B, [0xff; 6], IP_B);
    // Unguarded: the forgery passes (and moves the binding).
    assert_eq!(
        b.ingress(p[2], &forged, t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    b.ingress(p[1], &arp_frame(BCAST, 1, B, IP_B, [0; 6], IP_A), t(2));
    b.set_port_config(
        p[2],
        PortConfig {
            arp_guard: true,
            ..PortConfig::default()
        },
    );
    let Verdict::Guarded(event) = b.ingress(p[2], &forged, t(3)) else {
        panic!("not guarded")
    };
    let ip = std::net::Ipv4Addr::from(IP_B);
    assert_eq!(b.arp().lookup(0, ip), Some((MacAddr(B), p[1])));
    assert_eq!(b.counters(p[2]).unwrap().drops(DropReason::ArpGuard), 1);
    assert_eq!(
        (event.port, event.holder, event.is_static),
        (p[2], (MacAddr(B), p[1]), false)
    );
    assert_eq!(
        b.fdb().lookup(0, MacAddr(C)),
        Some(p[2]),
        "learned before the guard"
    );
}

#[test]
fn a_static_binding_drops_forged_arp_on_any_port() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    let ip = std::net::Ipv4Addr::from(IP_B);
    b.add_arp_static(p[1], 0, ip, MacAddr(B)).unwrap();
    let forged = arp_frame(BCAST, 2, C, IP_B, [0xff; 6], IP_B);
    let Verdict::Guarded(event) = b.ingress(p[2], &forged, t(0)) else {
        panic!("unguarded port: not guarded")
    };
    assert_eq!(
        (event.port, event.holder, event.is_static),
        (p[2], (MacAddr(B), p[1]), true)
    );
    assert_eq!(b.arp().lookup(0, ip), Some((MacAddr(B), p[1])));
    let real = arp_frame(BCAST, 1, B, IP_B, [0; 6], IP_A);
    assert_eq!(
        b.ingress(p[1], &real, t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
}

/// A bridge whose ports have these flags.
fn flagged(flags: &[PortFlags]) -> (Bridge, Vec<PortId>) {
    let mut b = Bridge::new(BridgeConfig::default());
    let ids = flags
        .iter()
        .map(|&flags| {
            b.add_port_with(PortConfig {
                flags,
                ..PortConfig::default()
            })
        })
        .collect();
    (b, ids)
}

const PLAIN: PortFlags = PortFlags {
    learning: true,
    flood: true,
    mcast_flood: true,
    bcast_flood: true,
    isolated: false,
    hairpin: false,
};

#[test]
fn flood_flags_choose_which_kinds_leave_a_port() {
    let no_unknown = PortFlags {
        flood: false,
        ..PLAIN
    };
    let no_mcast = PortFlags {
        mcast_flood: false,
        ..PLAIN
    };
    let no_bcast = PortFlags {
        bcast_flood: false,
        ..PLAIN
    };
    let (mut b, p) = flagged(&[PLAIN, no_unknown, no_mcast, no_bcast]);
    let targets = |b: &Bridge, kind| b.flood_targets(p[0], 0, kind).collect::<Vec<_>>();
    assert_eq!(targets(&b, FloodKind::Unknown), [p[2], p[3]]);
    assert_eq!(targets(&b, FloodKind::Multicast), [p[1], p[3]]);
    assert_eq!(targets(&b, FloodKind::Broadcast), [p[1], p[2]]);
    // Known unicast still reaches a port that floods nothing unknown.
    b.ingress(p[1], &frame(BCAST, B), t(0));
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(0)),
        forward(p[1], 0, Egress::Untagged)
    );
}

#[test]
fn isolated_ports_reach_only_ports_that_are_not() {
    let isolated = PortFlags {
        isolated: true,
        ..PLAIN
    };
    let (mut b, p) = flagged(&[isolated, isolated, PLAIN]);
    assert_eq!(
        b.flood_targets(p[0], 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [p[2]]
    );
    assert_eq!(
        b.flood_targets(p[2], 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [p[0], p[1]]
    );
    b.ingress(p[1], &frame(BCAST, B), t(0));
    b.ingress(p[2], &frame(BCAST, C), t(0));
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(0)),
        Verdict::Drop(DropReason::Isolated)
    );
    assert_eq!(b.counters(p[0]).unwrap().drops(DropReason::Isolated), 1);
    assert_eq!(
        b.ingress(p[0], &frame(C, A), t(0)),
        forward(p[2], 0, Egress::Untagged)
    );
    assert_eq!(
        b.ingress(p[2], &frame(B, C), t(0)),
        forward(p[1], 0, Egress::Untagged)
    );
}

#[test]
fn hairpin_sends_frames_back_out_of_their_port() {
    let hairpin = PortFlags {
        hairpin: true,
        ..PLAIN
    };
    let (mut b, p) = flagged(&[hairpin, PLAIN]);
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[0], &frame(BCAST, C), t(0));
    assert_eq!(
        b.ingress(p[0], &frame(C, A), t(0)),
        forward(p[0], 0, Egress::Untagged)
    );
    assert_eq!(
        b.flood_targets(p[0], 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [p[0], p[1]]
    );
    // Only the port in hairpin mode reflects.
    assert_eq!(
        b.flood_targets(p[1], 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [p[0]]
    );
}

#[test]
fn a_port_without_learning_teaches_the_table_nothing() {
    let quiet = PortFlags {
        learning: false,
        ..PLAIN
    };
    let (mut b, p) = flagged(&[quiet, PLAIN]);
    b.ingress(p[0], &frame(BCAST, A), t(0));
    assert_eq!(b.fdb().len(), 0);
    assert_eq!(
        b.ingress(p[1], &frame(A, B), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Unknown
        }
    );
    // A static entry still sends frames there.
    b.add_static(p[0], 0, MacAddr(A)).unwrap();
    assert_eq!(
        b.ingress(p[1], &frame(A, B), t(0)),
        forward(p[0], 0, Egress::Untagged)
    );
}

#[test]
fn link_local_groups_pass_between_ports_that_both_allow_them() {
    let mut b = Bridge::new(BridgeConfig::default());
    let with = |set: &str| PortConfig {
        link_local: set.parse().unwrap(),
        ..PortConfig::default()
    };
    let p = [
        b.add_port_with(with("lldp")),
        b.add_port_with(with("lldp,lacp")),
        b.add_port_with(with("none")),
        b.add_port_with(with("all")),
    ];
    let lldp = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
    let lacp = [0x01, 0x80, 0xc2, 0, 0, 0x02];
    let kind = FloodKind::LinkLocal(0x0e);
    assert_eq!(
        b.ingress(p[0], &frame(lldp, A), t(0)),
        Verdict::Flood { vlan: 0, kind }
    );
    assert_eq!(
        b.flood_targets(p[0], 0, kind).collect::<Vec<_>>(),
        [p[1], p[3]]
    );
    // LACP in from a port that forwards only LLDP is dropped there.
    assert_eq!(
        b.ingress(p[0], &frame(lacp, A), t(0)),
        Verdict::Drop(DropReason::ReservedDest)
    );
    let kind = FloodKind::LinkLocal(0x02);
    assert_eq!(
        b.ingress(p[1], &frame(lacp, B), t(0)),
        Verdict::Flood { vlan: 0, kind }
    );
    assert_eq!(b.flood_targets(p[1], 0, kind).collect::<Vec<_>>(), [p[3]]);
    // Pause is never forwarded, whatever the setting.
    let pause = [0x01, 0x80, 0xc2, 0, 0, 0x01];
    assert_eq!(
        b.ingress(p[3], &frame(pause, C), t(0)),
        Verdict::Drop(DropReason::ReservedDest)
    );
}

#[test]
fn a_port_down_for_receive_takes_nothing_from_its_host() {
    let mut b = Bridge::new(BridgeConfig::default());
    let down = b.add_port_with(PortConfig {
        link: LinkState::RxDown,
        ..PortConfig::default()
    });
    let up = b.add_port();
    assert_eq!(
        b.ingress(down, &frame(BCAST, A), t(0)),
        Verdict::Drop(DropReason::AdminDown)
    );
    assert_eq!(b.fdb().len(), 0, "nothing learned from a port that is down");
    assert_eq!(b.counters(down).unwrap().drops(DropReason::AdminDown), 1);
    // Its transmit side is the edge's business: it is still a flood target here.
    assert_eq!(
        b.flood_targets(up, 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [down]
    );
}

fn secured(security: Security) -> PortConfig {
    PortConfig {
        security,
        ..PortConfig::default()
    }
}

#[test]
fn a_locked_port_passes_only_static_sources_and_mab_leaves_locked_entries() {
    let mut b = Bridge::new(BridgeConfig::default());
    let locked = Security {
        locked: true,
        ..Security::default()
    };
    let p = [b.add_port(), b.add_port()];
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.set_port_config(p[0], secured(locked));
    assert_eq!(
        b.fdb().lookup(0, MacAddr(A)),
        None,
        "locking forgets what was learned"
    );
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, A), t(0)),
        Verdict::Drop(DropReason::Locked)
    );
    assert_eq!(b.fdb().len(), 0);
    b.add_static(p[0], 0, MacAddr(A)).unwrap();
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, A), t(0)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    let mab = Security {
        mab: true,
        ..locked
    };
    b.set_port_config(p[0], secured(mab));
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, C), t(1)),
        Verdict::Alert(Alert::Locked {
            port: p[0],
            vlan: 0,
            mac: MacAddr(C)
        })
    );
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, C), t(1)),
        Verdict::Drop(DropReason::Locked),
        "said once"
    );
    assert_eq!(b.fdb().get(0, MacAddr(C)).unwrap().1, Mark::Locked);
    assert_eq!(b.counters(p[0]).unwrap().drops(DropReason::Locked), 3);
    // Frames to a locked entry are not forwarded to it: they flood.
    assert_eq!(
        b.ingress(p[1], &frame(C, B), t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Unknown
        }
    );
}

#[test]
fn max_macs_keeps_known_sources_and_drops_new_ones() {
    let mut b = Bridge::new(BridgeConfig::default());
    let limited = Security {
        max_macs: Some(2),
        ..Security::default()
    };
    let p = [b.add_port_with(secured(limited)), b.add_port()];
    let src = |n: u8| [0x02, 0, 0, 0, 1, n];
    b.ingress(p[0], &frame(BCAST, src(1)), t(0));
    b.ingress(p[0], &frame(BCAST, src(2)), t(0));
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, src(3)), t(0)),
        Verdict::Alert(Alert::MacLimit {
            port: p[0],
            limit: 2
        })
    );
    for n in 4..10 {
        assert_eq!(
            b.ingress(p[0], &frame(BCAST, src(n)), t(0)),
            Verdict::Drop(DropReason::MacLimit)
        );
    }
    assert!(matches!(
        b.ingress(p[0], &frame(BCAST, src(1)), t(1)),
        Verdict::Flood { .. }
    ));
    assert_eq!(b.fdb().port_len(p[0]), 2);
    assert_eq!(b.counters(p[0]).unwrap().drops(DropReason::MacLimit), 7);
}

#[test]
fn a_sticky_port_keeps_what_it_learns() {
    let mut b = Bridge::new(BridgeConfig::default());
    let sticky = Security {
        sticky: true,
        ..Security::default()
    };
    let p = [b.add_port_with(secured(sticky)), b.add_port()];
    // Learned before the port turned sticky, then seen again: sticky too.
    b.set_port_config(p[1], PortConfig::default());
    b.ingress(p[1], &frame(BCAST, C), t(0));
    b.set_port_config(p[1], secured(sticky));
    b.ingress(p[1], &frame(BCAST, C), t(1));
    assert_eq!(b.fdb().get(0, MacAddr(C)), Some((p[1], Mark::Sticky, true)));
    b.ingress(p[0], &frame(BCAST, A), t(0));
    assert_eq!(b.flush(None), 0);
    assert_eq!(b.fdb().get(0, MacAddr(A)), Some((p[0], Mark::Sticky, true)));
    b.tick(t(10_000));
    assert_eq!(b.fdb().lookup(0, MacAddr(A)), Some(p[0]));
}

#[test]
fn storm_limits_drop_past_the_rate_or_block_the_port() {
    let mut b = Bridge::new(BridgeConfig::default());
    let limit = Security {
        storm: StormLimits {
            broadcast: Some(10),
            ..StormLimits::default()
        },
        ..Security::default()
    };
    let p = [b.add_port_with(secured(limit)), b.add_port()];
    let passed = (0..100)
        .filter(|_| {
            matches!(
                b.ingress(p[0], &frame(BCAST, A), t(5)),
                Verdict::Flood { .. }
            )
        })
        .count();
    assert_eq!(passed, 1, "a tenth of a second's worth");
    assert_eq!(b.counters(p[0]).unwrap().drops(DropReason::Storm), 99);
    // Unicast is not broadcast.
    b.ingress(p[1], &frame(BCAST, B), t(5));
    assert!(matches!(
        b.ingress(p[0], &frame(B, A), t(5)),
        Verdict::Forward { .. }
    ));
    let block = Security {
        storm_action: StormAction::Block,
        ..limit
    };
    b.set_port_config(p[0], secured(block));
    assert_eq!(
        b.ingress(p[0], &frame(BCAST, A), t(5)),
        Verdict::Alert(Alert::StormBlocked {
            port: p[0],
            kind: FloodKind::Broadcast
        })
    );
    assert_eq!(b.port_config(p[0]).unwrap().link, LinkState::RxDown);
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(6)),
        Verdict::Drop(DropReason::AdminDown)
    );
}

#[test]
fn a_loop_is_damped_by_pinning_the_flapping_mac() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    // The broadcast comes back on the two looped ports, again and again.
    let mut alerts = Vec::new();
    for i in 0..40 {
        let looped = p[1 + i % 2];
        if let Verdict::Alert(a) = b.ingress(looped, &frame(BCAST, A), t(0)) {
            alerts.push(a);
        }
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(matches!(alerts[0], Alert::MacFlap { home, .. } if home == p[0]));
    assert_eq!(b.fdb().lookup(0, MacAddr(A)), Some(p[0]));
    let flaps = |b: &Bridge, i: usize| b.counters(p[i]).unwrap().drops(DropReason::MacFlap);
    assert!(flaps(&b, 1) + flaps(&b, 2) >= 28);
}

/// A frame with an outer tag `outer` (TPID 0x8100) and an inner tag of `tpid` carrying VID
/// `inner`: the double-tagging probe.
fn double_tagged(outer: Option<u16>, tpid: u16, inner: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(68);
    f.extend_from_slice(&BCAST);
    f.extend_from_slice(&A);
    if let Some(tci) = outer {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&inner.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(68, 0xab);
    f
}

#[test]
fn a_second_tag_behind_an_access_or_native_classification_is_dropped() {
    let mut b = Bridge::new(BridgeConfig::default());
    let p = [
        b.add_port_with(VlanMode::Access(10)),
        b.add_port_with(trunk("10,20", Some(10))),
        b.add_port_with(VlanMode::All),
        b.add_port_with(trunk("10,20", None)),
    ];
    let drop = Verdict::Drop(DropReason::VlanFiltered);
    // The probe: priority-tagged, then VLAN 20; and its variants with S-tags and none.
    for tpid in [0x8100, 0x88a8, 0x9100] {
        for outer in [Some(0x0000), Some(0xa000), None] {
            if outer.is_none() && tpid == 0x8100 {
                continue; // a plain tagged frame: refused on an access port anyway
            }
            let probe = double_tagged(outer, tpid, 20);
            assert_eq!(
                b.ingress(p[0], &probe, t(0)),
                drop,
                "access {outer:?} {tpid:#x}"
            );
            assert_eq!(
                b.ingress(p[1], &probe, t(0)),
                drop,
                "native {outer:?} {tpid:#x}"
            );
        }
    }
    assert!(b.counters(p[0]).unwrap().drops(DropReason::VlanFiltered) >= 8);
    // Ports without VLAN settings pass stacked tags as they are; a trunk's tagged frames may
    // carry customer tags (QinQ).
    assert!(matches!(
        b.ingress(p[2], &double_tagged(Some(0), 0x8100, 20), t(0)),
        Verdict::Flood { .. }
    ));
    assert!(matches!(
        b.ingress(p[3], &double_tagged(Some(10), 0x8100, 20), t(0)),
        Verdict::Flood { vlan: 10, .. }
    ));
    // A single priority tag is still untagged traffic of the access VLAN.
    assert!(matches!(
        b.ingress(p[0], &tagged(BCAST, A, 0xa000), t(0)),
        Verdict::Flood { vlan: 10, .. }
    ));
}

#[test]
fn requests_for_the_switchs_own_address_go_to_its_own_port() {
    let (mut b, p) = suppressing(2);
    let own = b.add_port_with(PortConfig {
        local: true,
        ..PortConfig::default()
    });
    // The own port announces its address, as the switch's stack does.
    b.ingress(
        own,
        &arp_frame(BCAST, 2, C, [10, 0, 0, 254], [0; 6], [10, 0, 0, 254]),
        t(0),
    );
    let request = arp_frame(BCAST, 1, A, IP_A, [0; 6], [10, 0, 0, 254]);
    // Not answered on its behalf: its stack must see who asks, to reply to their pings.
    assert_eq!(
        b.ingress(p[0], &request, t(1)),
        forward(own, 0, Egress::Untagged)
    );
    assert_eq!(b.arp().counters().suppressed, 0);
}

#[test]
fn a_mirror_output_takes_nothing_in_and_is_never_flooded_to() {
    let mut b = Bridge::new(BridgeConfig::default());
    let out = b.add_port_with(PortConfig {
        mirror_dest: true,
        ..PortConfig::default()
    });
    let p = [b.add_port(), b.add_port()];
    assert_eq!(
        b.ingress(out, &frame(BCAST, A), t(0)),
        Verdict::Drop(DropReason::MirrorPort)
    );
    assert_eq!(b.fdb().len(), 0, "learns nothing");
    assert_eq!(
        b.flood_targets(p[0], 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [p[1]]
    );
}

#[test]
fn damping_pins_only_to_a_home_that_may_still_hold_the_mac() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    // The loop starts: the MAC leaves its home...
    b.ingress(p[1], &frame(BCAST, A), t(0));
    // ...and home leaves VLAN 0: the MAC is no longer pinned there.
    b.set_port_config(p[0], trunk("10", None).into());
    let mut alerts = 0;
    for i in 0..40 {
        if let Verdict::Alert(_) = b.ingress(p[2 - i % 2], &frame(BCAST, A), t(0)) {
            alerts += 1;
        }
    }
    assert_eq!(alerts, 1, "damped between the looped ports");
    let home = b.fdb().lookup(0, MacAddr(A)).expect("pinned");
    assert_ne!(home, p[0], "not to the port that left the VLAN");
    // A frame from the home it is pinned to always passes.
    assert!(matches!(
        b.ingress(home, &frame(BCAST, A), t(0)),
        Verdict::Flood { .. }
    ));
}

#[test]
fn the_own_port_hears_requests_only_from_ports_that_may_reach_it() {
    let (mut b, p) = suppressing(2);
    let isolated = PortFlags {
        isolated: true,
        ..PortFlags::default()
    };
    let own = b.add_port_with(PortConfig {
        local: true,
        flags: isolated,
        ..PortConfig::default()
    });
    b.ingress(
        own,
        &arp_frame(BCAST, 2, C, [10, 0, 0, 254], [0; 6], [10, 0, 0, 254]),
        t(0),
    );
    b.set_port_config(
        p[0],
        PortConfig {
            flags: isolated,
            ..PortConfig::default()
        },
    );
    let request = arp_frame(BCAST, 1, A, IP_A, [0; 6], [10, 0, 0, 254]);
    // Isolated from the own port: flooded like any broadcast, which passes it by.
    assert_eq!(
        b.ingress(p[0], &request, t(1)),
        Verdict::Flood {
            vlan: 0,
            kind: FloodKind::Broadcast
        }
    );
    assert_eq!(
        b.flood_targets(p[0], 0, FloodKind::Broadcast)
            .collect::<Vec<_>>(),
        [p[1]]
    );
    assert_eq!(
        b.ingress(p[1], &request, t(1)),
        forward(own, 0, Egress::Untagged)
    );
}

#[test]
fn a_mirror_output_forgets_its_hosts_and_sends_them_nothing() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[2], &frame(BCAST, C), t(0));
    b.add_static(p[2], 0, MacAddr(B)).unwrap();
    let out = PortConfig {
        mirror_dest: true,
        ..PortConfig::default()
    };
    b.set_port_config(p[2], out);
    assert_eq!(b.fdb().lookup(0, MacAddr(C)), None, "learned entries go");
    assert!(matches!(
        b.ingress(p[0], &frame(C, A), t(0)),
        Verdict::Flood { .. }
    ));
    assert_eq!(
        b.ingress(p[0], &frame(B, A), t(0)),
        Verdict::Drop(DropReason::MirrorPort),
        "a static entry there leads nowhere"
    );
}

#[test]
fn the_table_does_not_shrink_below_its_static_entries() {
    let (mut b, p) = bridge_with(2, BridgeConfig::default());
    for mac in [A, B, C] {
        b.add_static(p[0], 0, MacAddr(mac)).unwrap();
    }
    let before = b.config();
    let small = BridgeConfig {
        mac_table_size: 2,
        mac_ageing: 10,
        ..before
    };
    assert_eq!(
        b.set_config(small),
        Err(BelowStatics {
            size: 2,
            statics: 3
        })
    );
    assert_eq!(b.config(), before, "nothing changed");
    let fits = BridgeConfig {
        mac_table_size: 3,
        ..small
    };
    assert_eq!(b.set_config(fits), Ok(()));
    assert_eq!(b.config(), fits);
}
