//! End to end: `vswitchctl metrics` read by a real Prometheus parser (Debian's
//! python3-prometheus-client), its counters matching `port stats`. Needs root (see
//! `common::root_or_skip`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{Lab, root_or_skip};

/// The samples of a Prometheus text exposition, parsed by prometheus_client: `name{labels}` ->
/// value, labels sorted.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_parse_as_prometheus_and_match_port_stats() {
    if !root_or_skip("metrics") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_switch(3, &[]);
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    lab.add_host(3, 1500);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
    h1.pin_neighbour(&h2);
    h2.pin_neighbour(&h1);
    // A mirror of h1's port to h3's, and a capture of 4 of h1's frames, while h1 pings h2.
    let (tap1, tap3) = (lab.tap(1), lab.tap(3));
    lab.ctl_ok(&["mirror", "add", "m1", "--from", &tap1, "--to", &tap3]);
    let file = lab.dir.join("four.pcapng");
    let mut capture = std::process::Command::new(common::VSWITCHCTL)
        .arg("-s")
        .arg(lab.ctl_path())
        .args(["capture", &tap1, "-c", "4", "-w"])
        .arg(&file)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(h1.ping(&h2.ip, 3));
    let ended = common::wait_exit(&mut capture, std::time::Duration::from_secs(10));
    assert!(
        ended.is_some_and(|s| s.success()),
        "capture -c 4 did not end"
    );
    let stats = lab.ctl_json(&["port", "stats"]);
    let metrics = parse(&lab.ctl_ok(&["metrics"]));
    let switch = "vswitch0";
    for row in stats.as_array().unwrap() {
        let port = row["name"].as_str().unwrap();
        let labels = format!("kind=tap,port={port},switch={switch}");
        for (metric, field) in [
            ("vswitch_port_rx_frames_total", "rx_frames"),
            ("vswitch_port_tx_frames_total", "tx_frames"),
            ("vswitch_port_rx_bytes_total", "rx_bytes"),
            ("vswitch_port_tx_bytes_total", "tx_bytes"),
        ] {
            let key = format!("{metric}{{{labels}}}");
            assert_eq!(
                metrics.get(&key).copied(),
                row[field].as_f64(),
                "{key} in {metrics:?}"
            );
        }
        let drops = format!(
            "vswitch_port_drops_total{{kind=tap,port={port},reason=malformed,switch={switch}}}"
        );
        assert_eq!(metrics.get(&drops).copied(), Some(0.0), "{drops}");
        assert_eq!(
            metrics.get(&format!("vswitch_port_up{{{labels}}}")),
            Some(&1.0)
        );
    }
    let row = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == tap1.as_str())
        .unwrap();
    assert_eq!(row["captured"], 4, "{row}");
    let labels = format!("kind=tap,port={tap1},switch={switch}");
    assert_eq!(
        metrics.get(&format!("vswitch_port_captured_frames_total{{{labels}}}")),
        Some(&4.0)
    );
    let mirrors = lab.ctl_json(&["mirror", "list"]);
    let sent = mirrors[0]["frames"].as_f64().unwrap();
    assert!(sent >= 6.0, "{mirrors}");
    let key = format!("vswitch_mirror_frames_total{{mirror=m1,switch={switch},to={tap3}}}");
    assert_eq!(metrics.get(&key), Some(&sent), "{key}");
    let fdb = lab.ctl_json(&["fdb", "stats"]);
    let entries = format!("vswitch_fdb_entries{{switch={switch}}}");
    assert_eq!(metrics.get(&entries).copied(), fdb["entries"].as_f64());
    assert!(metrics[&format!("vswitch_uptime_seconds{{switch={switch}}}")] > 0.0);

    // port stats --rate: pings every 10 ms show as about 100 frames/s each way.
    let pinger = std::thread::spawn({
        let h1 = h1.clone();
        let ip = h2.ip.clone();
        move || h1.run(&["ping", "-c", "200", "-i", "0.01", "-q", &ip])
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rates = lab.ctl_json(&["port", "stats", "--rate", "1"]);
    pinger.join().unwrap();
    let tap1 = rates
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == lab.tap(1).as_str())
        .unwrap();
    let rx = tap1["rx_fps"].as_f64().unwrap();
    assert!((30.0..200.0).contains(&rx), "{rates}");
    assert!(
        tap1["rx_bps"].as_f64().unwrap() > rx * 8.0 * 60.0,
        "{rates}"
    );
}
