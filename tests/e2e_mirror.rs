//! End to end: a port mirror (SPAN) through the real `vswitchd`, hosts in namespaces. Needs
//! root (see `common::root_or_skip`).

mod common;

use common::{Lab, pcap_frames, root_or_skip};

#[test]
fn a_mirror_copies_both_directions_and_its_output_forwards_nothing() {
    if !root_or_skip("mirror") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_switch(3, &[]);
    let h: Vec<_> = (1..=3).map(|i| lab.add_host(i, 1500)).collect();
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[2].ping_eventually(&h[0].ip));
    h[0].pin_neighbour(&h[1]);
    h[1].pin_neighbour(&h[0]);
    let (t1, t3) = (lab.tap(1), lab.tap(3));
    lab.ctl_ok(&["mirror", "add", "m1", "--from", &t1, "--to", &t3]);

    // h3 sees h1's traffic with h2 both ways, though none of it is for h3.
    let pcap = lab.dir.join("h3.pcap");
    let capture = h[2].capture("icmp", &pcap);
    assert!(h[0].ping(&h[1].ip, 3));
    capture.finish();
    let frames = pcap_frames(&pcap);
    let icmp_type = |f: &[u8]| f.get(34).copied();
    let requests = frames
        .iter()
        .filter(|(_, f)| icmp_type(f) == Some(8))
        .count();
    let replies = frames
        .iter()
        .filter(|(_, f)| icmp_type(f) == Some(0))
        .count();
    assert_eq!((requests, replies), (3, 3), "{} frames at h3", frames.len());

    // The output port takes nothing in while it is a mirror's.
    assert!(
        !h[2].ping(&h[0].ip, 2),
        "h3 reached h1 through a mirror port"
    );
    let stats = lab.ctl_json(&["port", "stats", &t3]);
    assert!(
        stats[0]["drops"]["mirror_port"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    let list = lab.ctl_json(&["mirror", "list"]);
    assert!(list[0]["frames"].as_u64().unwrap() >= 6, "{list}");
    assert_eq!(list[0]["to"], t3.as_str());

    // Loops cannot be made: the output cannot be a source.
    let refused = lab.ctl(&["mirror", "add", "m2", "--from", &t3, "--to", &lab.tap(2)]);
    assert_eq!(refused.status.code(), Some(1));

    lab.ctl_ok(&["mirror", "del", "m1"]);
    assert!(h[2].ping_eventually(&h[0].ip), "the port forwards again");
}

#[test]
fn a_mirror_in_the_config_file_starts_and_reloads() {
    if !root_or_skip("mirror_config") {
        return;
    }
    let mut lab = Lab::new();
    let (t1, t2, t3) = (lab.tap(1), lab.tap(2), lab.tap(3));
    let file = lab.dir.join("sw.toml");
    let with_mirror = format!("[[mirror]]\nname = \"m1\"\nfrom = \"{t1}\"\nto = \"{t3}\"\n");
    std::fs::write(&file, &with_mirror).unwrap();
    let mut args = vec!["--config".to_owned(), file.display().to_string()];
    for t in [&t1, &t2, &t3] {
        args.push("--port".to_owned());
        args.push(t.clone());
    }
    lab.launch(args, &[1, 2, 3]);
    let list = lab.ctl_json(&["mirror", "list"]);
    assert_eq!(list[0]["name"], "m1", "{list}");
    assert_eq!(list[0]["to"], t3.as_str());
    std::fs::write(&file, "").unwrap();
    lab.ctl_ok(&["reload"]);
    assert_eq!(lab.ctl_json(&["mirror", "list"]), serde_json::json!([]));
}

#[test]
fn a_mirror_with_a_vlan_copies_only_that_vlans_frames() {
    if !root_or_skip("mirror_vlan") {
        return;
    }
    let mut lab = Lab::new();
    let mut args = Vec::new();
    for (i, vlan) in [(1, "10"), (2, "10"), (3, "20"), (4, "20"), (5, "30")] {
        args.push("--port".to_owned());
        args.push(format!("{},vlan={vlan}", lab.tap(i)));
    }
    lab.launch(args, &[1, 2, 3, 4, 5]);
    let h: Vec<_> = (1..=5).map(|i| lab.add_host(i, 1500)).collect();
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[2].ping_eventually(&h[3].ip), "{}", lab.log());
    let from = format!("{},{}", lab.tap(1), lab.tap(3));
    lab.ctl_ok(&[
        "mirror",
        "add",
        "v10",
        "--from",
        &from,
        "--vlan",
        "10",
        "--to",
        &lab.tap(5),
    ]);
    let list = lab.ctl_json(&["mirror", "list"]);
    assert_eq!(list[0]["vlan"], 10, "{list}");

    // Both sources talk; only VLAN 10's pings reach the mirror's output.
    let pcap = lab.dir.join("h5.pcap");
    let capture = h[4].capture("icmp", &pcap);
    assert!(h[0].ping(&h[1].ip, 3));
    assert!(h[2].ping(&h[3].ip, 3));
    capture.finish();
    let frames = pcap_frames(&pcap);
    let between = |a: &str, b: &str| {
        let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
            (a.parse().unwrap(), b.parse().unwrap());
        frames
            .iter()
            .filter(|(_, f)| {
                f.len() >= 34 && {
                    let (src, dst) = (&f[26..30], &f[30..34]);
                    (src == a.octets() && dst == b.octets())
                        || (src == b.octets() && dst == a.octets())
                }
            })
            .count()
    };
    assert_eq!(between(&h[0].ip, &h[1].ip), 6, "VLAN 10: both ways");
    assert_eq!(between(&h[2].ip, &h[3].ip), 0, "VLAN 20 is not mirrored");

    let bad = lab.ctl(&[
        "mirror",
        "add",
        "x",
        "--from",
        &lab.tap(1),
        "--vlan",
        "5000",
        "--to",
        &lab.tap(5),
    ]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a VLAN past 4094 is a usage error"
    );
}
