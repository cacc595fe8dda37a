//! End to end: ARP snooping, suppression, guard and the switch's own address, with the real
//! `vswitchd`, hosts in namespaces and iputils' arping. Needs root (see
//! `common::root_or_skip`).

mod common;

use common::{Host, Lab, root_or_skip};
use serde_json::Value;

fn binding<'a>(arp: &'a Value, ip: &str) -> Option<&'a Value> {
    arp.as_array().unwrap().iter().find(|r| r["ip"] == ip)
}

/// The MAC `host` has for `ip` in its neighbour table, if any.
fn neighbour(host: &Host, ip: &str) -> Option<String> {
    let out = host.sh(&["ip", "neigh", "show", "to", ip, "dev", &host.ifname]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_owned)
}

/// Forgets every neighbour `host` knows, so its next packet to one starts with ARP.
fn flush_neighbours(host: &Host) {
    host.sh(&["ip", "neigh", "flush", "dev", &host.ifname]);
}

#[test]
fn arp_show_lists_the_bindings_of_hosts_that_talked() {
    if !root_or_skip("arp_show") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    let arp = lab.ctl_json(&["arp", "show"]);
    for host in &h[..2] {
        let row = binding(&arp, &host.ip).unwrap_or_else(|| panic!("{} missing: {arp}", host.ip));
        assert_eq!(row["mac"], host.mac.as_str());
        assert_eq!(row["port"], host.ifname.as_str());
        assert_eq!(row["vlan"], 0);
        assert!(row["age"].is_u64());
    }
    assert!(binding(&arp, &h[2].ip).is_none(), "h3 never sent ARP");
    let text = lab.ctl_ok(&["arp", "show"]);
    assert!(text.starts_with("VLAN  IP"), "{text}");
    assert!(
        text.contains(&h[0].mac) && text.contains(&h[1].ifname),
        "{text}"
    );
    let stats = lab.ctl_json(&["arp", "stats"]);
    assert!(stats["learned"].as_u64().unwrap() >= 2, "{stats}");
}

#[test]
fn suppression_answers_requests_so_other_hosts_never_hear_them() {
    if !root_or_skip("arp_suppression") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &["--arp-suppress"]);
    assert!(h[0].ping_eventually(&h[1].ip));
    assert!(h[1].ping(&h[0].ip, 1));
    flush_neighbours(&h[0]);

    let pcap = lab.dir.join("h3.pcap");
    let requests = "arp and arp[6:2] == 1";
    let capture = h[2].capture(requests, &pcap);
    assert!(
        h[0].ping(&h[1].ip, 2),
        "h1 reaches h2 through a suppressed ARP"
    );
    let seen = capture.finish();
    assert!(seen.is_empty(), "h3 heard {} ARP requests", seen.len());
    assert_eq!(
        neighbour(&h[0], &h[1].ip).as_deref(),
        Some(h[1].mac.as_str())
    );
    let stats = lab.ctl_json(&["arp", "stats"]);
    assert!(stats["suppressed"].as_u64().unwrap() >= 1, "{stats}");

    // A probe (duplicate address detection) is forwarded, never answered by the switch: h3
    // hears it, and the one answer h1 gets comes from h2 itself.
    let capture = h[2].capture(requests, &pcap);
    let probe = h[0].run(&[
        "arping",
        "-D",
        "-c",
        "1",
        "-w",
        "3",
        "-I",
        &h[0].ifname,
        &h[1].ip,
    ]);
    let probes = capture.finish();
    assert_eq!(probes.len(), 1, "h3 should hear the probe");
    let said = String::from_utf8_lossy(&probe.stdout);
    assert!(
        said.contains(&h[1].mac.to_uppercase()),
        "the answer is h2's own:\n{said}"
    );
}

#[test]
fn without_suppression_other_hosts_hear_requests() {
    if !root_or_skip("arp_no_suppression") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    flush_neighbours(&h[0]);
    let pcap = lab.dir.join("h3.pcap");
    let capture = h[2].capture("arp and arp[6:2] == 1", &pcap);
    assert!(h[0].ping(&h[1].ip, 1));
    assert!(
        !capture.finish().is_empty(),
        "h3 should hear the flooded request"
    );
    assert_eq!(lab.ctl_json(&["arp", "stats"])["suppressed"], 0);
}

/// h3 claims h2's address with gratuitous ARP (an ARP-spoofing attack); returns the MAC h1
/// then has for h2.
fn spoof_h2(h: &[Host]) -> Option<String> {
    assert!(h[0].ping_eventually(&h[1].ip));
    // arping binds to the claimed address; the attacker's namespace allows that.
    h[2].sh(&["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"]);
    for mode in ["-U", "-A"] {
        h[2].sh(&[
            "arping",
            mode,
            "-c",
            "2",
            "-w",
            "3",
            "-I",
            &h[2].ifname,
            &h[1].ip,
        ]);
    }
    neighbour(&h[0], &h[1].ip)
}

#[test]
fn the_guard_stops_arp_spoofing_that_succeeds_without_it() {
    if !root_or_skip("arp_guard") {
        return;
    }
    // Without the guard the forgery works: h1 now sends h2's traffic to h3.
    let (lab, h) = Lab::with_hosts(3, &[]);
    assert_eq!(
        spoof_h2(&h).as_deref(),
        Some(h[2].mac.as_str()),
        "the attack should work"
    );
    drop(lab);

    let mut lab = Lab::new();
    lab.launch(
        vec![
            "--port".into(),
            lab.tap(1),
            "--port".into(),
            lab.tap(2),
            "--port".into(),
            format!("{},arp-guard=on", lab.tap(3)),
        ],
        &[1, 2, 3],
    );
    let h: Vec<Host> = (1..=3).map(|i| lab.add_host(i, 1500)).collect();
    assert_eq!(
        spoof_h2(&h).as_deref(),
        Some(h[1].mac.as_str()),
        "h1 must keep h2's real MAC"
    );
    let stats = lab.ctl_json(&["port", "stats", &h[2].ifname]);
    assert!(
        stats[0]["drops"]["arp_guard"].as_u64().unwrap() >= 4,
        "{stats}"
    );
    let arp = lab.ctl_json(&["arp", "show"]);
    assert_eq!(
        binding(&arp, &h[1].ip).unwrap()["port"],
        h[1].ifname.as_str()
    );
    let log = lab.log();
    assert!(log.contains("ARP guard dropped ARP from"), "{log}");
    // Logged at most once a second, though 4 were dropped within about 2 s.
    assert!(log.matches("ARP guard dropped").count() <= 4, "{log}");
    assert!(h[0].ping(&h[1].ip, 2), "h1 still reaches the real h2");
}

#[test]
fn hosts_ping_the_switch_s_own_address() {
    if !root_or_skip("own_address") {
        return;
    }
    let mut lab = Lab::new();
    let own_ip = format!("10.{}.0.254", lab.subnet());
    let own_mac = "02:00:00:00:00:fe";
    let own_ip6 = format!("fd00:{}::fe", lab.subnet());
    lab.start_switch(
        3,
        &[
            "--ip",
            &format!("{own_ip}/24"),
            "--ip",
            &format!("{own_ip6}/64"),
            "--ip-mac",
            own_mac,
            "--name",
            "sw",
        ],
    );
    let h: Vec<Host> = (1..=3).map(|i| lab.add_host(i, 1500)).collect();
    for host in &h {
        assert!(
            host.ping_eventually(&own_ip),
            "{} cannot ping the switch",
            host.ns
        );
        assert!(host.ping(&own_ip, 2));
        assert_eq!(neighbour(host, &own_ip).as_deref(), Some(own_mac));
    }
    // IPv6: neighbour discovery and echo, from a host that turns IPv6 on.
    let v6 = &h[0];
    let conf = format!("net.ipv6.conf.{}.disable_ipv6=0", v6.ifname);
    v6.sh(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", &conf]);
    let addr = format!("fd00:{}::1/64", lab.subnet());
    v6.sh(&["ip", "-6", "addr", "add", &addr, "dev", &v6.ifname, "nodad"]);
    assert!(v6.ping_eventually(&own_ip6), "no IPv6 echo from the switch");
    assert_eq!(neighbour(v6, &own_ip6).as_deref(), Some(own_mac));

    let list = lab.ctl_json(&["port", "list"]);
    let internal = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "internal")
        .expect("an internal port");
    assert_eq!(internal["name"], "sw");
    assert!(
        internal["detail"].as_str().unwrap().contains(&own_ip),
        "{internal}"
    );
    let del = lab.ctl(&["port", "del", "sw"]);
    assert_eq!(del.status.code(), Some(1), "the switch's own port stays");
}

/// How many of `count` pings to `ip` were answered (`ping -c COUNT -W 2 -i 0.2`).
fn answered(host: &Host, ip: &str, count: u32) -> u32 {
    let out = host.run(&[
        "ping",
        "-n",
        "-q",
        "-c",
        &count.to_string(),
        "-W",
        "2",
        "-i",
        "0.2",
        ip,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn with_suppression_every_ping_to_the_switch_is_answered_the_first_included() {
    if !root_or_skip("own_address_suppressed") {
        return;
    }
    // The measurement that found it: 4 hosts, the third guarded, each pinging the switch's
    // own address 3 times in turn; before, h1 3/3, h2 2/3, h3 0/3, h4 2/3.
    let mut lab = Lab::new();
    let own_ip = format!("10.{}.0.254", lab.subnet());
    let mut args = Vec::new();
    for i in 1..=4 {
        args.push("--port".to_owned());
        args.push(if i == 3 {
            format!("{},arp-guard=on", lab.tap(i))
        } else {
            lab.tap(i)
        });
    }
    for a in ["--arp-suppress", "--ip", &format!("{own_ip}/24")] {
        args.push(a.to_owned());
    }
    lab.launch(args, &[1, 2, 3, 4]);
    let h: Vec<Host> = (1..=4).map(|i| lab.add_host(i, 1500)).collect();
    let got: Vec<u32> = h.iter().map(|host| answered(host, &own_ip, 3)).collect();
    assert_eq!(got, [3, 3, 3, 3], "pings answered per host\n{}", lab.log());
    // Suppression still answers for the hosts themselves.
    assert!(h[0].ping(&h[3].ip, 1));
    let stats = lab.ctl_json(&["arp", "stats"]);
    assert!(stats["suppressed"].as_u64().unwrap() >= 1, "{stats}");
}
