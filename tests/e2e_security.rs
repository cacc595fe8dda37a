//! End to end: port security and storm control (issue 14) — MAC-move damping against a real
//! loop (a veth cable from the switch back to itself), locked ports with MAB, a per-port MAC
//! limit, sticky MACs saved to the config file, and per-port storm limits with the drop and
//! block actions. Needs root (see `common::root_or_skip`).
//!
//! Floods are crafted here: an AF_PACKET socket in the sending host's namespace writes
//! Ethernet frames straight onto its interface (the switch's TAP), so no traffic ever leaves
//! the test's namespaces. Timing on a shared 2-core machine is noisy: every rate check is a
//! broad range or a bound far from the failure it catches.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::ports::{Background, cannot_ping, drops, lab_with, pin_all, set, setting, spawn_in};
use common::{Host, Lab, root_or_skip, sh, wait_until};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Held by the tests that load the machine (a loop storm, floods) or measure rates: `cargo test`
/// runs two tests at once on a 2-core machine, and one's flood must not be the other's
/// measurement.
fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    // A test that failed holding it leaves it poisoned; the lock itself is still good.
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// `port`'s row of `vswitchctl --json port stats`.
fn stats(lab: &Lab, port: &str) -> Value {
    lab.ctl_json(&["port", "stats", port])[0].clone()
}

fn tx_frames(lab: &Lab, port: &str) -> u64 {
    stats(lab, port)["tx_frames"]
        .as_u64()
        .expect("tx_frames in port stats")
}

/// Every row of `vswitchctl --json fdb show`.
fn fdb(lab: &Lab) -> Vec<Value> {
    lab.ctl_json(&["fdb", "show"])
        .as_array()
        .expect("fdb show --json is a list")
        .clone()
}

/// The rows of `fdb show` on `port`.
fn fdb_rows_on(lab: &Lab, port: &str) -> Vec<Value> {
    fdb(lab).into_iter().filter(|r| r["port"] == port).collect()
}

/// The row of `fdb show` for `mac` on `port`, if any.
fn fdb_row(lab: &Lab, port: &str, mac: &str) -> Option<Value> {
    fdb_rows_on(lab, port).into_iter().find(|r| r["mac"] == mac)
}

/// A boolean flag of an fdb row (absent means false).
fn flag(row: &Value, key: &str) -> bool {
    row[key].as_bool().unwrap_or(false)
}

/// Pings `ip` from `from` `count` times, `interval` seconds apart; (sent, received).
fn ping_counts(from: &Host, ip: &str, count: u32, interval: &str) -> (u32, u32) {
    let count_s = count.to_string();
    let out = from.run(&[
        "ping", "-n", "-q", "-c", &count_s, "-i", interval, "-W", "1", ip,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
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
    (numbers[0], numbers[1])
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
fn mac_bytes(mac: &str) -> [u8; 6] {
    let parts: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).unwrap_or_else(|e| panic!("MAC {mac}: {e}")))
        .collect();
    parts.try_into().unwrap_or_else(|_| panic!("MAC {mac}"))
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A minimum-size Ethernet frame of the local experimental EtherType (0x88b5), which no host
/// stack answers.
fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.resize(60, 0);
    f
}

const BROADCAST: [u8; 6] = [0xff; 6];

/// How a raw sender paces itself: `burst` frames, then a `pause`.
#[derive(Clone, Copy)]
struct Pace {
    burst: u32,
    pause: Duration,
}

/// Writes the frames `next` makes (until it returns `None`, `stop` is set or `limit` passes) onto
/// `host`'s interface with an AF_PACKET socket opened in its namespace. Returns how many were
/// handed to the kernel.
fn send_raw(
    host: &Host,
    pace: Pace,
    limit: Duration,
    stop: Arc<AtomicBool>,
    mut next: impl FnMut(u64) -> Option<Vec<u8>> + Send + 'static,
) -> JoinHandle<u64> {
    let ifname = vswitch::sys::IfName::new(&host.ifname).expect("interface name");
    Lab::in_netns(host, move || {
        // The switch's own AF_PACKET socket type: frames go out with a virtio-net header.
        let sock = vswitch::sys::packet::PacketSocket::open(&ifname)
            .unwrap_or_else(|e| panic!("packet socket on {ifname}: {e}"));
        let mut with_hdr = Vec::with_capacity(2048);
        let deadline = Instant::now() + limit;
        let mut sent = 0u64;
        let mut in_burst = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Some(f) = next(sent) else { break };
            with_hdr.clear();
            with_hdr.resize(vswitch::wire::VNET_HDR_LEN, 0);
            with_hdr.extend_from_slice(&f);
            if let Err(e) = sock.send(&with_hdr) {
                match e.raw_os_error() {
                    Some(libc::ENOBUFS | libc::EAGAIN) => {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    _ => panic!("send on {ifname}: {e}"),
                }
            }
            sent += 1;
            in_burst += 1;
            if in_burst >= pace.burst {
                in_burst = 0;
                std::thread::sleep(pace.pause);
            }
        }
        sent
    })
}

/// A flood of copies of one frame from `host`, running until stopped (at most `limit`).
struct Flood {
    stop: Arc<AtomicBool>,
    sender: Option<JoinHandle<u64>>,
    started: Instant,
}

/// Flood pacing: 64 frames a millisecond at most (tens of thousands a second, many times any
/// limit under test), so that the sender itself does not take a whole core of the two the
/// switch, iperf3 and the kernel share (which would measure the machine, not the switch).
const FLOOD: Pace = Pace {
    burst: 64,
    pause: Duration::from_millis(1),
};

impl Flood {
    fn start(host: &Host, frame: Vec<u8>, limit: Duration) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let sender = send_raw(host, FLOOD, limit, stop.clone(), move |_| {
            Some(frame.clone())
        });
        Flood {
            stop,
            sender: Some(sender),
            started: Instant::now(),
        }
    }

    /// Stops the flood; returns the frames sent per second.
    fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.take().unwrap().join().expect("flood sender");
        sent as f64 / self.started.elapsed().as_secs_f64()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

/// Frames per second `port` sent to its host over `secs`, from its tx_frames counter.
fn tx_rate(lab: &Lab, port: &str, secs: f64) -> f64 {
    let before = tx_frames(lab, port);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = tx_frames(lab, port);
    (after - before) as f64 / t0.elapsed().as_secs_f64()
}

/// An iperf3 server on `host` (serving any number of tests while the handle lives).
fn iperf_server(lab: &Lab, host: &Host) -> Background {
    let log = lab.dir.join(format!("iperf3-{}.log", host.ifname));
    let server = spawn_in(&host.ns, 60, &["iperf3", "-s", "-B", &host.ip], &log);
    assert!(
        wait_until(Duration::from_secs(10), || host
            .sh(&["ss", "-ltnH"])
            .contains(":5201")),
        "iperf3 server did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    server
}

/// TCP Mbit/s from `client` to the iperf3 server at `ip` over `secs` seconds.
fn iperf_mbit(client: &Host, ip: &str, secs: u32) -> f64 {
    let secs = secs.to_string();
    let out = client.run(&[
        "iperf3",
        "-c",
        ip,
        "-t",
        &secs,
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
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no end.sum_received in {report}"))
        / 1e6
}

// ---------------------------------------------------------------------------------------------
// 1. A real loop and MAC-move damping

/// A veth pair in the switch's namespace, `{prefix}la` and `{prefix}lb`: a cable from the
/// switch back to itself once both ends are `netdev:` ports.
fn loop_cable(lab: &Lab) -> (String, String) {
    let a = format!("{}la", lab.prefix);
    let b = format!("{}lb", lab.prefix);
    sh(&[
        "ip", "-n", &lab.sw_ns, "link", "add", "name", &a, "type", "veth", "peer", "name", &b,
    ]);
    (a, b)
}

/// A switch with hosts on TAPs 1 and 2 and both ends of a loop cable as ports, plus `extra`
/// flags; returns the lab, the hosts and the cable's ends.
fn looped_lab(extra: &[&str]) -> (Lab, Host, Host, String, String) {
    let mut lab = Lab::new();
    let (a, b) = loop_cable(&lab);
    let mut args: Vec<String> = vec![
        "--port".into(),
        lab.tap(1),
        "--port".into(),
        lab.tap(2),
        "--port".into(),
        format!("netdev:{a}"),
        "--port".into(),
        format!("netdev:{b}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    lab.launch(args, &[1, 2]);
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    let ends_up = |lab: &Lab| {
        let list = lab.ctl_json(&["port", "list"]);
        [&a, &b].iter().all(|end| {
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == end.as_str() && p["state"] == "up")
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || ends_up(&lab)),
        "the loop cable's ends are not up: {}\n{}",
        lab.ctl_ok(&["port", "list"]),
        lab.log()
    );
    (lab, h1, h2, a, b)
}

/// Frames that crossed veth end `ifname` either way so far (the kernel's counters: they need
/// no answer from a switch that may be busy).
fn veth_frames(lab: &Lab, ifname: &str) -> u64 {
    let out = sh(&[
        "ip", "-n", &lab.sw_ns, "-s", "-j", "link", "show", "dev", ifname,
    ]);
    let link: Value = serde_json::from_str(&out).expect("ip -j link");
    let stats = &link[0]["stats64"];
    stats["rx"]["packets"].as_u64().expect("rx packets") + stats["tx"]["packets"].as_u64().unwrap()
}

/// One ARP broadcast from `from` asking for `to` (the frame that starts a loop).
fn one_broadcast(from: &Host, to: &Host) {
    from.run(&["arping", "-c", "1", "-w", "1", "-I", &from.ifname, &to.ip]);
}

#[test]
fn mac_move_damping_stops_a_real_loop_and_without_it_there_is_a_storm() {
    if !root_or_skip("security_loop") {
        return;
    }
    let _heavy = heavy();
    let started = Instant::now();
    {
        let (lab, h1, h2, a, b) = looped_lab(&[]);
        one_broadcast(&h1, &h2);

        // The switch keeps answering and the hosts keep talking while the loop is in place.
        let (p1, ip2) = (h1.clone(), h2.ip.clone());
        let pinger = std::thread::spawn(move || ping_counts(&p1, &ip2, 100, "0.05"));
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let t0 = Instant::now();
            let out = lab.ctl(&["show"]);
            let took = t0.elapsed();
            assert!(
                out.status.success(),
                "vswitchctl show failed during the loop: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            slowest = slowest.max(took);
            std::thread::sleep(Duration::from_secs(1));
        }
        let (sent, received) = pinger.join().expect("pinger");
        assert!(
            slowest < Duration::from_secs(1),
            "vswitchctl show took {slowest:?} with a loop (damping on)"
        );
        let lost = 1.0 - f64::from(received) / f64::from(sent.max(1));
        assert!(
            sent == 100 && lost < 0.05,
            "pings across a looped switch (damping on): {received} of {sent} replied\n{}",
            lab.ctl_ok(&["port", "stats"])
        );

        // The loop is quiet now: a handful of frames on the cable, not a storm.
        let before = veth_frames(&lab, &a);
        std::thread::sleep(Duration::from_secs(2));
        let quiet = veth_frames(&lab, &a) - before;
        assert!(
            quiet < 1000,
            "{quiet} frames crossed the loop cable in 2 s after damping"
        );

        let warnings: Vec<String> = lab
            .log()
            .lines()
            .filter(|l| l.contains("possible loop"))
            .map(str::to_owned)
            .collect();
        assert!(
            !warnings.is_empty(),
            "no \"possible loop\" warning:\n{}",
            lab.log()
        );
        assert!(
            warnings.iter().any(|l| l.contains(&a) || l.contains(&b)),
            "the loop warning names neither {a} nor {b}: {warnings:?}"
        );
        eprintln!(
            "loop, damping on: show at most {slowest:?}, {received}/{sent} pings, {quiet} frames \
             on the cable in 2 s; {}",
            warnings[0]
        );
        let flapped = drops(&lab, &a, "mac_flap") + drops(&lab, &b, "mac_flap");
        assert!(
            flapped > 0,
            "no mac_flap drops on the loop ports\n{}",
            lab.ctl_ok(&["port", "stats"])
        );
    }

    // The same loop without damping: one broadcast becomes a storm (the test above can fail).
    let (mut lab, h1, h2, a, _b) = looped_lab(&["--mac-move-limit", "off"]);
    one_broadcast(&h1, &h2);
    let before = veth_frames(&lab, &a);
    std::thread::sleep(Duration::from_secs(2));
    let storm = veth_frames(&lab, &a) - before;
    let stopped = lab.stop_switch();
    assert!(
        storm > 10_000,
        "--mac-move-limit off: only {storm} frames crossed the loop cable in 2 s"
    );
    assert!(stopped.is_some(), "the stormy switch did not stop");
    eprintln!(
        "loop: storm {storm} frames in 2 s without damping; test took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Locked ports and MAB (the steps of westermo/brist's basic_locked_port)

#[test]
fn a_locked_port_passes_only_authorised_sources_and_mab_lists_the_rest() {
    if !root_or_skip("security_locked") {
        return;
    }
    let (lab, h) = lab_with(&[(1, "locked=on"), (2, "")], &[]);
    let (p1, p2) = (h[0].ifname.as_str(), h[1].ifname.as_str());
    let mac1 = h[0].mac.as_str();
    pin_all(&[&h[0], &h[1]]);
    assert_eq!(setting(&lab, p1, "locked"), "on");
    assert_eq!(setting(&lab, p1, "mab"), "off");
    assert_eq!(setting(&lab, p2, "locked"), "off");

    // Locked, no entry: nothing from h1 passes, and the drops are counted.
    assert!(cannot_ping(&h[0], &h[1].ip), "locked=on: h1 reached h2");
    let locked = drops(&lab, p1, "locked");
    assert!(
        locked >= 2,
        "locked drops: {}",
        lab.ctl_ok(&["port", "stats", p1])
    );
    assert!(
        fdb_row(&lab, p1, mac1).is_none(),
        "a locked port without MAB learned h1: {:?}",
        fdb(&lab)
    );

    // A static entry authorises h1.
    lab.ctl_ok(&["fdb", "add", p1, mac1]);
    assert!(h[0].ping_eventually(&h[1].ip), "fdb add: h1 still blocked");
    assert!(h[0].ping(&h[1].ip, 3) && h[1].ping(&h[0].ip, 3));

    // Removed: blocked again.
    lab.ctl_ok(&["fdb", "del", mac1]);
    assert!(cannot_ping(&h[0], &h[1].ip), "fdb del: h1 still passes");
    assert!(drops(&lab, p1, "locked") > locked);

    // MAB: h1's source shows up as a locked entry, which does not let it through.
    set(&lab, p1, &["mab=on"]);
    assert_eq!(setting(&lab, p1, "mab"), "on");
    assert!(
        cannot_ping(&h[0], &h[1].ip),
        "mab=on: h1 passes unauthorised"
    );
    let listed = wait_until(Duration::from_secs(5), || {
        fdb_row(&lab, p1, mac1).is_some_and(|r| flag(&r, "locked"))
    });
    assert!(
        listed,
        "mab=on: no locked entry for {mac1} on {p1}: {:?}",
        fdb(&lab)
    );
    assert!(
        cannot_ping(&h[0], &h[1].ip),
        "a locked entry let h1 through"
    );

    // Authorised: the entry becomes static and h1's traffic passes.
    lab.ctl_ok(&["fdb", "add", p1, mac1]);
    assert!(h[0].ping_eventually(&h[1].ip), "MAB + fdb add: h1 blocked");
    assert!(h[0].ping(&h[1].ip, 3));
    let row = fdb_row(&lab, p1, mac1).expect("h1's entry");
    assert!(
        flag(&row, "static") && !flag(&row, "locked"),
        "authorised entry: {row}"
    );

    // Unlocked: everything passes, with or without an entry.
    lab.ctl_ok(&["fdb", "del", mac1]);
    assert!(cannot_ping(&h[0], &h[1].ip), "fdb del with MAB: h1 passes");
    set(&lab, p1, &["locked=off"]);
    assert_eq!(setting(&lab, p1, "locked"), "off");
    assert!(h[0].ping_eventually(&h[1].ip), "locked=off: h1 blocked");
    assert!(h[0].ping(&h[1].ip, 3) && h[1].ping(&h[0].ip, 3));
}

// ---------------------------------------------------------------------------------------------
// 3. max-macs

#[test]
fn max_macs_caps_the_ports_learned_sources_and_leaves_known_ones_working() {
    if !root_or_skip("security_max_macs") {
        return;
    }
    let _heavy = heavy();
    let (lab, h) = lab_with(&[(1, "max-macs=100"), (2, ""), (3, "")], &[]);
    let p1 = h[0].ifname.as_str();
    assert_eq!(setting(&lab, p1, "max-macs"), "100");
    // Every host learned first.
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[0].ping_eventually(&h[2].ip));
    assert!(h[1].ping_eventually(&h[2].ip));
    for host in &h {
        assert!(
            fdb_row(&lab, &host.ifname, &host.mac).is_some(),
            "{} not learned: {:?}",
            host.mac,
            fdb(&lab)
        );
    }

    // 10 000 frames from random unicast sources, to h2.
    let dst = mac_bytes(&h[1].mac);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let pace = Pace {
        burst: 50,
        pause: Duration::from_millis(1),
    };
    let sender = send_raw(
        &h[0],
        pace,
        Duration::from_secs(20),
        Arc::new(AtomicBool::new(false)),
        move |n| {
            if n >= 10_000 {
                return None;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            let src = [0x02, b[0], b[1], b[2], b[3], b[4]];
            Some(frame(dst, src))
        },
    );
    let sent = sender.join().expect("sender");
    assert_eq!(sent, 10_000);
    std::thread::sleep(Duration::from_millis(500));

    let rows = fdb_rows_on(&lab, p1);
    assert_eq!(
        rows.len(),
        100,
        "max-macs=100: {} entries on {p1}\n{}",
        rows.len(),
        lab.ctl_ok(&["port", "stats", p1])
    );
    let limited = drops(&lab, p1, "mac_limit");
    assert!(
        limited > 0,
        "no mac_limit drops: {}",
        lab.ctl_ok(&["port", "stats", p1])
    );
    for host in &h {
        assert!(
            fdb_row(&lab, &host.ifname, &host.mac).is_some(),
            "{} was lost from {}",
            host.mac,
            host.ifname
        );
    }
    assert!(h[0].ping(&h[1].ip, 3), "h1's known MAC stopped working");
    assert!(h[2].ping(&h[0].ip, 3));
    assert_eq!(
        fdb_rows_on(&lab, p1).len(),
        100,
        "the known host's traffic changed the count"
    );

    // Off: new sources are learned again.
    set(&lab, p1, &["max-macs=off"]);
    assert_eq!(setting(&lab, p1, "max-macs"), "off");
    let fresh: Vec<[u8; 6]> = (0..20u8).map(|i| [0x02, 0x5e, 0xc0, 0, 0, i]).collect();
    let frames = fresh.clone();
    let sender = send_raw(
        &h[0],
        pace,
        Duration::from_secs(10),
        Arc::new(AtomicBool::new(false)),
        move |n| frames.get(n as usize).map(|&src| frame(dst, src)),
    );
    assert_eq!(sender.join().expect("sender"), 20);
    assert!(
        wait_until(Duration::from_secs(3), || fdb_rows_on(&lab, p1).len()
            >= 120),
        "max-macs=off: {} entries on {p1}, want >= 120 (new sources from {})",
        fdb_rows_on(&lab, p1).len(),
        mac_text(fresh[0])
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Sticky MACs

/// Moves the switch's TAP `i` (re-created by a restart) into `host`'s namespace with the host's
/// address and MAC `mac`, and brings it up.
fn rehome(lab: &Lab, i: usize, host: &Host, mac: &str) -> Host {
    let tap = lab.tap(i);
    sh(&[
        "ip", "-n", &lab.sw_ns, "link", "set", &tap, "netns", &host.ns,
    ]);
    sh(&[
        "ip", "-n", &host.ns, "link", "set", "dev", &tap, "address", mac,
    ]);
    let addr = format!("{}/24", host.ip);
    sh(&["ip", "-n", &host.ns, "addr", "add", &addr, "dev", &tap]);
    sh(&[
        "ip", "-n", &host.ns, "link", "set", &tap, "mtu", "1500", "up",
    ]);
    Host {
        mac: mac.to_owned(),
        ..host.clone()
    }
}

#[test]
fn sticky_macs_never_age_survive_a_flush_and_come_back_from_fdb_save() {
    if !root_or_skip("security_sticky") {
        return;
    }
    let ports = [(1, "sticky=on"), (2, "")];
    let (mut lab, h) = lab_with(&ports, &["--mac-ageing", "10"]);
    let (p1, p2) = (h[0].ifname.clone(), h[1].ifname.clone());
    let (mac1, mac2) = (h[0].mac.clone(), h[1].mac.clone());
    assert_eq!(setting(&lab, &p1, "sticky"), "on");
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert!(h[0].ping(&h[1].ip, 2));

    let row = fdb_row(&lab, &p1, &mac1).expect("h1 learned");
    assert!(flag(&row, "sticky"), "h1's entry is not sticky: {row}");
    let row = fdb_row(&lab, &p2, &mac2).expect("h2 learned");
    assert!(!flag(&row, "sticky"), "h2's port is not sticky: {row}");

    // `fdb save`: the sticky and static entries as [[fdb]] tables, not the learned ones.
    let fixed = "02:00:00:5a:5a:01";
    lab.ctl_ok(&["fdb", "add", &p2, fixed]);
    let saved = lab.ctl_ok(&["fdb", "save"]);
    assert!(saved.contains("[[fdb]]"), "fdb save:\n{saved}");
    assert!(
        saved.contains(&mac1) && saved.contains(&p1),
        "fdb save lacks h1's sticky entry:\n{saved}"
    );
    assert!(
        saved.contains(fixed),
        "fdb save lacks the static entry:\n{saved}"
    );
    assert!(
        !saved.contains(&mac2),
        "fdb save has h2's learned entry:\n{saved}"
    );

    // Sticky entries never age: h2's learned one goes, h1's stays.
    let aged = wait_until(Duration::from_secs(30), || {
        fdb_row(&lab, &p2, &mac2).is_none()
    });
    assert!(aged, "h2's entry did not age out: {:?}", fdb(&lab));
    assert!(
        fdb_row(&lab, &p1, &mac1).is_some_and(|r| flag(&r, "sticky")),
        "the sticky entry aged out: {:?}",
        fdb(&lab)
    );

    // And survive a flush.
    h[1].ping(&h[0].ip, 1);
    lab.ctl_ok(&["fdb", "flush"]);
    assert!(
        fdb_row(&lab, &p1, &mac1).is_some_and(|r| flag(&r, "sticky")),
        "fdb flush removed the sticky entry: {:?}",
        fdb(&lab)
    );
    assert!(fdb_row(&lab, &p2, &mac2).is_none(), "fdb flush kept h2");

    // Saved into the config file, they are static entries from the start after a restart.
    assert_eq!(lab.stop_switch().and_then(|s| s.code()), Some(0));
    let config = lab.dir.join("vswitchd.toml");
    let text = format!("[[port]]\nname = \"{p1}\"\n\n[[port]]\nname = \"{p2}\"\n\n{saved}\n");
    std::fs::write(&config, &text).unwrap();
    for (i, host) in h.iter().enumerate() {
        let tap = lab.tap(i + 1);
        assert!(
            wait_until(Duration::from_secs(5), || !lab.link_exists(&host.ns, &tap)),
            "{tap} outlived the switch"
        );
    }
    lab.launch(
        vec!["--config".into(), config.display().to_string()],
        &[1, 2],
    );
    let rows = fdb(&lab);
    let row = fdb_row(&lab, &p1, &mac1)
        .unwrap_or_else(|| panic!("{mac1} not restored from\n{text}\nfdb: {rows:?}"));
    assert!(flag(&row, "static"), "restored entry: {row}");
    let row = fdb_row(&lab, &p2, fixed).unwrap_or_else(|| panic!("{fixed} not restored: {rows:?}"));
    assert!(flag(&row, "static"), "restored entry: {row}");

    // h1 (with its old MAC on the new TAP) works through its static entry.
    let h1 = rehome(&lab, 1, &h[0], &mac1);
    let fresh_mac2 = {
        let tap = lab.tap(2);
        let brief = sh(&["ip", "-n", &lab.sw_ns, "-br", "link", "show", "dev", &tap]);
        brief.split_whitespace().nth(2).expect("MAC").to_owned()
    };
    let h2 = rehome(&lab, 2, &h[1], &fresh_mac2);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
    let row = fdb_row(&lab, &p1, &mac1).expect("h1's entry");
    assert!(flag(&row, "static"), "after traffic: {row}");
}

// ---------------------------------------------------------------------------------------------
// 5. Storm control

#[test]
fn storm_bcast_limits_a_broadcast_flood_and_tcp_between_others_keeps_its_rate() {
    if !root_or_skip("security_storm_bcast") {
        return;
    }
    let _heavy = heavy();
    let (lab, h) = lab_with(&[(1, "storm-bcast=1000"), (2, ""), (3, ""), (4, "")], &[]);
    let p1 = h[0].ifname.as_str();
    assert!(setting(&lab, p1, "storm-bcast").contains("1000"));
    assert_eq!(setting(&lab, p1, "storm-action"), "drop");
    assert_eq!(setting(&lab, p1, "storm-mcast"), "off");
    pin_all(&[&h[0], &h[1], &h[2], &h[3]]);
    assert!(h[2].ping_eventually(&h[3].ip), "{}", lab.log());
    assert!(h[0].ping_eventually(&h[1].ip));

    let _server = iperf_server(&lab, &h[3]);
    let unloaded = iperf_mbit(&h[2], &h[3].ip, 3);

    let flood = Flood::start(
        &h[0],
        frame(BROADCAST, mac_bytes(&h[0].mac)),
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (client, server_ip) = (h[2].clone(), h[3].ip.clone());
    let iperf = std::thread::spawn(move || iperf_mbit(&client, &server_ip, 3));
    std::thread::sleep(Duration::from_millis(300));
    let received = tx_rate(&lab, &h[1].ifname, 2.5);
    let loaded = iperf.join().expect("iperf3 client");
    let offered = flood.finish();
    let stormed = drops(&lab, p1, "storm");
    eprintln!(
        "storm-bcast=1000: offered {offered:.0}/s, h2 received {received:.0}/s, {stormed} storm \
         drops; TCP {unloaded:.0} Mbit/s unloaded, {loaded:.0} Mbit/s during the flood"
    );
    assert!(
        offered > 5000.0,
        "the flood was too thin to test the limit: {offered:.0}/s"
    );
    assert!(
        (500.0..=2000.0).contains(&received),
        "storm-bcast=1000: h2 received {received:.0} broadcasts/s\n{}",
        lab.ctl_ok(&["port", "stats"])
    );
    assert!(stormed > 0, "no storm drops on {p1}");
    assert!(
        loaded >= unloaded * 0.5,
        "TCP between h3 and h4 fell from {unloaded:.0} to {loaded:.0} Mbit/s during the flood"
    );
    assert!(h[0].ping(&h[1].ip, 3), "unicast from the flooding port");
}

#[test]
fn storm_mcast_and_unknown_unicast_limits_cap_their_own_kind_only() {
    if !root_or_skip("security_storm_mcast") {
        return;
    }
    let _heavy = heavy();
    let (lab, h) = lab_with(&[(1, "storm-mcast=1000,storm-unknown=1000"), (2, "")], &[]);
    let (p1, p2) = (h[0].ifname.as_str(), h[1].ifname.as_str());
    assert!(setting(&lab, p1, "storm-mcast").contains("1000"));
    assert!(setting(&lab, p1, "storm-unknown").contains("1000"));
    assert_eq!(setting(&lab, p1, "storm-bcast"), "off");
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    let src = mac_bytes(&h[0].mac);

    for (kind, dst) in [
        ("multicast", [0x01, 0x00, 0x5e, 0x7f, 0x00, 0x01]),
        ("unknown unicast", [0x02, 0x00, 0x00, 0xee, 0xee, 0x01]),
    ] {
        let before = drops(&lab, p1, "storm");
        let flood = Flood::start(&h[0], frame(dst, src), Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(500));
        let received = tx_rate(&lab, p2, 2.0);
        let offered = flood.finish();
        assert!(
            offered > 5000.0,
            "{kind}: the flood was thin: {offered:.0}/s"
        );
        assert!(
            (500.0..=2000.0).contains(&received),
            "{kind} at {offered:.0}/s, limit 1000/s: h2 received {received:.0}/s"
        );
        assert!(drops(&lab, p1, "storm") > before, "{kind}: no storm drops");
    }

    // Broadcast has no limit on this port: a flood of it reaches h2 at the offered rate.
    let flood = Flood::start(&h[0], frame(BROADCAST, src), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let received = tx_rate(&lab, p2, 2.0);
    let offered = flood.finish();
    assert!(
        received > 2500.0,
        "storm-bcast=off: h2 received {received:.0} broadcasts/s of {offered:.0}/s"
    );
}

#[test]
fn storm_action_block_takes_the_port_rx_down_until_link_up() {
    if !root_or_skip("security_storm_block") {
        return;
    }
    let _heavy = heavy();
    let (lab, h) = lab_with(&[(1, "storm-bcast=1000,storm-action=block"), (2, "")], &[]);
    let p1 = h[0].ifname.as_str();
    assert_eq!(setting(&lab, p1, "storm-action"), "block");
    pin_all(&[&h[0], &h[1]]);
    assert!(h[0].ping_eventually(&h[1].ip), "{}", lab.log());
    assert_eq!(setting(&lab, p1, "link"), "up");

    let flood = Flood::start(
        &h[0],
        frame(BROADCAST, mac_bytes(&h[0].mac)),
        Duration::from_secs(15),
    );
    let blocked = wait_until(Duration::from_secs(5), || {
        setting(&lab, p1, "link") == "rx-down"
    });
    assert!(
        blocked,
        "storm-action=block: link is {}\n{}",
        setting(&lab, p1, "link"),
        lab.ctl_ok(&["port", "stats", p1])
    );
    let before = drops(&lab, p1, "admin_down");
    std::thread::sleep(Duration::from_millis(500));
    let after = drops(&lab, p1, "admin_down");
    flood.finish();
    assert!(
        after > before,
        "frames from a blocked port are counted admin_down: {before} -> {after}"
    );
    assert!(cannot_ping(&h[0], &h[1].ip), "a blocked port passed ping");
    assert_eq!(
        setting(&lab, p1, "link"),
        "rx-down",
        "the block lifted itself"
    );

    set(&lab, p1, &["link=up"]);
    assert_eq!(setting(&lab, p1, "link"), "up");
    assert!(h[0].ping_eventually(&h[1].ip), "link=up: h1 still blocked");
    assert!(h[0].ping(&h[1].ip, 3));
}
