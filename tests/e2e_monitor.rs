//! End to end: `vswitchctl monitor` prints what happens in a running switch — MAC entries,
//! ports, link states, security, reloads — and a monitor that stops reading loses events, is
//! told how many, and slows nothing. Needs root (see `common::root_or_skip`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{Lab, VSWITCHCTL, root_or_skip, stop_child, tools_or_skip};
use serde_json::Value;

/// A `vswitchctl monitor` running against the lab's switch, its lines read by a thread.
struct Monitor {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Monitor {
    fn start(lab: &Lab, args: &[&str]) -> Monitor {
        let mut child = Command::new(VSWITCHCTL)
            .arg("-s")
            .arg(lab.ctl_path())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Monitor {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `limit`) for a line that `want` accepts; keeps every line read.
    fn wait_for(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + limit;
        if let Some(line) = self.seen.iter().find(|l| want(l)) {
            return Some(line.clone());
        }
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if want(&line) {
                return Some(line);
            }
        }
    }

    /// Waits for a JSON event whose fields include every pair of `fields`.
    fn event(&mut self, fields: &[(&str, &str)]) -> Value {
        let matches = |line: &str| {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                return false;
            };
            fields.iter().all(|(k, want)| match &v[*k] {
                Value::String(s) => s == want,
                other => *other == want.parse::<Value>().unwrap_or_default(),
            })
        };
        let line = self
            .wait_for(Duration::from_secs(5), matches)
            .unwrap_or_else(|| panic!("no event with {fields:?}; saw:\n{}", self.seen.join("\n")));
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(2));
    }
}

#[test]
fn monitor_reports_tables_ports_links_security_and_reloads() {
    if !root_or_skip("monitor_all") {
        return;
    }
    let (lab, hosts) = Lab::with_hosts(2, &[]);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    let (tap1, tap2) = (lab.tap(1), lab.tap(2));
    let mut mon = Monitor::start(&lab, &["--json", "monitor"]);

    // The monitor is listening once an entry added now is reported.
    let probe = "02:00:00:00:99:01";
    let listening = (0..40).any(|_| {
        lab.ctl_ok(&["fdb", "add", &tap1, probe]);
        let heard = mon
            .wait_for(Duration::from_millis(250), |l| l.contains(probe))
            .is_some();
        lab.ctl_ok(&["fdb", "del", probe]);
        heard
    });
    assert!(listening, "the monitor heard nothing:\n{}", lab.log());
    let added = mon.event(&[("event", "added"), ("mac", probe)]);
    assert_eq!(added["port"], tap1.as_str());
    assert_eq!(added["vlan"], 0);
    assert!(added["time"].as_f64().unwrap() > 1.7e9, "{added}");
    mon.event(&[("event", "deleted"), ("mac", probe), ("port", &tap1)]);

    assert!(h1.ping(&h2.ip, 2));
    lab.ctl_ok(&["fdb", "flush"]);
    let flushed = mon.event(&[("event", "flushed")]);
    assert!(flushed.get("port").is_none(), "every port: {flushed}");
    assert!(flushed["entries"].as_u64().unwrap() >= 2, "{flushed}");
    assert!(h1.ping(&h2.ip, 2));
    mon.event(&[("event", "learned"), ("mac", &h1.mac), ("port", &tap1)]);
    mon.event(&[("event", "learned"), ("mac", &h2.mac), ("port", &tap2)]);

    lab.ctl_ok(&["port", "set", &tap2, "link=down"]);
    mon.event(&[("event", "link"), ("port", &tap2), ("state", "admin-down")]);
    lab.ctl_ok(&["port", "set", &tap2, "link=up"]);
    mon.event(&[("event", "link"), ("port", &tap2), ("state", "up")]);

    let sock = lab.dir.join("vm.sock");
    lab.ctl_ok(&["port", "add", &format!("dgram:{},name=vm", sock.display())]);
    mon.event(&[("event", "attached"), ("port", "vm"), ("kind", "dgram")]);
    lab.ctl_ok(&["port", "del", "vm"]);
    let removed = mon.event(&[("event", "removed"), ("port", "vm")]);
    assert!(
        removed["reason"].as_str().unwrap().contains("port del"),
        "{removed}"
    );

    // Storm control blocks the port: a security event, and the port's new state.
    lab.ctl_ok(&["port", "set", &tap1, "storm-bcast=1,storm-action=block"]);
    h1.run(&[
        "ping",
        "-b",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "1",
        &lab.broadcast(),
    ]);
    let storm = mon.event(&[
        ("event", "security"),
        ("port", &tap1),
        ("alert", "storm-blocked"),
    ]);
    assert!(
        storm["detail"].as_str().unwrap().contains("link=up"),
        "{storm}"
    );
    mon.event(&[("event", "link"), ("port", &tap1), ("state", "rx-down")]);

    // Started without a config file: the reload is refused, and the monitor hears why.
    assert_eq!(lab.ctl(&["reload"]).status.code(), Some(1));
    let reload = mon.event(&[("event", "reloaded")]);
    assert!(
        reload["summary"].as_str().unwrap().starts_with("refused"),
        "{reload}"
    );
}

#[test]
fn a_text_monitor_of_one_kind_prints_only_that_kind() {
    if !root_or_skip("monitor_text") {
        return;
    }
    let (lab, hosts) = Lab::with_hosts(2, &[]);
    let mut mon = Monitor::start(&lab, &["monitor", "port"]);
    let sock = lab.dir.join("vm.sock");
    let spec = format!("dgram:{},name=vm", sock.display());
    let heard = (0..20).any(|_| {
        lab.ctl_ok(&["port", "add", &spec]);
        let heard = mon
            .wait_for(Duration::from_millis(250), |l| {
                l == "attached port vm (dgram)"
            })
            .is_some();
        lab.ctl_ok(&["port", "del", "vm"]);
        heard
    });
    assert!(heard, "saw:\n{}", mon.seen.join("\n"));
    assert!(
        mon.wait_for(Duration::from_secs(5), |l| {
            l == "removed  port vm: deleted by vswitchctl port del"
        })
        .is_some(),
        "saw:\n{}",
        mon.seen.join("\n")
    );
    // MAC learning happens, but this monitor did not ask for it.
    lab.ctl_ok(&["fdb", "flush"]);
    assert!(hosts[0].ping(&hosts[1].ip, 2));
    assert!(
        mon.wait_for(Duration::from_millis(500), |l| !l.contains("port vm"))
            .is_none(),
        "saw:\n{}",
        mon.seen.join("\n")
    );

    // An unknown kind is refused by name, with exit status 2 (usage).
    let out = lab.ctl(&["monitor", "macs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("macs"));
}

#[test]
fn a_monitor_that_stops_reading_loses_events_and_is_told_how_many() {
    if !root_or_skip("monitor_slow") {
        return;
    }
    if !tools_or_skip("monitor_slow", &["mausezahn"], "netsniff-ng") {
        return;
    }
    let (lab, hosts) = Lab::with_hosts(3, &[]);
    let mut slow = UnixStream::connect(lab.ctl_path()).unwrap();
    slow.write_all(b"{\"cmd\":\"monitor\",\"kinds\":[\"fdb\"]}\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // 200 000 random source MACs from host 3: learned and evicted events, far more than a
    // monitor may leave unread; it reads nothing meanwhile.
    let h3 = &hosts[2];
    let flood = h3.run(&[
        "timeout",
        "60",
        "mausezahn",
        &h3.ifname,
        "-q",
        "-a",
        "rand",
        "-b",
        "bcast",
        "-c",
        "200000",
        "-d",
        "0",
    ]);
    assert!(flood.status.success(), "{flood:?}");
    // The switch kept forwarding and answering meanwhile.
    assert!(hosts[0].ping(&hosts[1].ip, 2));
    lab.ctl_ok(&["show"]);

    slow.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let lost_seen = |data: &[u8]| data.windows(15).any(|w| w == b"\"event\":\"lost\"");
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !lost_seen(&data) {
        match slow.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(_) => {
                // Nothing more for now: one more event makes the switch tell the loss.
                lab.ctl_ok(&["fdb", "flush"]);
            }
        }
    }
    let text = String::from_utf8_lossy(&data);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(r#"{"ok":"monitor"}"#));
    let lost: u64 = lines
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "lost")
        .map(|v| v["events"].as_u64().unwrap())
        .sum();
    assert!(
        lost > 0,
        "no loss reported to a monitor that did not read ({} bytes read)",
        data.len()
    );
}

#[test]
fn monitor_shows_a_macs_life_in_order() {
    if !root_or_skip("monitor_order") {
        return;
    }
    if !tools_or_skip("monitor_order", &["mausezahn"], "netsniff-ng") {
        return;
    }
    let (lab, hosts) = Lab::with_hosts(3, &["--mac-ageing", "10"]);
    let mut mon = Monitor::start(&lab, &["--json", "monitor", "fdb", "port"]);
    let probe = "02:00:00:00:99:02";
    let listening = (0..40).any(|_| {
        lab.ctl_ok(&["fdb", "add", &lab.tap(1), probe]);
        let heard = mon
            .wait_for(Duration::from_millis(250), |l| l.contains(probe))
            .is_some();
        lab.ctl_ok(&["fdb", "del", probe]);
        heard
    });
    assert!(listening, "the monitor heard nothing:\n{}", lab.log());

    // One MAC, sent once from h3 and once from h1, then never again.
    let mac = "02:00:00:00:77:01";
    let send = |h: &common::Host| {
        let out = h.run(&[
            "mausezahn",
            &h.ifname,
            "-q",
            "-a",
            mac,
            "-b",
            "bcast",
            "-c",
            "1",
        ]);
        assert!(out.status.success(), "{out:?}");
    };
    send(&hosts[2]);
    let learned = mon.event(&[("event", "learned"), ("mac", mac), ("port", &lab.tap(3))]);
    send(&hosts[0]);
    let moved = mon.event(&[
        ("event", "moved"),
        ("mac", mac),
        ("from", &lab.tap(3)),
        ("to", &lab.tap(1)),
    ]);
    // Ageing runs once a second: gone 10 to 12 s after its last frame.
    let aged = {
        let want = |l: &str| l.contains("\"event\":\"aged\"") && l.contains(mac);
        let line = mon.wait_for(Duration::from_secs(20), want);
        serde_json::from_str::<Value>(&line.expect("no aged event")).unwrap()
    };
    assert_eq!(aged["port"], lab.tap(1).as_str());
    lab.ctl_ok(&["port", "del", &lab.tap(2)]);
    let removed = mon.event(&[("event", "removed"), ("port", &lab.tap(2))]);

    let at = |event: &Value| {
        mon.seen
            .iter()
            .position(|l| serde_json::from_str::<Value>(l).ok().as_ref() == Some(event))
            .unwrap()
    };
    let order = [at(&learned), at(&moved), at(&aged), at(&removed)];
    assert!(order.is_sorted(), "{order:?}:\n{}", mon.seen.join("\n"));
    let time = |e: &Value| e["time"].as_f64().unwrap();
    let lived = time(&aged) - time(&moved);
    assert!(
        (9.0..14.0).contains(&lived),
        "aged {lived} s after its last frame"
    );
}
