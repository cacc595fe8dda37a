//! Tests of the forwarding decisions, with frames built byte by byte.

use super::*;

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
fn unknown_unicast_floods_then_known_unicast_goes_to_one_port() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    assert_eq!(b.ingress(p[0], &frame(B, A), t(0)), Verdict::Flood);
    assert_eq!(b.ingress(p[1], &frame(A, B), t(0)), Verdict::Forward(p[0]));
    assert_eq!(b.ingress(p[0], &frame(B, A), t(0)), Verdict::Forward(p[1]));
    assert_eq!(b.fdb().len(), 2);
}

#[test]
fn broadcast_and_multicast_flood_to_all_but_the_ingress() {
    let (mut b, p) = bridge_with(4, BridgeConfig::default());
    b.ingress(p[1], &frame(A, B), t(0));
    assert_eq!(b.ingress(p[1], &frame(BCAST, B), t(0)), Verdict::Flood);
    let ipv4_mcast = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    assert_eq!(b.ingress(p[1], &frame(ipv4_mcast, B), t(0)), Verdict::Flood);
    let ipv6_mcast = [0x33, 0x33, 0, 0, 0, 1];
    assert_eq!(b.ingress(p[1], &frame(ipv6_mcast, B), t(0)), Verdict::Flood);
    let targets: Vec<_> = b.flood_targets(p[1]).collect();
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
    assert_eq!(b.port_stats(p[0]).unwrap().drops(DropReason::SamePort), 1);
    assert!(b.flood_targets(p[0]).all(|q| q != p[0]));
}

#[test]
fn reserved_destinations_are_never_forwarded() {
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
    assert_eq!(b.ingress(p[0], &frame(dst, A), t(0)), Verdict::Flood);
    assert_eq!(
        b.port_stats(p[0]).unwrap().drops(DropReason::ReservedDest),
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
        b.port_stats(p[0]).unwrap().drops(DropReason::InvalidSource),
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
    assert_eq!(b.ingress(p[0], &frame(B, A)[..14], t(0)), Verdict::Flood);
    let s = b.port_stats(p[0]).unwrap();
    assert_eq!((s.rx_frames, s.drops(DropReason::Malformed)), (5, 4));
}

#[test]
fn a_mac_that_moves_is_followed() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[2], &frame(BCAST, A), t(1));
    assert_eq!(b.ingress(p[1], &frame(A, B), t(1)), Verdict::Forward(p[2]));
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
    assert_eq!(b.ingress(p[0], &frame(B, A), t(5)), Verdict::Forward(p[1]));
    assert_eq!(b.tick(t(10)), 0);
    assert_eq!(b.ingress(p[0], &frame(B, A), t(10)), Verdict::Forward(p[1]));
    assert_eq!(b.tick(t(11)), 1);
    assert_eq!(b.ingress(p[0], &frame(B, A), t(11)), Verdict::Flood);
    assert_eq!(b.fdb().counters().expired, 1);
}

#[test]
fn removing_a_port_forgets_its_macs_and_reuses_its_number() {
    let (mut b, p) = bridge_with(3, BridgeConfig::default());
    b.ingress(p[1], &frame(BCAST, B), t(0));
    b.ingress(p[2], &frame(BCAST, C), t(0));
    let last = b.remove_port(p[1]).unwrap();
    assert_eq!(last.rx_frames, 1);
    assert_eq!(b.remove_port(p[1]), None);
    assert_eq!(b.fdb().lookup(0, MacAddr(B)), None);
    assert_eq!(b.fdb().lookup(0, MacAddr(C)), Some(p[2]));
    assert_eq!(b.ingress(p[0], &frame(B, A), t(1)), Verdict::Flood);
    assert_eq!(b.flood_targets(p[0]).collect::<Vec<_>>(), vec![p[2]]);
    assert_eq!(
        b.ingress(p[1], &frame(B, A), t(1)),
        Verdict::Drop(DropReason::PortGone)
    );
    assert_eq!(b.add_port(), p[1]);
    assert_eq!(b.port_stats(p[1]).unwrap().rx_frames, 0);
}

#[test]
fn counters_follow_rx_tx_and_drops() {
    let (mut b, p) = bridge_with(2, BridgeConfig::default());
    b.ingress(p[0], &frame(BCAST, A), t(0));
    b.ingress(p[0], &frame(B, A)[..20], t(0));
    b.count_tx(p[1], 60);
    b.count_drop(p[1], DropReason::TxFull);
    let s0 = b.port_stats(p[0]).unwrap();
    assert_eq!((s0.rx_frames, s0.rx_bytes), (2, 80));
    let s1 = b.port_stats(p[1]).unwrap();
    assert_eq!((s1.tx_frames, s1.tx_bytes, s1.total_drops()), (1, 60, 1));
}
