//! End to end: the lab controls of issue 13 — per-port forwarding flags, link-local forwarding
//! (LLDP between two real `lldpd`s), administrative link states and TAP carrier, impairment
//! (delay, jitter, loss, rate) and changing all of it at runtime with `vswitchctl port set` or a
//! config reload. Needs root (see `common::root_or_skip`); the LLDP test also needs lldpd.
//!
//! Timing on a shared 2-core machine is noisy: every timing check is a lower bound set by the
//! impairment itself, or a broad range.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::ports::{
    Background, cannot_ping, drops, lab_with, pin_all, set, setting, spawn_in, start,
};
use common::{Host, Lab, root_or_skip, run, sh, stop_child, wait_exit, wait_until};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers

/// `vswitchctl --json port show PORT`.
fn show(lab: &Lab, port: &str) -> Value {
    lab.ctl_json(&["port", "show", port])
}

/// Drops for `reason` summed over the ports of `hosts`.
fn total_drops(lab: &Lab, hosts: &[&Host], reason: &str) -> u64 {
    hosts.iter().map(|h| drops(lab, &h.ifname, reason)).sum()
}

fn rx_frames(lab: &Lab, port: &str) -> u64 {
    lab.ctl_json(&["port", "stats", port])[0]["rx_frames"]
        .as_u64()
        .expect("rx_frames in port stats")
}

/// The rows of `fdb show` on `port`.
fn fdb_rows_on(lab: &Lab, port: &str) -> Vec<Value> {
    lab.ctl_json(&["fdb", "show"])
        .as_array()
        .expect("fdb show --json is a list")
        .iter()
        .filter(|r| r["port"] == port)
        .cloned()
        .collect()
}

/// Whether `fdb show` has `mac` on `port`.
fn learned_on(lab: &Lab, mac: &str, port: &str) -> bool {
    fdb_rows_on(lab, port).iter().any(|r| r["mac"] == mac)
}

/// What one `ping` run saw.
#[derive(Debug)]
struct Pings {
    sent: u32,
    received: u32,
    rtts: Vec<f64>,
}

impl Pings {
    fn min(&self) -> f64 {
        self.rtts.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.rtts.iter().copied().fold(0.0, f64::max)
    }
    fn avg(&self) -> f64 {
        self.rtts.iter().sum::<f64>() / self.rtts.len().max(1) as f64
    }
    fn lost_fraction(&self) -> f64 {
        1.0 - f64::from(self.received) / f64::from(self.sent.max(1))
    }
}

/// Pings `ip` from `from` `count` times, `interval` seconds apart, waiting 1 s for the last
/// reply; returns what was sent and received and each reply's round trip in ms.
fn pings(from: &Host, ip: &str, count: u32, interval: &str) -> Pings {
    let count_s = count.to_string();
    let out = from.run(&["ping", "-n", "-c", &count_s, "-i", interval, "-W", "1", ip]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rtts = text
        .lines()
        .filter(|l| !l.contains("DUP!"))
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .collect();
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| {
            panic!(
                "no ping summary from {} to {ip}: {text}{}",
                from.ns,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let numbers: Vec<u32> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    Pings {
        sent: numbers[0],
        received: numbers[1],
        rtts,
    }
}

/// Pins a MAC that no station has for `ip` in `host`'s neighbour table: frames to `ip` are
/// then unknown unicast at the switch.
fn pin_fake_neighbour(host: &Host, ip: &str, mac: &str) {
    host.sh(&[
        "ip",
        "neigh",
        "replace",
        ip,
        "lladdr",
        mac,
        "nud",
        "permanent",
        "dev",
        &host.ifname,
    ]);
}

/// Runs `ping` without caring whether replies come (the frames are what the test watches).
fn ping_quietly(from: &Host, args: &[&str]) {
    let mut all = vec!["ping", "-n", "-q", "-W", "1"];
    all.extend_from_slice(args);
    from.run(&all);
}

/// The frames seen by a capture of `filter` on `host` while `act` runs.
fn frames_seen(lab: &Lab, host: &Host, filter: &str, act: impl FnOnce()) -> usize {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = lab.dir.join(format!("{}-{n}.pcap", host.ns));
    let capture = host.capture(filter, &path);
    act();
    capture.finish().len()
}

/// A namespace this test makes outside the lab (removed on drop).
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns.0,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.0]);
    }
}

const FLAGS: [&str; 6] = [
    "learning",
    "flood",
    "mcast-flood",
    "bcast-flood",
    "isolated",
    "hairpin",
];

const IMPAIRMENTS: [&str; 10] = [
    "delay",
    "jitter",
    "delay-dist",
    "loss",
    "loss-corr",
    "duplicate",
    "corrupt",
    "reorder",
    "rate",
    "limit",
];

// ---------------------------------------------------------------------------------------------
// 1. Forwarding flags

#[test]
fn flood_off_keeps_unknown_unicast_out_but_known_unicast_still_arrives() {
    if !root_or_skip("lab_flood_off") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, ""), (3, "flood=off")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(
        h[0].ping_eventually(&h[2].ip),
        "broadcast ARP still reaches a flood=off port"
    );
    assert_eq!(setting(&lab, &h[2].ifname, "flood"), "off");
    assert_eq!(setting(&lab, &h[1].ifname, "flood"), "on");

    // Frames to a MAC no station has are unknown unicast: flooded to h2, not to h3.
    let fake_ip = lab.ip(200);
    pin_fake_neighbour(&h[0], &fake_ip, "02:00:00:ee:00:c8");
    let c2 = h[1].capture("icmp", &lab.dir.join("h2-unknown.pcap"));
    let c3 = h[2].capture("icmp", &lab.dir.join("h3-unknown.pcap"));
    ping_quietly(&h[0], &["-c", "3", "-i", "0.2", &fake_ip]);
    assert_eq!(
        c2.finish().len(),
        3,
        "h2 (flood on) sees the unknown unicast"
    );
    assert!(
        c3.finish().is_empty(),
        "h3 (flood=off) must not see unknown unicast"
    );

    // Known unicast to h3 still arrives.
    let seen = frames_seen(&lab, &h[2], "icmp[icmptype] == icmp-echo", || {
        assert!(
            h[0].ping(&h[2].ip, 3),
            "known unicast to the flood=off port"
        );
    });
    assert_eq!(seen, 3, "h3 sees h1's echo requests");

    // Turned on at runtime, h3 gets the unknown unicast too.
    set(&lab, &h[2].ifname, &["flood=on"]);
    let seen = frames_seen(&lab, &h[2], "icmp", || {
        ping_quietly(&h[0], &["-c", "3", "-i", "0.2", &fake_ip]);
    });
    assert_eq!(seen, 3, "flood=on again: h3 sees the unknown unicast");
}

#[test]
fn mcast_flood_off_and_bcast_flood_off_keep_their_frames_out_of_the_port() {
    if !root_or_skip("lab_mcast_flood") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, ""), (3, "mcast-flood=off")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[0].ping_eventually(&h[2].ip));
    assert_eq!(setting(&lab, &h[2].ifname, "mcast-flood"), "off");
    // Multicast leaves h1 by its TAP (the host has no other route for it).
    h[0].sh(&["ip", "route", "add", "224.0.0.0/4", "dev", &h[0].ifname]);
    let multicast = ["-c", "3", "-i", "0.2", "-t", "1", "224.0.0.1"];

    let c2 = h[1].capture("icmp", &lab.dir.join("h2-mcast.pcap"));
    let c3 = h[2].capture("icmp", &lab.dir.join("h3-mcast.pcap"));
    ping_quietly(&h[0], &multicast);
    assert_eq!(c2.finish().len(), 3, "h2 sees h1's multicast");
    assert!(c3.finish().is_empty(), "h3 (mcast-flood=off) saw multicast");

    // Broadcast still reaches h3 ...
    let broadcast = lab.broadcast();
    let bcast = ["-b", "-c", "3", "-i", "0.2", broadcast.as_str()];
    let seen = frames_seen(&lab, &h[2], "icmp", || ping_quietly(&h[0], &bcast));
    assert_eq!(seen, 3, "mcast-flood=off must not stop broadcast");

    // ... until bcast-flood=off; h2 keeps getting both.
    set(&lab, &h[2].ifname, &["bcast-flood=off"]);
    assert_eq!(setting(&lab, &h[2].ifname, "bcast-flood"), "off");
    let c2 = h[1].capture("icmp", &lab.dir.join("h2-bcast.pcap"));
    let c3 = h[2].capture("icmp", &lab.dir.join("h3-bcast.pcap"));
    ping_quietly(&h[0], &bcast);
    assert_eq!(c2.finish().len(), 3, "h2 sees h1's broadcast");
    assert!(c3.finish().is_empty(), "h3 (bcast-flood=off) saw broadcast");

    // mcast-flood=on at runtime lets multicast in again.
    set(&lab, &h[2].ifname, &["mcast-flood=on"]);
    let seen = frames_seen(&lab, &h[2], "icmp", || ping_quietly(&h[0], &multicast));
    assert_eq!(seen, 3, "mcast-flood=on again: h3 sees multicast");
}

#[test]
fn isolated_ports_reach_normal_ports_but_not_each_other() {
    if !root_or_skip("lab_isolated") {
        return;
    }
    let (lab, h) = lab_with(&[(1, "isolated=on"), (2, "isolated=on"), (3, "")], &[]);
    assert!(
        h[2].ping_eventually(&h[0].ip),
        "isolated <-> normal\n{}",
        lab.log()
    );
    assert!(h[2].ping_eventually(&h[1].ip), "isolated <-> normal");
    assert!(h[0].ping(&h[2].ip, 2) && h[1].ping(&h[2].ip, 2));
    assert_eq!(setting(&lab, &h[0].ifname, "isolated"), "on");
    assert_eq!(setting(&lab, &h[2].ifname, "isolated"), "off");

    // Both MACs are known and no ARP is needed: still nothing passes between h1 and h2.
    pin_all(&[&h[0], &h[1]]);
    let all = [&h[0], &h[1], &h[2]];
    let before = total_drops(&lab, &all, "isolated");
    assert!(
        cannot_ping(&h[0], &h[1].ip),
        "two isolated ports exchanged frames"
    );
    assert!(
        cannot_ping(&h[1], &h[0].ip),
        "two isolated ports exchanged frames"
    );
    assert!(
        total_drops(&lab, &all, "isolated") > before,
        "drops counted as `isolated`: {}",
        lab.ctl_ok(&["port", "stats"])
    );

    // One of them no longer isolated: they talk.
    set(&lab, &h[1].ifname, &["isolated=off"]);
    assert!(
        h[0].ping(&h[1].ip, 3),
        "isolated <-> normal after isolated=off"
    );
}

#[test]
fn hairpin_reflects_floods_and_sends_known_unicast_back_out_of_its_port() {
    if !root_or_skip("lab_hairpin") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert_eq!(setting(&lab, &h[0].ifname, "hairpin"), "off");

    // A second station behind h1's port: a VEPA macvlan on h1's TAP, in a namespace of its
    // own. VEPA sends everything, even frames between h1 and it, out to the switch.
    let m_ns = Netns::new(format!("{}m1", lab.prefix));
    h[0].sh(&[
        "ip",
        "link",
        "add",
        "link",
        &h[0].ifname,
        "name",
        "mv0",
        "type",
        "macvlan",
        "mode",
        "vepa",
    ]);
    h[0].sh(&["ip", "link", "set", "mv0", "netns", &m_ns.0]);
    let m_ip = lab.ip(101);
    sh(&[
        "ip",
        "-n",
        &m_ns.0,
        "addr",
        "add",
        &format!("{m_ip}/24"),
        "dev",
        "mv0",
    ]);
    sh(&["ip", "-n", &m_ns.0, "link", "set", "mv0", "up"]);
    let brief = sh(&["ip", "-n", &m_ns.0, "-br", "link", "show", "dev", "mv0"]);
    let m = Host {
        ns: m_ns.0.clone(),
        ifname: "mv0".into(),
        ip: m_ip.clone(),
        mac: brief.split_whitespace().nth(2).expect("MAC").to_owned(),
    };

    // Without hairpin, h1's broadcasts never come back to it.
    let own_arp = format!("arp and inbound and ether src {}", h[0].mac);
    let absent = lab.ip(77);
    let arping = ["arping", "-c", "2", "-w", "3", "-I", &h[0].ifname, &absent];
    let seen = frames_seen(&lab, &h[0], &own_arp, || {
        h[0].run(&arping);
    });
    assert_eq!(seen, 0, "h1's ARP came back to it without hairpin");

    // m is learned on h1's port; h1 -> m is then known unicast to the port it came in on.
    assert!(
        m.ping_eventually(&h[1].ip),
        "macvlan behind h1's port\n{}",
        lab.log()
    );
    assert!(
        learned_on(&lab, &m.mac, &h[0].ifname),
        "m learned on h1's port"
    );
    pin_all(&[&h[0], &m]);
    let before = drops(&lab, &h[0].ifname, "same_port");
    assert!(
        cannot_ping(&h[0], &m_ip),
        "known unicast went back out without hairpin"
    );
    assert!(drops(&lab, &h[0].ifname, "same_port") > before);

    set(&lab, &h[0].ifname, &["hairpin=on"]);
    assert_eq!(setting(&lab, &h[0].ifname, "hairpin"), "on");
    let seen = frames_seen(&lab, &h[0], &own_arp, || {
        h[0].run(&arping);
    });
    let unicast = h[0].ping(&m_ip, 3);
    assert!(
        seen >= 1 && unicast,
        "hairpin=on: h1's ARP broadcast reflected back to it: {seen} frames (want >= 1); \
         known unicast h1 -> m back out of the port it came in on: {unicast}\n{}",
        lab.ctl_ok(&["port", "stats", &h[0].ifname])
    );
    assert!(m.ping(&h[0].ip, 3), "hairpin=on: and the other way");
    assert!(h[1].ping(&m_ip, 2), "h2 still reaches m");
}

#[test]
fn learning_off_keeps_the_ports_sources_out_of_the_table_and_floods_to_it() {
    if !root_or_skip("lab_learning_off") {
        return;
    }
    let (lab, h) = lab_with(&[(1, "learning=off"), (2, ""), (3, "")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[0].ping(&h[1].ip, 3));
    assert!(h[1].ping(&h[0].ip, 3));
    assert_eq!(setting(&lab, &h[0].ifname, "learning"), "off");
    let on_h1 = fdb_rows_on(&lab, &h[0].ifname);
    assert!(on_h1.is_empty(), "learning=off port has entries: {on_h1:?}");
    assert!(learned_on(&lab, &h[1].mac, &h[1].ifname));

    // Frames to h1 are unknown unicast, so h3 sees h2's echo requests to h1 as well.
    let filter = format!("icmp[icmptype] == icmp-echo and dst host {}", h[0].ip);
    let seen = frames_seen(&lab, &h[2], &filter, || {
        assert!(h[1].ping(&h[0].ip, 3));
    });
    assert_eq!(seen, 3, "frames to an unlearned MAC are flooded");

    set(&lab, &h[0].ifname, &["learning=on"]);
    assert!(h[0].ping(&h[1].ip, 2));
    assert!(
        learned_on(&lab, &h[0].mac, &h[0].ifname),
        "learning=on again: h1 is learned"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Link-local forwarding: LLDP between two lldpd

/// Whether lldpd is here; without it the test is skipped, unless `VSWITCH_E2E=require`.
fn lldpd_or_skip(test: &str) -> bool {
    common::tools_or_skip(test, &["lldpd", "lldpcli"], "lldpd")
}

/// An lldpd in a host's namespace with a control socket of its own, sending every second.
struct Lldpd {
    host: Host,
    socket: PathBuf,
    _process: Background,
}

impl Lldpd {
    fn start(lab: &Lab, host: &Host) -> Lldpd {
        let socket = lab.dir.join(format!("lldpd-{}.sock", host.ifname));
        let log = lab.dir.join(format!("lldpd-{}.log", host.ifname));
        let process = spawn_in(
            &host.ns,
            90,
            &[
                "lldpd",
                "-d",
                "-u",
                socket.to_str().unwrap(),
                "-I",
                &host.ifname,
            ],
            &log,
        );
        let lldpd = Lldpd {
            host: host.clone(),
            socket,
            _process: process,
        };
        let ready = wait_until(Duration::from_secs(10), || {
            lldpd.cli(&["show", "configuration"]).status.success()
        });
        assert!(
            ready,
            "lldpd in {} did not start: {}",
            host.ns,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let out = lldpd.cli(&["configure", "lldp", "tx-interval", "1"]);
        assert!(
            out.status.success(),
            "lldpcli configure: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lldpd
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["lldpcli", "-u", self.socket.to_str().unwrap()];
        all.extend_from_slice(args);
        self.host.run(&all)
    }

    fn neighbors(&self) -> String {
        String::from_utf8_lossy(&self.cli(&["show", "neighbors"]).stdout).into_owned()
    }

    /// Whether this lldpd lists `other`'s interface as a neighbour.
    fn sees(&self, other: &Host) -> bool {
        self.neighbors().contains(&other.ifname)
    }
}

#[test]
fn lldp_crosses_only_between_ports_whose_link_local_allows_it() {
    if !root_or_skip("lab_lldp") || !lldpd_or_skip("lab_lldp") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "")], &[]);
    assert_eq!(setting(&lab, &h[0].ifname, "link-local"), "none");
    let a = Lldpd::start(&lab, &h[0]);
    let b = Lldpd::start(&lab, &h[1]);

    // Default (none): LLDP is dropped at the switch and counted.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !a.sees(&h[1]),
        "LLDP crossed with link-local=none:\n{}",
        a.neighbors()
    );
    assert!(
        !b.sees(&h[0]),
        "LLDP crossed with link-local=none:\n{}",
        b.neighbors()
    );
    assert!(
        drops(&lab, &h[0].ifname, "reserved_dest") > 0,
        "{}",
        lab.ctl_ok(&["port", "stats", &h[0].ifname])
    );

    // Allowed on h1's port only: h2's port does not allow it, so still nothing either way.
    set(&lab, &h[0].ifname, &["link-local=lldp"]);
    assert_eq!(setting(&lab, &h[0].ifname, "link-local"), "lldp");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!b.sees(&h[0]), "LLDP reached a port that does not allow it");
    assert!(!a.sees(&h[1]), "LLDP from a port that does not allow it");

    // Allowed on both (h2's as part of a list): each lldpd sees the other.
    set(&lab, &h[1].ifname, &["link-local=stp,lldp"]);
    assert!(
        wait_until(Duration::from_secs(10), || a.sees(&h[1]) && b.sees(&h[0])),
        "LLDP did not cross with link-local=lldp on both ports:\n{}\n{}\n{}",
        a.neighbors(),
        b.neighbors(),
        lab.ctl_ok(&["port", "stats"])
    );

    // Back to none: the neighbours age out (TTL 4 s at a 1 s interval) and stay away.
    set(&lab, &h[0].ifname, &["link-local=none"]);
    assert!(
        wait_until(Duration::from_secs(12), || !a.sees(&h[1]) && !b.sees(&h[0])),
        "neighbours stayed after link-local=none:\n{}\n{}",
        a.neighbors(),
        b.neighbors()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Administrative link state

fn no_carrier(host: &Host) -> bool {
    let out = host.sh(&["ip", "link", "show", "dev", &host.ifname]);
    out.contains("NO-CARRIER")
}

#[test]
fn link_down_stops_both_ways_and_drops_the_taps_carrier() {
    if !root_or_skip("lab_link_down") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert_eq!(setting(&lab, &h[1].ifname, "link"), "up");
    assert!(!no_carrier(&h[1]));
    pin_all(&[&h[0], &h[1]]);

    set(&lab, &h[1].ifname, &["link=down"]);
    assert_eq!(setting(&lab, &h[1].ifname, "link"), "down");
    assert!(
        show(&lab, &h[1].ifname)["carrier"].is_string(),
        "{}",
        show(&lab, &h[1].ifname)
    );
    assert!(
        wait_until(Duration::from_secs(5), || no_carrier(&h[1])),
        "link=down: h2's TAP still has carrier: {}",
        h[1].sh(&["ip", "link", "show", "dev", &h[1].ifname])
    );
    let before = total_drops(&lab, &[&h[0], &h[1]], "admin_down");
    assert!(
        cannot_ping(&h[0], &h[1].ip),
        "ping crossed a link that is down"
    );
    assert!(
        cannot_ping(&h[1], &h[0].ip),
        "ping crossed a link that is down"
    );
    assert!(
        total_drops(&lab, &[&h[0], &h[1]], "admin_down") > before,
        "frames to a down port are counted admin_down: {}",
        lab.ctl_ok(&["port", "stats"])
    );

    set(&lab, &h[1].ifname, &["link=up"]);
    assert!(
        wait_until(Duration::from_secs(5), || !no_carrier(&h[1])),
        "link=up: carrier did not come back"
    );
    assert!(h[0].ping_eventually(&h[1].ip), "link=up: ping works again");
    assert!(h[1].ping(&h[0].ip, 3));
}

#[test]
fn rx_down_and_tx_down_each_stop_exactly_one_direction() {
    if !root_or_skip("lab_rx_tx_down") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "")], &[]);
    pin_all(&[&h[0], &h[1]]);
    assert!(h[1].ping_eventually(&h[0].ip), "{}", lab.log());
    let echo = "icmp[icmptype] == icmp-echo";
    let reply = "icmp[icmptype] == icmp-echoreply";

    // rx-down on h1's port: frames to h1 pass, frames from h1 do not.
    set(&lab, &h[0].ifname, &["link=rx-down"]);
    assert_eq!(setting(&lab, &h[0].ifname, "link"), "rx-down");
    let before = drops(&lab, &h[0].ifname, "admin_down");
    let to_h1 = h[0].capture(echo, &lab.dir.join("rx-down-h1.pcap"));
    let to_h2 = h[1].capture(reply, &lab.dir.join("rx-down-h2.pcap"));
    assert!(cannot_ping(&h[1], &h[0].ip), "h1's replies crossed rx-down");
    assert!(
        to_h1.finish().len() >= 2,
        "rx-down: h2's requests must reach h1"
    );
    assert!(
        to_h2.finish().is_empty(),
        "rx-down: h1's replies reached h2"
    );
    assert!(
        drops(&lab, &h[0].ifname, "admin_down") >= before + 2,
        "{}",
        lab.ctl_ok(&["port", "stats", &h[0].ifname])
    );

    // tx-down on h1's port: frames from h1 pass, frames to it do not.
    set(&lab, &h[0].ifname, &["link=tx-down"]);
    assert_eq!(setting(&lab, &h[0].ifname, "link"), "tx-down");
    let at_h2 = h[1].capture(echo, &lab.dir.join("tx-down-h2.pcap"));
    let at_h1 = h[0].capture(reply, &lab.dir.join("tx-down-h1.pcap"));
    assert!(cannot_ping(&h[0], &h[1].ip), "h2's replies crossed tx-down");
    assert!(
        at_h2.finish().len() >= 2,
        "tx-down: h1's requests must reach h2"
    );
    assert!(
        at_h1.finish().is_empty(),
        "tx-down: h2's replies reached h1"
    );
    assert!(!no_carrier(&h[0]), "only link=down takes the carrier");

    set(&lab, &h[0].ifname, &["link=up"]);
    assert!(h[0].ping_eventually(&h[1].ip));
    assert!(h[1].ping(&h[0].ip, 3) && h[0].ping(&h[1].ip, 3));
}

// ---------------------------------------------------------------------------------------------
// 4. Impairment

#[test]
fn tx_delay_and_jitter_slow_one_port_and_leave_the_others_alone() {
    if !root_or_skip("lab_delay") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, ""), (3, "")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[2].ping_eventually(&h[0].ip));
    pin_all(&[&h[0], &h[1], &h[2]]);

    set(&lab, &h[1].ifname, &["tx-delay=50"]);
    assert!(setting(&lab, &h[1].ifname, "tx-delay").contains("50"));
    // h1 -> h2 is delayed while h3 -> h1 runs at the same time, undisturbed.
    let (h1, ip2) = (h[0].clone(), h[1].ip.clone());
    let slow = std::thread::spawn(move || pings(&h1, &ip2, 10, "0.2"));
    let fast = pings(&h[2], &h[0].ip, 20, "0.1");
    let slow = slow.join().unwrap();
    assert!(slow.received >= 8, "{slow:?}");
    assert!(
        slow.min() >= 50.0 && slow.max() < 1000.0,
        "tx-delay=50: RTTs {:?}",
        slow.rtts
    );
    assert!(fast.received >= 18, "{fast:?}");
    assert!(
        fast.avg() < 20.0,
        "a delay on h2's port slowed h3 -> h1: {:?}",
        fast.rtts
    );

    // Jitter spreads the round trips.
    set(&lab, &h[1].ifname, &["tx-jitter=20"]);
    let jittery = pings(&h[0], &h[1].ip, 20, "0.1");
    assert!(jittery.received >= 18, "{jittery:?}");
    assert!(
        jittery.max() - jittery.min() > 5.0 && jittery.max() < 1000.0,
        "tx-delay=50 tx-jitter=20: RTTs {:?}",
        jittery.rtts
    );

    // impair=off clears it; rx-delay delays frames from the port's host.
    set(&lab, &h[1].ifname, &["impair=off"]);
    let clear = pings(&h[0], &h[1].ip, 10, "0.1");
    assert!(
        clear.received >= 9 && clear.avg() < 20.0,
        "impair=off: {clear:?}"
    );
    set(&lab, &h[0].ifname, &["rx-delay=30"]);
    let rx = pings(&h[0], &h[1].ip, 5, "0.2");
    assert!(
        rx.received >= 4 && rx.min() >= 30.0 && rx.max() < 1000.0,
        "rx-delay=30 on h1's port: {rx:?}"
    );
}

#[test]
fn tx_loss_drops_its_share_of_frames_and_all_at_100_percent() {
    if !root_or_skip("lab_loss") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "tx-loss=30")], &["--seed", "1"]);
    pin_all(&[&h[0], &h[1]]);
    let result = pings(&h[0], &h[1].ip, 1000, "0.002");
    assert_eq!(result.sent, 1000, "{result:?}");
    let lost = result.lost_fraction();
    assert!(
        (0.15..=0.45).contains(&lost),
        "tx-loss=30: {:.1} % of 1000 pings lost\n{}",
        lost * 100.0,
        lab.ctl_ok(&["port", "stats"])
    );
    let counted = drops(&lab, &h[1].ifname, "impair_loss");
    assert!(
        (100..=600).contains(&counted),
        "impair_loss on h2's port: {counted} (lost {} pings)",
        result.sent - result.received
    );

    set(&lab, &h[1].ifname, &["tx-loss=100"]);
    let none = pings(&h[0], &h[1].ip, 5, "0.1");
    assert_eq!(none.received, 0, "tx-loss=100 let frames through: {none:?}");
    assert!(drops(&lab, &h[1].ifname, "impair_loss") >= counted + 5);

    set(&lab, &h[1].ifname, &["impair=off"]);
    assert!(h[0].ping(&h[1].ip, 5), "impair=off: no loss");
}

/// Moves the switch's TAP `i` (re-created by a restart) into `host`'s namespace with the host's
/// address; returns the host with its new MAC.
fn rehome(lab: &Lab, i: usize, host: &Host) -> Host {
    let tap = lab.tap(i);
    sh(&[
        "ip", "-n", &lab.sw_ns, "link", "set", &tap, "netns", &host.ns,
    ]);
    let addr = format!("{}/24", host.ip);
    sh(&["ip", "-n", &host.ns, "addr", "add", &addr, "dev", &tap]);
    sh(&[
        "ip", "-n", &host.ns, "link", "set", &tap, "mtu", "1500", "up",
    ]);
    let brief = sh(&["ip", "-n", &host.ns, "-br", "link", "show", "dev", &tap]);
    Host {
        mac: brief.split_whitespace().nth(2).expect("MAC").to_owned(),
        ..host.clone()
    }
}

/// The sequence numbers of the replies in `ping` output.
fn replied_seqs(from: &Host, ip: &str, count: u32) -> Vec<u32> {
    let count = count.to_string();
    let out = from.run(&["ping", "-n", "-c", &count, "-i", "0.005", "-W", "1", ip]);
    let mut seqs: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("DUP!"))
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn the_same_seed_loses_the_same_frames_after_a_restart() {
    if !root_or_skip("lab_loss_seed") {
        return;
    }
    // The same switch twice, same port names and `--seed`: the same frames reach h2's port in
    // the same order (no ARP, no IPv6), so the same ones are lost.
    let ports = [(1, ""), (2, "tx-loss=50")];
    let (mut lab, h) = lab_with(&ports, &["--seed", "5"]);
    pin_all(&[&h[0], &h[1]]);
    let first = replied_seqs(&h[0], &h[1].ip, 300);
    let lost = 1.0 - first.len() as f64 / 300.0;
    assert!(
        (0.3..=0.7).contains(&lost),
        "tx-loss=50: {} of 300 replied",
        first.len()
    );

    assert_eq!(lab.stop_switch().and_then(|s| s.code()), Some(0));
    for (i, host) in h.iter().enumerate() {
        let tap = lab.tap(i + 1);
        assert!(
            wait_until(Duration::from_secs(5), || !lab.link_exists(&host.ns, &tap)),
            "{tap} outlived the switch"
        );
    }
    start(&mut lab, &ports, &["--seed", "5"]);
    let h: Vec<Host> = h
        .iter()
        .enumerate()
        .map(|(i, host)| rehome(&lab, i + 1, host))
        .collect();
    pin_all(&[&h[0], &h[1]]);
    let second = replied_seqs(&h[0], &h[1].ip, 300);
    assert_eq!(
        first, second,
        "--seed 5: the same pings should be lost both times"
    );
}

#[test]
fn tx_rate_limits_tcp_throughput_to_the_port() {
    if !root_or_skip("lab_rate") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "tx-rate=20mbit")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    let server_log = lab.dir.join("iperf3-server.log");
    let _server = spawn_in(
        &h[1].ns,
        40,
        &["iperf3", "-s", "-1", "-B", &h[1].ip],
        &server_log,
    );
    assert!(
        wait_until(Duration::from_secs(10), || h[1]
            .sh(&["ss", "-ltnH"])
            .contains(":5201")),
        "iperf3 server did not start: {}",
        std::fs::read_to_string(&server_log).unwrap_or_default()
    );
    let out = h[0].run(&[
        "iperf3",
        "-c",
        &h[1].ip,
        "-t",
        "3",
        "--connect-timeout",
        "5000",
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 JSON: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no end.sum_received in {report}"));
    let mbit = bps / 1e6;
    assert!(
        (10.0..=30.0).contains(&mbit),
        "tx-rate=20mbit: TCP got {mbit:.1} Mbit/s\n{}",
        lab.ctl_ok(&["port", "stats"])
    );
}

#[test]
fn duplicate_corrupt_reorder_and_limit_act_on_the_frames_to_the_host() {
    if !root_or_skip("lab_netem_rest") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "")], &["--seed", "3"]);
    pin_all(&[&h[0], &h[1]]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    let p2 = h[1].ifname.as_str();

    // Every request to h2 twice: ping reports the second replies as duplicates.
    set(&lab, p2, &["tx-duplicate=100"]);
    let out = h[0].run(&["ping", "-n", "-c", "5", "-i", "0.1", "-W", "1", &h[1].ip]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("DUP!").count() >= 4,
        "tx-duplicate=100:\n{text}"
    );

    // A flipped bit in every request: h2's checksums reject them all.
    set(&lab, p2, &["impair=off", "tx-corrupt=100"]);
    let corrupt = pings(&h[0], &h[1].ip, 5, "0.1");
    assert_eq!(corrupt.received, 0, "tx-corrupt=100: {corrupt:?}");

    // With a delay, reordered frames go at once: some round trips are short, some delayed.
    set(&lab, p2, &["impair=off", "tx-delay=50", "tx-reorder=50"]);
    let mixed = pings(&h[0], &h[1].ip, 20, "0.1");
    assert!(mixed.received >= 18, "{mixed:?}");
    assert!(
        mixed.min() < 40.0 && mixed.max() >= 50.0,
        "tx-delay=50 tx-reorder=50: RTTs {:?}",
        mixed.rtts
    );

    // A slow wire with a short queue: the burst past the limit is dropped and counted.
    set(&lab, p2, &["impair=off", "tx-rate=500kbit", "tx-limit=5"]);
    let before = drops(&lab, p2, "impair_overflow");
    let out = h[0].run(&[
        "ping", "-n", "-q", "-c", "100", "-i", "0.002", "-s", "1000", "-W", "1", &h[1].ip,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let overflowed = drops(&lab, p2, "impair_overflow") - before;
    assert!(
        overflowed >= 20,
        "tx-rate=500kbit tx-limit=5: {overflowed} overflowed\n{text}"
    );
    assert!(!text.contains(" 0% packet loss"), "{text}");

    set(&lab, p2, &["impair=off"]);
    assert!(h[0].ping(&h[1].ip, 5), "impair=off: a clean wire again");
}

// ---------------------------------------------------------------------------------------------
// 5. Runtime changes, reload, errors

/// The id `port list` gives `port`.
fn port_id(lab: &Lab, port: &str) -> Value {
    let list = lab.ctl_json(&["port", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port)
        .unwrap_or_else(|| panic!("{port} not in {list}"))["id"]
        .clone()
}

#[test]
fn port_set_applies_in_place_and_port_show_lists_every_setting() {
    if !root_or_skip("lab_port_set") {
        return;
    }
    let (lab, h) = lab_with(&[(1, ""), (2, "")], &[]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[0].ping(&h[1].ip, 3));
    let p2 = h[1].ifname.clone();

    // Every key, with the defaults of a plain switch port.
    let shown = show(&lab, &p2);
    let settings = &shown["settings"];
    for key in FLAGS {
        assert!(settings[key].is_string(), "{key} missing: {shown}");
    }
    for (key, want) in [
        ("learning", "on"),
        ("flood", "on"),
        ("mcast-flood", "on"),
        ("bcast-flood", "on"),
        ("isolated", "off"),
        ("hairpin", "off"),
        ("link", "up"),
        ("link-local", "none"),
    ] {
        assert_eq!(settings[key], want, "default {key}: {shown}");
    }
    for dir in ["tx", "rx"] {
        for key in IMPAIRMENTS {
            let key = format!("{dir}-{key}");
            assert!(settings[&key].is_string(), "{key} missing: {shown}");
        }
    }
    assert!(shown["carrier"].is_string(), "carrier: {shown}");
    // Text: a line per setting (each impaired direction summed up on a line of its own).
    let text = lab.ctl_ok(&["port", "show", &p2]);
    for key in FLAGS.iter().chain(&["link", "link-local", "tx-", "rx-"]) {
        assert!(text.contains(key), "port show text lacks {key}:\n{text}");
    }

    // Several keys at once, while the port stays attached: same id, its MAC entry stays, its
    // counters keep counting.
    let id = port_id(&lab, &p2);
    let rx_before = rx_frames(&lab, &p2);
    assert!(learned_on(&lab, &h[1].mac, &p2));
    set(
        &lab,
        &p2,
        &[
            "hairpin=on",
            "mcast-flood=off",
            "link-local=lldp",
            "tx-delay=5",
            "tx-rate=500mbit",
            "tx-delay-dist=normal",
            "seed=7",
        ],
    );
    assert!(
        learned_on(&lab, &h[1].mac, &p2),
        "port set lost the port's MAC entry"
    );
    assert_eq!(port_id(&lab, &p2), id, "port set re-attached the port");
    assert!(
        rx_frames(&lab, &p2) >= rx_before,
        "port set reset the counters"
    );
    let shown = show(&lab, &p2);
    assert_eq!(shown["settings"]["hairpin"], "on", "{shown}");
    assert_eq!(shown["settings"]["mcast-flood"], "off", "{shown}");
    assert_eq!(shown["settings"]["link-local"], "lldp", "{shown}");
    assert_eq!(
        shown["settings"]["learning"], "on",
        "untouched keys stay: {shown}"
    );
    assert!(
        shown["settings"]["tx-delay"]
            .as_str()
            .unwrap()
            .contains('5'),
        "{shown}"
    );
    let text = lab.ctl_ok(&["port", "show", &p2]);
    assert!(text.contains("delay") && text.contains("rate"), "{text}");
    assert!(h[0].ping(&h[1].ip, 5));
    assert!(
        rx_frames(&lab, &p2) >= rx_before + 5,
        "counters keep counting"
    );

    // Refused: an unknown key, a bad value, an unknown port; exit 1, the key named, nothing
    // changed.
    for (args, named) in [
        (vec!["tx-dleay=5"], "tx-dleay"),
        (vec!["learning=maybe"], "learning"),
        (vec!["tx-loss=150"], "tx-loss"),
        (vec!["tx-rate=fast"], "tx-rate"),
        (vec!["link=sideways"], "link"),
        (vec!["link-local=0x01"], "link-local"),
        (vec!["link-local=bogus"], "link-local"),
        (vec!["tx-delay-dist=pareto"], "tx-delay-dist"),
    ] {
        let mut all = vec!["port", "set", p2.as_str()];
        all.extend_from_slice(&args);
        let out = lab.ctl(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "port set {args:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "port set {args:?} must name {named}: {stderr}"
        );
    }
    let out = lab.ctl(&["port", "set", "nosuchport", "learning=off"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchport"));
    let shown = show(&lab, &p2);
    assert_eq!(shown["settings"]["learning"], "on", "{shown}");
    assert_eq!(shown["settings"]["link"], "up", "{shown}");
    assert_eq!(shown["settings"]["link-local"], "lldp", "{shown}");
}

/// Writes the lab's config file: TAPs 1 and 2, with `port2` added to port 2's table.
fn write_config(lab: &Lab, port2: &str) -> PathBuf {
    let path = lab.dir.join("vswitchd.toml");
    let text = format!(
        "# written by the test\n\
         [[port]]\nname = \"{}\"\nhairpin = false\nlink-local = \"none\"\n\n\
         [[port]]\nname = \"{}\"\n{port2}\n",
        lab.tap(1),
        lab.tap(2)
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_reload_changes_a_ports_impairment_without_detaching_it() {
    if !root_or_skip("lab_reload") {
        return;
    }
    let mut lab = Lab::new();
    let config = write_config(&lab, "");
    lab.launch(
        vec!["--config".into(), config.display().to_string()],
        &[1, 2],
    );
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
    assert!(h1.ping(&h2.ip, 3));
    let fast = pings(&h1, &h2.ip, 5, "0.1");
    assert!(fast.received >= 4 && fast.avg() < 20.0, "{fast:?}");
    let rx_before = rx_frames(&lab, &h2.ifname);
    let id = port_id(&lab, &h2.ifname);

    write_config(&lab, "tx-delay = 50");
    let reply = lab.ctl_json(&["reload"]);
    for list in ["added", "removed", "replaced"] {
        let names = reply[list].to_string();
        assert!(!names.contains(&h2.ifname), "{list}: {reply}");
    }
    assert!(
        learned_on(&lab, &h2.mac, &h2.ifname),
        "the reload forgot h2's MAC entry: {}",
        lab.ctl_ok(&["fdb", "show"])
    );
    assert_eq!(
        port_id(&lab, &h2.ifname),
        id,
        "the reload re-attached the port"
    );
    assert!(
        rx_frames(&lab, &h2.ifname) >= rx_before,
        "counters were reset"
    );
    assert!(setting(&lab, &h2.ifname, "tx-delay").contains("50"));
    let slow = pings(&h1, &h2.ip, 5, "0.2");
    assert!(
        slow.received >= 4 && slow.min() >= 50.0 && slow.max() < 1000.0,
        "tx-delay = 50 from the file: {slow:?}"
    );
    assert!(
        rx_frames(&lab, &h2.ifname) >= rx_before + 4,
        "counters keep counting"
    );

    // The key leaves the file: the delay goes.
    write_config(&lab, "");
    lab.ctl_json(&["reload"]);
    let fast = pings(&h1, &h2.ip, 5, "0.1");
    assert!(
        fast.received >= 4 && fast.avg() < 20.0,
        "tx-delay removed from the file: {fast:?}"
    );
    assert!(learned_on(&lab, &h2.mac, &h2.ifname));

    // A bad value in the file: the reload is refused naming the key, and nothing changes.
    write_config(&lab, "tx-delay = \"soon\"\nisolated = true");
    let out = lab.ctl(&["reload"]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(message.contains("tx-delay"), "{message}");
    assert_eq!(setting(&lab, &h2.ifname, "isolated"), "off");
    assert!(h1.ping(&h2.ip, 2));
}

#[test]
fn a_bad_lab_key_in_port_stops_vswitchd_with_exit_2_naming_it() {
    if !root_or_skip("lab_bad_port_key") {
        return;
    }
    let lab = Lab::new();
    let tap = lab.tap(1);
    for (options, named) in [
        ("tx-dleay=5", "tx-dleay"),
        ("flood=maybe", "flood"),
        ("tx-loss=150", "tx-loss"),
        ("link=sideways", "link"),
        ("rx-rate=fast", "rx-rate"),
    ] {
        let spec = format!("{tap},{options}");
        let ctl = lab.dir.join("bad.ctl");
        let mut child = lab
            .vswitchd_command(&[
                "--port".into(),
                spec.clone(),
                "--ctl-socket".into(),
                ctl.display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vswitchd");
        let status = wait_exit(&mut child, Duration::from_secs(10));
        if status.is_none() {
            stop_child(&mut child, Duration::from_secs(2));
            panic!("vswitchd --port {spec} kept running");
        }
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.unwrap().code(), Some(2), "--port {spec}: {err}");
        assert!(
            err.contains(named),
            "--port {spec} must name {named}: {err}"
        );
        assert!(
            !lab.link_exists(&lab.sw_ns, &tap),
            "--port {spec} left its TAP"
        );
    }
}
