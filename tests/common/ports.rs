//! Helpers for tests that start the switch with per-port options and look at its ports: the
//! switch's ports by number, `port set`/`port show`/`port stats`, pings that must fail, pinned
//! neighbours, and background processes stopped by pid.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Host, Lab, stop_child};

/// Starts the switch with `--port TAP_i[,OPTIONS]` for each `(i, options)` and `extra` flags.
pub fn start(lab: &mut Lab, ports: &[(usize, &str)], extra: &[&str]) {
    let mut args = Vec::new();
    for (i, options) in ports {
        args.push("--port".to_owned());
        args.push(if options.is_empty() {
            lab.tap(*i)
        } else {
            format!("{},{options}", lab.tap(*i))
        });
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let taps: Vec<usize> = ports.iter().map(|(i, _)| *i).collect();
    lab.launch(args, &taps);
}

/// A lab whose switch has `ports`, each made a host (MTU 1500).
pub fn lab_with(ports: &[(usize, &str)], extra: &[&str]) -> (Lab, Vec<Host>) {
    let mut lab = Lab::new();
    start(&mut lab, ports, extra);
    let hosts = ports.iter().map(|(i, _)| lab.add_host(*i, 1500)).collect();
    (lab, hosts)
}

/// `vswitchctl port set PORT KEY=VALUE...`, which must succeed.
pub fn set(lab: &Lab, port: &str, keys: &[&str]) {
    let mut args = vec!["port", "set", port];
    args.extend_from_slice(keys);
    lab.ctl_ok(&args);
}

/// One setting of a port from `vswitchctl --json port show`, as a string.
pub fn setting(lab: &Lab, port: &str, key: &str) -> String {
    let shown = lab.ctl_json(&["port", "show", port]);
    shown["settings"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no string setting {key:?} in port show {port}: {shown}"))
        .to_owned()
}

/// Frames of `port` dropped for `reason` so far (0 when the reason is not listed).
pub fn drops(lab: &Lab, port: &str, reason: &str) -> u64 {
    let stats = lab.ctl_json(&["port", "stats", port]);
    stats[0]["drops"][reason].as_u64().unwrap_or(0)
}

/// Whether two pings from `from` to `ip` both go unanswered.
pub fn cannot_ping(from: &Host, ip: &str) -> bool {
    !from
        .run(&["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-w", "3", ip])
        .status
        .success()
}

/// Pins each host's neighbours in both directions: no ARP is needed between them.
pub fn pin_all(hosts: &[&Host]) {
    for a in hosts {
        for b in hosts {
            if a.ns != b.ns {
                a.pin_neighbour(b);
            }
        }
    }
}

/// A background process the test started (stopped by pid on drop).
pub struct Background(pub Child);

impl Drop for Background {
    fn drop(&mut self) {
        stop_child(&mut self.0, Duration::from_secs(5));
    }
}

/// Starts `args` in `ns` under `timeout` (stdout and stderr to `log`).
pub fn spawn_in(ns: &str, secs: u32, args: &[&str], log: &std::path::Path) -> Background {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &secs.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {args:?} in {ns}: {e}"));
    Background(child)
}
