//! End to end: VLANs through the real `vswitchd`, hosts in namespaces with real 802.1Q
//! subinterfaces. Needs root (see `common::root_or_skip`).

mod common;

use common::ports::start;
use common::{Host, Lab, pcap_frames, root_or_skip, transfer_intact};

fn cannot_ping(from: &Host, ip: &str) -> bool {
    !from
        .run(&["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-w", "3", ip])
        .status
        .success()
}

#[test]
fn access_vlans_keep_their_hosts_and_broadcasts_apart() {
    if !root_or_skip("access_vlans") {
        return;
    }
    let mut lab = Lab::new();
    start(
        &mut lab,
        &[
            (1, "vlan=10"),
            (2, "vlan=10"),
            (3, "vlan=20"),
            (4, "vlan=20"),
        ],
        &[],
    );
    // One IP subnet across both VLANs: only the switch can keep them apart.
    let h: Vec<Host> = (1..=4).map(|i| lab.add_host(i, 1500)).collect();
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[2].ping_eventually(&h[3].ip));
    assert!(h[1].ping(&h[0].ip, 2));
    assert!(cannot_ping(&h[0], &h[2].ip), "VLAN 10 reached VLAN 20");
    assert!(cannot_ping(&h[3], &h[1].ip), "VLAN 20 reached VLAN 10");

    // A broadcast from h1 reaches h2 (same VLAN) and never h3.
    let p2 = lab.dir.join("h2.pcap");
    let p3 = lab.dir.join("h3.pcap");
    let c2 = h[1].capture("icmp", &p2);
    let c3 = h[2].capture("icmp", &p3);
    h[0].run(&[
        "ping",
        "-n",
        "-q",
        "-b",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        &lab.broadcast(),
    ]);
    assert_eq!(c2.finish().len(), 3, "h2 should see h1's broadcasts");
    assert!(
        c3.finish().is_empty(),
        "h3 (VLAN 20) saw VLAN 10 broadcasts"
    );

    let fdb = lab.ctl_json(&["fdb", "show"]);
    let vlan_of = |mac: &str| {
        fdb.as_array()
            .unwrap()
            .iter()
            .find(|r| r["mac"] == mac)
            .map(|r| r["vlan"].clone())
    };
    assert_eq!(vlan_of(&h[0].mac), Some(10.into()), "{fdb}");
    assert_eq!(vlan_of(&h[2].mac), Some(20.into()), "{fdb}");
    let show = lab.ctl_ok(&["port", "list"]);
    assert!(
        show.contains("access 10") && show.contains("access 20"),
        "{show}"
    );

    // VLAN keys work in `port add` as in --port.
    let spec = format!("{},trunk=10,20,native=30", lab.tap(5));
    let added = lab.ctl_json(&["port", "add", &spec]);
    assert_eq!(added["vlan"], "trunk 10,20 native 30", "{added}");
    let bad = lab.ctl(&["port", "add", &format!("{},vlan=0", lab.tap(6))]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("vlan=0"));
}

// This machine's kernel has no 802.1Q support (CONFIG_VLAN_8021Q is off, and the bridge has no
// VLAN filtering), so no host here can terminate a tagged link. Trunks are tested between two
// vswitchd instances instead, joined by a kernel bridge that carries their tagged frames as
// they are; tcpdump (libpcap's own 802.1Q parser) checks the tags on that wire.

/// Two switches, A and B, each with `ports` (TAP numbers and options); A's TAP `a_trunk` and
/// B's TAP `b_trunk` are joined by a wire. Returns (A, B, wire namespace).
fn two_switches(
    a_ports: &[(usize, &str)],
    b_ports: &[(usize, &str)],
    a_trunk: usize,
    b_trunk: usize,
) -> (Lab, Lab, String) {
    let mut a = Lab::new();
    let mut b = Lab::new();
    start(&mut a, a_ports, &[]);
    start(&mut b, b_ports, &[]);
    let (ta, tb) = (a.tap(a_trunk), b.tap(b_trunk));
    let (sa, sb) = (a.sw_ns.clone(), b.sw_ns.clone());
    let wire = a.wire("w", &[(&sa, &ta), (&sb, &tb)]);
    (a, b, wire)
}

/// A host view of an interface in the wire namespace (for captures there).
fn on_wire(wire: &str, ifname: &str) -> Host {
    Host {
        ns: wire.to_owned(),
        ifname: ifname.to_owned(),
        ip: String::new(),
        mac: String::new(),
    }
}

#[test]
fn two_switches_joined_by_a_trunk_carry_each_vlan_tagged_and_apart() {
    if !root_or_skip("trunk_between_switches") {
        return;
    }
    let (mut a, mut b, wire) = two_switches(
        &[(1, "vlan=10"), (2, "vlan=20"), (3, "trunk=10,20")],
        &[(1, "vlan=10"), (2, "vlan=20"), (3, "trunk=10,20")],
        3,
        3,
    );
    // All four hosts in one IP subnet: only the VLANs keep them apart.
    let n = a.subnet();
    let ip = |i: usize| format!("10.{n}.0.{i}");
    let a1 = a.add_host_at(1, 1500, Some(&ip(1)));
    let a2 = a.add_host_at(2, 1500, Some(&ip(2)));
    let b1 = b.add_host_at(1, 1500, Some(&ip(3)));
    let b2 = b.add_host_at(2, 1500, Some(&ip(4)));
    assert!(
        a1.ping_eventually(&b1.ip),
        "VLAN 10 across the trunk\n{}",
        a.log()
    );
    assert!(a2.ping_eventually(&b2.ip), "VLAN 20 across the trunk");
    assert!(
        cannot_ping(&a1, &b2.ip) && cannot_ping(&a2, &b1.ip),
        "VLANs leaked"
    );

    // On the wire, VLAN 10 traffic carries tag 10 and nothing else does.
    let ta = a.tap(3);
    let trunk = on_wire(&wire, &ta);
    let p10 = a.dir.join("v10.pcap");
    let untagged = a.dir.join("untagged.pcap");
    let c10 = trunk.capture("vlan 10 and icmp", &p10);
    let c0 = on_wire(&wire, &b.tap(3)).capture("not vlan", &untagged);
    assert!(a1.ping(&b1.ip, 3));
    let tagged = c10.finish();
    assert_eq!(
        tagged.len(),
        6,
        "3 requests and 3 replies tagged VLAN 10 on the wire"
    );
    assert!(
        c0.finish().is_empty(),
        "untagged frames on a trunk without native VLAN"
    );
    for lab in [&a, &b] {
        let fdb = lab.ctl_json(&["fdb", "show"]);
        let rows = fdb.as_array().unwrap();
        assert!(
            rows.iter()
                .any(|r| r["mac"] == b1.mac.as_str() && r["vlan"] == 10),
            "{fdb}"
        );
        assert!(
            rows.iter().all(|r| r["vlan"] == 10 || r["vlan"] == 20),
            "{fdb}"
        );
    }
}

#[test]
fn a_native_vlan_reaches_an_untagged_host() {
    if !root_or_skip("native_vlan") {
        return;
    }
    let mut lab = Lab::new();
    start(
        &mut lab,
        &[(1, "vlan=10"), (2, "vlan=20"), (3, "trunk=20,native=10")],
        &[],
    );
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    let h3 = lab.add_host(3, 1500);
    assert!(
        h3.ping_eventually(&h1.ip),
        "native VLAN 10 untagged\n{}",
        lab.log()
    );
    assert!(
        cannot_ping(&h3, &h2.ip),
        "VLAN 20 must reach the trunk tagged only"
    );
    let list = lab.ctl_ok(&["port", "list"]);
    assert!(list.contains("trunk 20 native 10"), "{list}");
}

#[test]
fn tcp_across_access_and_trunk_ports_with_offloads_both_ways() {
    if !root_or_skip("tcp_access_trunk") {
        return;
    }
    let (mut a, mut b, wire) = two_switches(
        &[(1, "vlan=10"), (2, "trunk=10")],
        &[(1, "vlan=10"), (2, "trunk=10")],
        2,
        2,
    );
    let h1 = a.add_host(1, 1500);
    let n = a.subnet();
    let h2 = b.add_host_at(1, 1500, Some(&format!("10.{n}.0.2")));
    assert!(h1.ping_eventually(&h2.ip), "{}", a.log());
    // The switches push tags onto 64 KiB super-frames with partial checksums. The wire's
    // interfaces towards each switch get no offloads, so the kernel bridge segments and
    // checksums every such frame in software, using the offsets the pushing switch wrote:
    // if csum_start or hdr_len did not move with the tag, TCP would fail.
    let (ta, tb) = (a.tap(2), b.tap(2));
    for ifname in [&ta, &tb] {
        on_wire(&wire, ifname).sh(&[
            "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off",
        ]);
    }
    let pcap = a.dir.join("pushed.pcap");
    let capture = on_wire(&wire, &ta).capture("vlan 10 and tcp port 7001", &pcap);
    transfer_intact(&h1, &h2, 16 << 20, 3, "access -> trunk -> access");
    let frames = capture.finish();
    let biggest = frames.iter().copied().max().unwrap_or(0);
    assert!(
        biggest > 1518,
        "no tagged super-frame left switch A (largest {biggest})"
    );

    transfer_intact(&h2, &h1, 16 << 20, 5, "the way back");
    for lab in [&a, &b] {
        let stats = lab.ctl_json(&["port", "stats"]);
        for row in stats.as_array().unwrap() {
            assert_eq!(row["drops"]["malformed"], 0, "{row}");
            // The trunks may filter the wire's own untagged chatter (the kernel's IGMP
            // reports); nothing of the hosts' traffic is filtered anywhere.
            if row["name"] == lab.tap(1).as_str() {
                assert_eq!(row["drops"]["vlan_filtered"], 0, "{row}");
            }
        }
    }
}

#[test]
fn without_vlan_configuration_tagged_traffic_passes_unchanged() {
    if !root_or_skip("vlan_passthrough") {
        return;
    }
    // Switch A tags h1's traffic (VLAN 10) onto its trunk; switch C, without any VLAN
    // configuration, carries it from the wire to h2. What A put on the wire and what h2
    // receives must be the same bytes.
    let (mut a, mut c, wire) = two_switches(
        &[(1, "vlan=10"), (2, "trunk=10")],
        &[(1, ""), (2, "")],
        2,
        1,
    );
    let h1 = a.add_host(1, 1500);
    let h2 = c.add_host_at(2, 1500, None);
    let sent = a.dir.join("sent.pcap");
    let received = a.dir.join("received.pcap");
    let c1 = on_wire(&wire, &a.tap(2)).capture("vlan 10 and icmp", &sent);
    let c2 = h2.capture("vlan 10 and icmp", &received);
    h1.run(&[
        "ping",
        "-n",
        "-q",
        "-b",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        &a.broadcast(),
    ]);
    c1.finish();
    c2.finish();
    let sent = pcap_frames(&sent);
    let received = pcap_frames(&received);
    assert_eq!(sent.len(), 3, "A's tagged broadcasts on the wire");
    assert_eq!(
        received, sent,
        "tagged frames changed crossing a switch without VLANs"
    );
    for (_, bytes) in &received {
        assert_eq!(
            &bytes[12..16],
            &[0x81, 0x00, 0x00, 0x0a],
            "tag 10 (PCP 0) kept"
        );
    }
    let fdb = c.ctl_json(&["fdb", "show"]);
    let rows = fdb.as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["mac"] == h1.mac.as_str() && r["vlan"] == 10),
        "C learns per tag: {fdb}"
    );
}

#[test]
fn a_veth_trunk_between_netdev_ports_keeps_the_tags_the_kernel_strips() {
    if !root_or_skip("netdev_trunk") {
        return;
    }
    // A veth pair joins the two switches' namespaces. The receiving kernel moves a frame's
    // 802.1Q tag out of the packet into metadata before AF_PACKET sees it; the netdev port must
    // put it back or every tagged frame would look untagged.
    let mut a = Lab::new();
    let mut b = Lab::new();
    let (ea, eb) = (format!("{}n", a.prefix), format!("{}n", b.prefix));
    common::sh(&[
        "ip", "-n", &a.sw_ns, "link", "add", "name", &ea, "type", "veth", "peer", "name", &eb,
        "netns", &b.sw_ns,
    ]);
    for (lab, end) in [(&mut a, &ea), (&mut b, &eb)] {
        let mut args = Vec::new();
        for (i, vlan) in [(1, 10), (2, 20)] {
            args.push("--port".to_owned());
            args.push(format!("{},vlan={vlan}", lab.tap(i)));
        }
        args.push("--port".to_owned());
        args.push(format!("netdev:{end},trunk=10,20"));
        lab.launch(args, &[1, 2]);
    }
    let n = a.subnet();
    let ip = |i: usize| format!("10.{n}.0.{i}");
    let a1 = a.add_host_at(1, 1500, Some(&ip(1)));
    let a2 = a.add_host_at(2, 1500, Some(&ip(2)));
    let b1 = b.add_host_at(1, 1500, Some(&ip(3)));
    let b2 = b.add_host_at(2, 1500, Some(&ip(4)));
    assert!(
        a1.ping_eventually(&b1.ip),
        "VLAN 10 across the veth trunk\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    assert!(a2.ping_eventually(&b2.ip), "VLAN 20 across the veth trunk");
    assert!(
        cannot_ping(&a1, &b2.ip) && cannot_ping(&b1, &a2.ip),
        "VLANs leaked"
    );
    let fdb = b.ctl_json(&["fdb", "show"]);
    assert!(
        fdb.as_array()
            .unwrap()
            .iter()
            .any(|r| r["mac"] == a1.mac.as_str() && r["vlan"] == 10 && r["port"] == eb.as_str()),
        "{fdb}"
    );

    // Bulk TCP: super-frames cross the trunk tagged, both ways.
    transfer_intact(&a1, &b1, 8 << 20, 33, "VLAN 10, A -> B");
    transfer_intact(&b2, &a2, 8 << 20, 34, "VLAN 20, B -> A");
}

/// Writes `frames` (Ethernet, without virtio-net header) onto `host`'s interface from inside
/// its namespace, through the switch's own AF_PACKET socket type.
fn send_frames(host: &Host, frames: Vec<Vec<u8>>) {
    let ifname = vswitch::sys::IfName::new(&host.ifname).unwrap();
    Lab::in_netns(host, move || {
        let sock = vswitch::sys::packet::PacketSocket::open(&ifname).expect("packet socket");
        for f in frames {
            let mut with_hdr = vec![0; vswitch::wire::VNET_HDR_LEN];
            with_hdr.extend_from_slice(&f);
            sock.send(&with_hdr).expect("send");
        }
    })
    .join()
    .expect("sender thread");
}

#[test]
fn a_double_tagged_probe_cannot_hop_into_another_vlan_across_a_native_trunk() {
    if !root_or_skip("vlan_hop") {
        return;
    }
    // The attacker h1 is on VLAN 10; the trunk between the switches has native VLAN 10, so
    // VLAN 10 crosses it untagged; the victim h2 is on VLAN 20 on the other switch.
    let (mut a, mut b, wire) = two_switches(
        &[(1, "vlan=10"), (3, "trunk=10,20,native=10")],
        &[(2, "vlan=20"), (3, "trunk=10,20,native=10")],
        3,
        3,
    );
    let n = a.subnet();
    let h1 = a.add_host_at(1, 1500, Some(&format!("10.{n}.0.1")));
    let h2 = b.add_host_at(2, 1500, Some(&format!("10.{n}.0.2")));
    let marker = b"vswitch-vlan-hop-probe";
    let h1_mac: vswitch::wire::MacAddr = h1.mac.parse().unwrap();
    // Broadcast, priority tag (VID 0), then an 802.1Q tag for VLAN 20, then a payload; and the
    // same with an 802.1ad or QinQ tag inside.
    let probe = |tpid: [u8; 2]| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&h1_mac.0);
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x00]);
        f.extend_from_slice(&tpid);
        f.extend_from_slice(&[0x00, 20, 0x88, 0xb5]);
        f.extend_from_slice(marker);
        f.resize(80, 0);
        f
    };
    // A control: the same bytes without the two tags must cross the trunk (untagged, native
    // VLAN 10), so the capture would have seen a probe that crossed.
    let mut control = vec![0xff; 6];
    control.extend_from_slice(&h1_mac.0);
    // EtherType 0x88b5 (local experimental): not IP, so no bridge netfilter on the wire
    // judges the bytes.
    control.extend_from_slice(&[0x88, 0xb5]);
    control.extend_from_slice(b"vswitch-vlan-hop-control");
    control.resize(80, 0);
    let on_b_trunk = b.dir.join("trunk.pcap");
    let at_h2 = b.dir.join("h2.pcap");
    let trunk_capture = on_wire(&wire, &b.tap(3)).capture("", &on_b_trunk);
    let victim_capture = h2.capture("", &at_h2);
    let carries = |path: &std::path::Path, marker: &[u8]| {
        pcap_frames(path)
            .iter()
            .any(|(_, f)| f.windows(marker.len()).any(|w| w == marker))
    };
    // The kernel bridge on the wire may take a moment to forward: the control tells when.
    let crossing = common::wait_until(std::time::Duration::from_secs(10), || {
        send_frames(&h1, vec![control.clone()]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        carries(&on_b_trunk, b"vswitch-vlan-hop-control")
    });
    assert!(
        crossing,
        "the control frame must cross the trunk\n{}",
        a.log()
    );
    send_frames(
        &h1,
        vec![
            probe([0x81, 0x00]),
            probe([0x88, 0xa8]),
            probe([0x91, 0x00]),
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    trunk_capture.finish();
    victim_capture.finish();
    assert!(!carries(&on_b_trunk, marker), "a probe crossed the trunk");
    assert!(!carries(&at_h2, marker), "a probe reached VLAN 20");
    let stats = a.ctl_json(&["port", "stats", &a.tap(1)]);
    assert_eq!(stats[0]["drops"]["vlan_filtered"], 3, "{stats}");
}
