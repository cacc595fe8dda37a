//! End to end: live capture over the control socket into tshark, and a capture whose reader
//! stalls while the switch keeps forwarding. Needs root (see `common::root_or_skip`) and tshark.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::{Host, Lab, VSWITCHCTL, root_or_skip};

fn tshark_or_skip(test: &str) -> bool {
    common::tools_or_skip(test, &["tshark"], "tshark")
}

fn two_hosts() -> (Lab, Host, Host) {
    let mut lab = Lab::new();
    lab.start_switch(2, &[]);
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
    h1.pin_neighbour(&h2);
    h2.pin_neighbour(&h1);
    (lab, h1, h2)
}

#[test]
fn tshark_reads_a_two_port_capture_with_directions() {
    if !root_or_skip("capture_tshark") || !tshark_or_skip("capture_tshark") {
        return;
    }
    let (lab, h1, h2) = two_hosts();
    let file = lab.dir.join("two.pcapng");
    let ports = format!("{},{}", lab.tap(1), lab.tap(2));
    let socket = lab.ctl_path();
    let mut capture = Command::new(VSWITCHCTL)
        .args([
            "-s",
            socket.to_str().unwrap(),
            "capture",
            &ports,
            "-c",
            "16",
            "-w",
        ])
        .arg(&file)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(h1.ping(&h2.ip, 4));
    let status = common::wait_exit(&mut capture, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "capture did not end after -c 16"
    );
    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(&file)
        .args(["-T", "fields", "-e", "frame.interface_name"])
        .args(["-e", "frame.packet_flags_direction", "-e", "icmp.type"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fields.stdout);
    assert!(
        fields.status.success(),
        "{}",
        String::from_utf8_lossy(&fields.stderr)
    );
    let count = |port: &str, dir: &str, icmp: &str| {
        text.lines()
            .filter(|l| *l == format!("{port}\t{dir}\t{icmp}"))
            .count()
    };
    let (t1, t2) = (lab.tap(1), lab.tap(2));
    // h1's requests come in on tap1 (inbound) and go out on tap2 (outbound); replies the
    // other way.
    assert_eq!(count(&t1, "0x00000001", "8"), 4, "{text}");
    assert_eq!(count(&t2, "0x00000002", "8"), 4, "{text}");
    assert_eq!(count(&t2, "0x00000001", "0"), 4, "{text}");
    assert_eq!(count(&t1, "0x00000002", "0"), 4, "{text}");
    let info = Command::new("capinfos").arg(&file).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Number of interfaces in file: 2"), "{info}");
}

/// Parses pcapng `data` into (block type, body) pairs.
fn blocks(mut data: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(len) = vswitch::capture::pcapng::whole_block(data) {
        let kind = u32::from_le_bytes(data[..4].try_into().unwrap());
        out.push((kind, data[8..len - 4].to_vec()));
        data = &data[len..];
    }
    out
}

/// The `isb_ifdrop` option of an Interface Statistics Block's body.
fn isb_drops(body: &[u8]) -> u64 {
    let mut at = 12;
    while at + 4 <= body.len() {
        let code = u16::from_le_bytes([body[at], body[at + 1]]);
        let len = u16::from_le_bytes([body[at + 2], body[at + 3]]) as usize;
        if code == 5 && len == 8 {
            return u64::from_le_bytes(body[at + 4..at + 12].try_into().unwrap());
        }
        if code == 0 {
            break;
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    0
}

#[test]
fn a_stalled_reader_loses_capture_frames_never_switch_frames() {
    if !root_or_skip("capture_stalled") {
        return;
    }
    let (lab, h1, h2) = two_hosts();
    // A client asks for a capture of h2's port and does not read.
    let mut stalled = UnixStream::connect(lab.ctl_path()).unwrap();
    let request = format!("{{\"cmd\":\"capture\",\"ports\":[\"{}\"]}}\n", lab.tap(2));
    stalled.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Bulk TCP (64 KiB super-frames, far more than the capture's 4 MiB) and pings.
    h2.sh(&["sh", "-c", "iperf3 -s -1 -D -p 5301"]);
    std::thread::sleep(Duration::from_millis(300));
    let tcp = h1.run(&["iperf3", "-c", &h2.ip, "-p", "5301", "-t", "3"]);
    assert!(
        tcp.status.success(),
        "{}",
        String::from_utf8_lossy(&tcp.stderr)
    );
    let pings = h1.run(&["ping", "-c", "100", "-i", "0.01", "-W", "1", "-q", &h2.ip]);
    let text = String::from_utf8_lossy(&pings.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "the switch lost frames: {text}"
    );
    // Now read: a valid stream whose latest statistics count the frames the capture lost.
    std::thread::sleep(Duration::from_millis(1200));
    stalled
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match stalled.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let line_end = data.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(&data[..line_end], br#"{"ok":"pcapng"}"#);
    let blocks = blocks(&data[line_end + 1..]);
    assert_eq!(blocks[0].0, 0x0A0D_0D0A, "starts with a section header");
    let drops = blocks
        .iter()
        .filter(|(k, _)| *k == 5)
        .map(|(_, body)| isb_drops(body))
        .max()
        .unwrap_or(0);
    assert!(drops > 0, "no drops counted in {} blocks", blocks.len());
    // The port's counters say what the capture lost, apart from the switch's drops.
    let stats = lab.ctl_json(&["port", "stats", &lab.tap(2)]);
    assert!(
        stats[0]["capture_dropped"].as_u64().unwrap() >= drops,
        "{stats}"
    );
    assert!(stats[0]["captured"].as_u64().unwrap() > 0, "{stats}");
    // The switch still answers and forwards.
    assert!(h1.ping(&h2.ip, 2));
    lab.ctl_ok(&["show"]);
}

#[test]
fn a_filtered_capture_keeps_only_what_it_asks_for() {
    if !root_or_skip("capture_filter") || !tshark_or_skip("capture_filter") {
        return;
    }
    let (lab, h1, h2) = two_hosts();
    let file = lab.dir.join("arp.pcapng");
    let mut capture = Command::new(VSWITCHCTL)
        .arg("-s")
        .arg(lab.ctl_path())
        .args([
            "capture",
            &lab.tap(1),
            "--ethertype",
            "arp",
            "--mac",
            &h1.mac,
        ])
        .args(["-c", "2", "-w"])
        .arg(&file)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Pings (IPv4, not kept) then ARP from h1 (kept).
    assert!(h1.ping(&h2.ip, 3));
    h1.run(&["arping", "-c", "2", "-w", "3", "-I", &h1.ifname, &h2.ip]);
    let status = common::wait_exit(&mut capture, Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "capture did not end");
    let fields = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-T", "fields", "-e", "eth.type", "-e", "eth.addr"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fields.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        assert!(line.starts_with("0x0806\t"), "not ARP: {line}");
        assert!(line.contains(&h1.mac), "not h1's: {line}");
    }
}
