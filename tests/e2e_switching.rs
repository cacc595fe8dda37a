//! End to end: the real `vswitchd` binary, real TAPs, hosts in network namespaces.
//! Needs root (see `common::root_or_skip`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lab, root_or_skip, sh, stop_child, transfer_intact, wait_until};

#[test]
fn hosts_ping_every_pair_and_known_unicast_is_not_flooded() {
    if !root_or_skip("hosts_ping_every_pair") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    for a in &h {
        for b in &h {
            if a.ns != b.ns {
                assert!(a.ping(&b.ip, 2), "{} cannot ping {}", a.ns, b.ip);
            }
        }
    }

    // Every MAC is learned now: h1 -> h2 echo traffic must not reach h3.
    let pcap = lab.dir.join("h3.pcap");
    let capture = h[2].capture("icmp", &pcap);
    assert!(h[0].ping(&h[1].ip, 5));
    let seen = capture.finish();
    assert!(
        seen.is_empty(),
        "h3 saw {} ICMP frames of h1<->h2",
        seen.len()
    );

    // Broadcast does reach h3 (hosts ignore broadcast echo, but the frames arrive).
    let capture = h[2].capture("icmp", &pcap);
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
    let seen = capture.finish();
    assert_eq!(seen.len(), 3, "h3 should see each broadcast echo request");
}

#[test]
fn learned_entries_age_out_and_unknown_unicast_floods_again() {
    if !root_or_skip("learned_entries_age_out") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &["--mac-ageing", "10"]);
    // Pinned neighbours: no ARP, so after the first exchange the hosts are silent.
    h[0].pin_neighbour(&h[1]);
    h[1].pin_neighbour(&h[0]);
    assert!(h[1].ping_eventually(&h[0].ip));

    let pcap = lab.dir.join("h3.pcap");
    let capture = h[2].capture("icmp", &pcap);
    assert!(h[0].ping(&h[1].ip, 1));
    assert!(capture.finish().is_empty(), "known unicast reached h3");

    // An entry lives 10 to 11 s after its MAC was last seen, plus up to 1 s until the sweep;
    // nobody talks meanwhile.
    std::thread::sleep(Duration::from_millis(13_500));
    let capture = h[2].capture("icmp", &pcap);
    assert!(h[0].ping(&h[1].ip, 1));
    let seen = capture.finish();
    assert_eq!(
        seen.len(),
        1,
        "after ageing, h1's echo request to h2 should be flooded to h3 (and only it)"
    );
}

#[test]
fn tcp_with_offloads_on_delivers_every_byte() {
    if !root_or_skip("tcp_with_offloads_on") {
        return;
    }
    let (lab, h) = Lab::with_hosts(2, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));

    // The TAPs offer TSO and checksum offload, so the kernel hands over 64 KiB super-frames with
    // partial checksums. Capturing at the receiver shows they crossed the switch as such.
    let pcap = lab.dir.join("h2.pcap");
    let capture = h[1].capture("tcp port 7001", &pcap);
    transfer_intact(&h[0], &h[1], 32 << 20, 7, "h1 -> h2");
    let lengths = capture.finish();
    let biggest = lengths.iter().copied().max().unwrap_or(0);
    assert!(
        biggest > 1514,
        "no GSO super-frame reached h2 (largest frame {biggest} bytes): offloads are not passing"
    );

    // And the other way round.
    transfer_intact(&h[1], &h[0], 8 << 20, 11, "h2 -> h1");
}

#[test]
fn iperf3_through_the_switch() {
    if !root_or_skip("iperf3_through_the_switch") {
        return;
    }
    let (_lab, h) = Lab::with_hosts(2, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    // A server that outlives a failed first attempt (the client may race its start).
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", &h[1].ns, "timeout", "60", "iperf3", "-s", "-p", "7002",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 (apt install iperf3)");
    let mut last = String::new();
    let mut json = None;
    wait_until(Duration::from_secs(20), || {
        let out = h[0].run(&["iperf3", "-c", &h[1].ip, "-p", "7002", "-t", "3", "-J"]);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        json = serde_json::from_str::<serde_json::Value>(&last)
            .ok()
            .filter(|j| j["end"]["sum_received"]["bits_per_second"].is_f64());
        json.is_some()
    });
    stop_child(&mut server, Duration::from_secs(5));
    let json = json.unwrap_or_else(|| panic!("iperf3 never completed a run; last output:\n{last}"));
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    let retransmits = json["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    eprintln!(
        "iperf3 through vswitchd: {:.2} Gbit/s, {retransmits} retransmits (reference only)",
        bps / 1e9
    );
    assert!(bps > 0.0);
}

#[test]
fn jumbo_frames_cross_the_switch() {
    if !root_or_skip("jumbo_frames_cross_the_switch") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_switch(2, &[]);
    let h1 = lab.add_host(1, 9000);
    let h2 = lab.add_host(2, 9000);
    assert!(h1.ping_eventually(&h2.ip));
    let out = h1.run(&[
        "ping", "-n", "-q", "-M", "do", "-s", "8972", "-c", "3", "-i", "0.2", "-W", "2", &h2.ip,
    ]);
    assert!(
        out.status.success(),
        "8972-byte pings failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_deleted_host_namespace_removes_its_port_and_the_rest_keep_forwarding() {
    if !root_or_skip("a_deleted_host_namespace") {
        return;
    }
    let (mut lab, h) = Lab::with_hosts(3, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    assert!(h[0].ping_eventually(&h[2].ip));
    lab.delete_namespace(&h[2].ns);
    let gone = format!("port {} removed", h[2].ifname);
    assert!(
        wait_until(Duration::from_secs(10), || lab.log().contains(&gone)),
        "vswitchd did not report the port gone:\n{}",
        lab.log()
    );
    assert!(lab.switch_running(), "vswitchd exited:\n{}", lab.log());
    assert!(h[0].ping(&h[1].ip, 3));
    assert!(h[1].ping(&h[0].ip, 3));
    assert_eq!(lab.log().matches(" removed").count(), 1, "{}", lab.log());
}

#[test]
fn sigterm_exits_zero_deleting_created_taps_and_keeping_persistent_ones() {
    if !root_or_skip("sigterm_exits_zero") {
        return;
    }
    let mut lab = Lab::new();
    let persistent = lab.tap(1);
    sh(&[
        "ip",
        "-n",
        &lab.sw_ns,
        "tuntap",
        "add",
        "dev",
        &persistent,
        "mode",
        "tap",
    ]);
    lab.start_switch(2, &[]);
    let created = lab.tap(2);
    assert!(lab.log().contains("switching between 2 ports"));
    let status = lab.stop_switch().expect("vswitchd status");
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", lab.log());
    assert!(
        !lab.link_exists(&lab.sw_ns, &created),
        "the TAP vswitchd created is still there"
    );
    assert!(
        lab.link_exists(&lab.sw_ns, &persistent),
        "the persistent TAP vswitchd attached to was deleted"
    );
    assert!(lab.log().contains("SIGTERM received"), "{}", lab.log());
}

#[test]
fn sigint_also_exits_zero() {
    if !root_or_skip("sigint_also_exits_zero") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_switch(1, &[]);
    let pid = nix::unistd::Pid::from_raw(lab.switch_pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = lab
        .wait_switch_exit(Duration::from_secs(10))
        .expect("vswitchd did not exit on SIGINT");
    assert_eq!(status.code(), Some(0), "{}", lab.log());
    assert!(!lab.link_exists(&lab.sw_ns, &lab.tap(1)));
}
