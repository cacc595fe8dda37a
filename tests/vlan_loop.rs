//! VLAN tagging through the real reactor, without root: fake socketpair ports in access, trunk
//! and default modes, frames compared byte for byte.

mod fake;

use fake::{BCAST, Host, Switch, mac, pair};
use vswitch::bridge::VlanMode;
use vswitch::wire::VNET_HDR_LEN;
use vswitch::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4, VnetHeader};

fn trunk(list: &str, native: Option<u16>) -> VlanMode {
    VlanMode::Trunk {
        vlans: Box::new(list.parse().unwrap()),
        native,
    }
}

/// An Ethernet frame with an optional 802.1Q tag and a recognisable payload.
fn frame(dst: [u8; 6], src: [u8; 6], tci: Option<u16>, payload_len: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(tci) = tci {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend((0..payload_len).map(|i| (i * 7) as u8));
    f
}

/// Switch with: h0 access 10, h1 trunk 10,20, h2 access 20, h3 no VLAN config, h4 trunk 20
/// with native 10.
fn lab(offloads: bool) -> (Switch, Vec<Host>) {
    let modes = [
        VlanMode::Access(10),
        trunk("10,20", None),
        VlanMode::Access(20),
        VlanMode::All,
        trunk("20", Some(10)),
    ];
    let (ports, hosts): (Vec<_>, Vec<_>) = modes
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let (p, h) = pair(&format!("p{i}"), offloads);
            ((p, m), h)
        })
        .unzip();
    (Switch::start_vlans(ports), hosts)
}

#[test]
fn untagged_access_traffic_is_tagged_on_trunks_and_stays_in_its_vlan() {
    let (sw, mut h) = lab(false);
    h[0].send(&frame(BCAST, mac(1), None, 50));
    h[1].expect(&frame(BCAST, mac(1), Some(10), 50));
    h[3].expect(&frame(BCAST, mac(1), Some(10), 50));
    h[4].expect(&frame(BCAST, mac(1), None, 50));
    h[2].expect_silence();
    h[0].expect_silence();
    drop(sw);
}

#[test]
fn tagged_trunk_traffic_is_untagged_on_access_ports_keeping_pcp_elsewhere() {
    let (sw, mut h) = lab(false);
    // VLAN 20 with priority 3 (TCI 0x6014) from the trunk.
    h[1].send(&frame(BCAST, mac(2), Some(0x6014), 50));
    h[2].expect(&frame(BCAST, mac(2), None, 50));
    h[3].expect(&frame(BCAST, mac(2), Some(0x6014), 50));
    h[4].expect(&frame(BCAST, mac(2), Some(0x6014), 50));
    h[0].expect_silence();

    // Unicast back: h2 (access 20) answers mac 2, learned on the trunk in VLAN 20.
    h[2].send(&frame(mac(2), mac(3), None, 40));
    h[1].expect(&frame(mac(2), mac(3), Some(20), 40));
    h[3].expect_silence();
    drop(sw);
}

#[test]
fn a_priority_tag_on_an_access_port_keeps_its_priority_on_a_trunk() {
    let (sw, mut h) = lab(false);
    h[0].send(&frame(BCAST, mac(1), Some(0xc000), 50)); // VID 0, PCP 6
    h[1].expect(&frame(BCAST, mac(1), Some(0xc00a), 50));
    h[3].expect(&frame(BCAST, mac(1), Some(0xc00a), 50));
    h[4].expect(&frame(BCAST, mac(1), None, 50));
    drop(sw);
}

#[test]
fn frames_outside_a_port_s_vlans_go_nowhere() {
    let (sw, mut h) = lab(false);
    h[0].send(&frame(BCAST, mac(1), Some(10), 50)); // tagged on an access port
    h[1].send(&frame(BCAST, mac(1), None, 50)); // untagged on a trunk without native
    h[1].send(&frame(BCAST, mac(1), Some(30), 50)); // VLAN not in the trunk
    for host in h.iter_mut() {
        host.expect_silence();
    }
    let reactor = sw.finish();
    let filtered = |p: u16| {
        reactor
            .port_stats(vswitch::bridge::PortId(p))
            .unwrap()
            .drops(vswitch::bridge::DropReason::VlanFiltered)
    };
    assert_eq!((filtered(0), filtered(1)), (1, 2));
}

#[test]
fn without_vlan_configuration_tagged_frames_pass_unchanged() {
    let (ports, mut h) = fake::hosts(3, false);
    let sw = Switch::start(ports, Default::default());
    let f = frame(BCAST, mac(1), Some(0x2064), 60); // VLAN 100, PCP 1
    h[0].send(&f);
    h[1].expect(&f);
    h[2].expect(&f);
    // Learned per VLAN: unicast in VLAN 100 to mac 1 goes to h0 only, unchanged.
    let g = frame(mac(1), mac(2), Some(0x0064), 60);
    h[1].send(&g);
    h[0].expect(&g);
    h[2].expect_silence();
    // The same MAC in VLAN 0 is unknown: flooded, untagged as sent.
    let u = frame(mac(1), mac(2), None, 60);
    h[1].send(&u);
    h[0].expect(&u);
    h[2].expect(&u);
    drop(sw);
}

/// A virtio-net header for a TCP/IPv4 super-frame with a partial checksum whose headers are
/// `l2` bytes of Ethernet (14, or 18 tagged) plus 20 of IPv4 and 32 of TCP.
fn tso_header(l2: u16) -> Vec<u8> {
    let mut h = vec![0u8; VNET_HDR_LEN];
    let mut v = VnetHeader::new_unchecked(&mut h[..]);
    v.set_flags(F_NEEDS_CSUM);
    v.set_gso_type(GSO_TCPV4);
    v.set_gso_size(1448);
    v.set_hdr_len(l2 + 52);
    v.set_csum_start(l2 + 20);
    v.set_csum_offset(16);
    h
}

#[test]
fn offload_offsets_follow_the_tag_across_access_and_trunk() {
    let (sw, mut h) = lab(true);
    // Access -> trunk: the tag is pushed, csum_start and hdr_len move by 4.
    let mut out = tso_header(14);
    out.extend(frame(BCAST, mac(1), None, 3000));
    h[0].send(&out);
    let mut want = tso_header(18);
    want.extend(frame(BCAST, mac(1), Some(10), 3000));
    h[1].expect(&want);
    h[3].expect(&want);
    h[4].expect(&out);

    // Trunk -> access: popped, and they move back.
    let mut tagged = tso_header(18);
    tagged.extend(frame(mac(1), mac(5), Some(10), 3000));
    h[1].send(&tagged);
    let mut want = tso_header(14);
    want.extend(frame(mac(1), mac(5), None, 3000));
    h[0].expect(&want);
    drop(sw);
}

#[test]
fn a_64k_frame_grows_by_a_tag_without_truncation() {
    let (sw, mut h) = lab(true);
    let mut big = tso_header(14);
    big.extend(frame(BCAST, mac(1), None, 65_535 - 20));
    h[0].send(&big);
    let mut want = tso_header(18);
    want.extend(frame(BCAST, mac(1), Some(10), 65_535 - 20));
    h[1].expect(&want);
    drop(sw);
}
