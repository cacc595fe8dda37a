//! End to end: `vswitch-lab` brings up each example of docs/labs/, checks it, changes it at
//! runtime (`set`, `exec`), captures from it, takes it down, and nothing of it is left: no
//! namespace, process, control socket or state directory with the lab's name. Also: a crashed
//! `up` is taken down exactly (and a namespace it did not record is left alone), a failed `up`
//! cleans up after itself, a bad file is refused with its line and key.
//!
//! Each test runs its lab under a name of its own (`--name`: a letter, the pid in base 36, a
//! counter), so tests run in parallel with each other and the rest of the suite. Needs root
//! (see `common::root_or_skip`); the VM example also needs QEMU and the guest.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{root_or_skip, run, wait_until};

const LAB: &str = env!("CARGO_BIN_EXE_vswitch-lab");

static LABS: AtomicU32 = AtomicU32::new(0);

/// A lab name unique to this process and test: `letter` + pid in base 36 + a counter.
fn unique_name(letter: char) -> String {
    let mut n = std::process::id();
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(char::from_digit(n % 36, 36).unwrap());
        n /= 36;
    }
    let pid: String = digits.iter().rev().collect();
    let count = LABS.fetch_add(1, Ordering::SeqCst) % 36;
    format!("{letter}{pid}{}", char::from_digit(count, 36).unwrap())
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/labs")
        .join(name)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab run under a unique name; `Drop` takes it down whatever happened.
struct Running {
    name: String,
    file: PathBuf,
    env: Vec<(String, String)>,
}

impl Running {
    fn new(file: PathBuf, letter: char) -> Running {
        Running {
            name: unique_name(letter),
            file,
            env: Vec::new(),
        }
    }

    /// `vswitch-lab --name NAME COMMAND FILE ARGS...`, bounded.
    fn lab(&self, command: &str, args: &[&str]) -> Output {
        let file = self.file.to_str().unwrap();
        let mut all = vec!["300", LAB, "--name", &self.name, command, file];
        all.extend_from_slice(args);
        let mut cmd = Command::new("timeout");
        cmd.args(&all).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run vswitch-lab")
    }

    fn up(&self) -> String {
        let out = self.lab("up", &[]);
        assert!(out.status.success(), "up failed: {}", text(&out));
        text(&out)
    }

    /// `check`: whether it passed, and its output.
    fn check(&self) -> (bool, String) {
        let out = self.lab("check", &[]);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "check: exit {code:?}: {}",
            text(&out)
        );
        (code == Some(0), text(&out))
    }

    fn set(&self, link: &str, keys: &[&str]) {
        let mut args = vec![link];
        args.extend_from_slice(keys);
        let out = self.lab("set", &args);
        assert!(out.status.success(), "set failed: {}", text(&out));
    }

    /// `down` (twice: the second finds nothing to do), then asserts nothing is left.
    fn down(&self) {
        let out = self.lab("down", &[]);
        assert!(out.status.success(), "down failed: {}", text(&out));
        let again = self.lab("down", &[]);
        assert!(again.status.success(), "second down: {}", text(&again));
        assert!(text(&again).contains("nothing to do"), "{}", text(&again));
        assert_gone(&self.name);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = run(&[LAB, "--name", &self.name, "down"]);
    }
}

/// Asserts that nothing named for lab `name` exists: namespaces, interfaces in this
/// namespace, control sockets, the state directory, processes.
fn assert_gone(name: &str) {
    let prefix = format!("{name}-");
    let namespaces = String::from_utf8_lossy(&run(&["ip", "netns", "list"]).stdout).into_owned();
    let left: Vec<&str> = namespaces
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let links = String::from_utf8_lossy(&run(&["ip", "-o", "link", "show"]).stdout).into_owned();
    assert!(!links.contains(&prefix), "interfaces left: {links}");
    let dir = Path::new("/run/vswitch-lab").join(name);
    assert!(!dir.exists(), "{} left", dir.display());
    let sockets: Vec<String> = std::fs::read_dir("/run/vswitchd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(sockets.is_empty(), "control sockets left: {sockets:?}");
    let marker = format!("/run/vswitch-lab/{name}/");
    let switch = format!("--name\0{prefix}");
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read_to_string(e.path().join("cmdline")).ok()?;
            let ours = cmdline.contains(&marker) || cmdline.contains(&switch);
            // A vswitch-lab of this test (`--name NAME down`) is not the lab's.
            (ours && !cmdline.starts_with(LAB)).then(|| cmdline.replace('\0', " "))
        })
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

#[test]
fn wan_example_has_an_80ms_round_trip_across_the_wan() {
    if !root_or_skip("wan_example") {
        return;
    }
    let lab = Running::new(example("wan.toml"), 'w');
    let status = lab.up();
    assert!(
        status.contains("delay=40ms loss=1% rate=20mbit"),
        "{status}"
    );
    let status = lab.lab("status", &[]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let (passed, report) = lab.check();
    println!("{report}");
    assert!(passed, "{report}");
    assert_eq!(report.matches(" pass\n").count(), 4, "{report}");
    assert!(report.contains("4 of 4 checks passed"), "{report}");
    // `set` changes the WAN at runtime: 100 ms each way makes every round trip across it
    // take at least 200 ms.
    lab.set("wan", &["delay=100"]);
    let out = lab.lab(
        "exec",
        &[
            "h1a", "--", "ping", "-n", "-c", "3", "-i", "0.2", "10.1.0.3",
        ],
    );
    let pings = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    let rtts: Vec<f64> = pings
        .lines()
        .filter_map(|l| {
            l.split_once("time=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        !rtts.is_empty() && rtts.iter().all(|&r| r >= 200.0),
        "{pings}"
    );

    // `capture` streams the WAN link's frames as pcapng.
    let pcap = std::env::temp_dir().join(format!("{}.pcapng", lab.name));
    let mut capture = Command::new(LAB)
        .args(["--name", &lab.name, "capture"])
        .arg(&lab.file)
        .args(["wan", "-c", "4", "-w"])
        .arg(&pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut finished = None;
    for _ in 0..10 {
        lab.lab(
            "exec",
            &[
                "h1a", "--", "ping", "-n", "-c", "2", "-i", "0.2", "10.1.0.3",
            ],
        );
        finished = common::wait_exit(&mut capture, Duration::from_secs(1));
        if finished.is_some() {
            break;
        }
    }
    let status = finished.unwrap_or_else(|| {
        common::stop_child(&mut capture, Duration::from_secs(2));
        panic!("capture of 4 frames did not end")
    });
    assert!(status.success(), "capture: {status}");
    let bytes = std::fs::read(&pcap).unwrap();
    let _ = std::fs::remove_file(&pcap);
    assert_eq!(
        bytes.get(..4),
        Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]),
        "not pcapng"
    );
    lab.down();
}

#[test]
fn vlans_example_routes_between_vlans_and_keeps_them_apart() {
    if !root_or_skip("vlans_example") {
        return;
    }
    let lab = Running::new(example("vlans.toml"), 'v');
    lab.up();
    let (passed, report) = lab.check();
    println!("{report}");
    assert!(passed, "{report}");
    assert!(report.contains("ping h10a -> h20x fails"), "{report}");
    // The router is the only way across: without forwarding, VLAN 10 cannot reach VLAN 20.
    let out = lab.lab(
        "exec",
        &["r", "--", "sysctl", "-qw", "net.ipv4.ip_forward=0"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (passed, report) = lab.check();
    assert!(!passed, "{report}");
    assert!(report.contains("FAIL"), "{report}");
    lab.down();
}

#[test]
fn chain_example_fails_while_s1_s2_is_down() {
    if !root_or_skip("chain_example") {
        return;
    }
    let lab = Running::new(example("chain.toml"), 'c');
    lab.up();
    let (passed, report) = lab.check();
    assert!(passed, "{report}");
    lab.set("s1-s2", &["link=down"]);
    let (passed, down_report) = lab.check();
    println!("{down_report}");
    assert!(!passed, "{down_report}");
    assert_eq!(down_report.matches("FAIL").count(), 2, "{down_report}");
    let status = lab.lab("status", &[]);
    assert!(text(&status).contains("admin-down"), "{}", text(&status));
    assert_eq!(status.status.code(), Some(1), "a link down is not healthy");
    lab.set("s1-s2", &["link=up"]);
    let (passed, report) = lab.check();
    println!("{report}");
    assert!(passed, "{report}");
    lab.down();
}

#[test]
fn vms_example_reaches_both_guests() {
    if !root_or_skip("vms_example") {
        return;
    }
    let _machine = common::qemu::exclusive();
    let Some(guest) = common::qemu::guest() else {
        return;
    };
    let mut lab = Running::new(example("vms.toml"), 'm');
    let cache = guest.parent().expect("the guest's cache directory");
    lab.env
        .push(("VSWITCH_CACHE".into(), cache.display().to_string()));
    lab.up();
    let (passed, report) = lab.check();
    println!("{report}");
    assert!(passed, "{report}");
    // vm1 pings vm2 by itself (vs.role=ping): the guests reach each other too.
    let console = Path::new("/run/vswitch-lab")
        .join(&lab.name)
        .join("vm1.console");
    let mut seen = String::new();
    let pinged = wait_until(Duration::from_secs(120), || {
        seen = std::fs::read_to_string(&console).unwrap_or_default();
        seen.contains("VSWITCH-PING-")
    });
    assert!(pinged && seen.contains("VSWITCH-PING-OK"), "vm1: {seen}");
    lab.down();
}

/// A stand-in for vswitchd in `dir`: a shell script with `body`.
fn fake_switch(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("vswitchd");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_crashed_up_is_taken_down_exactly() {
    if !root_or_skip("crashed_up") {
        return;
    }
    let mut lab = Running::new(example("chain.toml"), 'k');
    let dir = std::env::temp_dir().join(format!("vswitch-lab-{}", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    // A switch that never answers: up waits for it, and is killed meanwhile.
    let fake = fake_switch(&dir, "exec sleep 120");
    lab.env
        .push(("VSWITCHD".into(), fake.display().to_string()));
    // A namespace with the lab's prefix that the lab did not create: down must leave it.
    let decoy = format!("{}-h9", lab.name);
    let _ = run(&["ip", "netns", "add", &decoy]);

    let mut up = Command::new(LAB)
        .args(["--name", &lab.name, "up"])
        .arg(&lab.file)
        .env("VSWITCHD", &fake)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = Path::new("/run/vswitch-lab")
        .join(&lab.name)
        .join("state.json");
    let recorded = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&state)
            .is_ok_and(|s| s.matches("\"kind\": \"process\"").count() == 3)
    });
    assert!(recorded, "up never recorded its three switches");
    up.kill().unwrap();
    up.wait().unwrap();
    let record = std::fs::read_to_string(&state).unwrap();
    assert!(record.contains("\"complete\": false"), "{record}");
    let pids: Vec<u32> = serde_json::from_str::<serde_json::Value>(&record).unwrap()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["pid"].as_u64().map(|p| p as u32))
        .collect();
    assert_eq!(pids.len(), 3);

    let out = lab.lab("down", &[]);
    assert!(out.status.success(), "down: {}", text(&out));
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "pid {pid} survived: {stat}"
        );
    }
    assert!(
        Path::new("/run/netns").join(&decoy).exists(),
        "down removed a namespace it had not recorded"
    );
    run(&["ip", "netns", "del", &decoy]);
    assert_gone(&lab.name);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_up_removes_what_it_built_and_refuses_names_in_use() {
    if !root_or_skip("failed_up") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vswitch-lab-f{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad-route.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[[switch]]\nname = \"s1\"\n[[host]]\nname = \"h1\"\n\
         routes = [\"10.99.0.0/24 via 10.200.0.1\"]\n\
         [[link]]\nends = [\"h1\", \"s1\"]\nip = \"10.5.0.1/24\"\n",
    )
    .unwrap();
    let lab = Running::new(file, 'f');
    let out = lab.lab("up", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("route add"), "{}", text(&out));
    assert!(
        text(&out).contains("took down what it had built"),
        "{}",
        text(&out)
    );
    assert_gone(&lab.name);

    // A switch that exits at start: up says so at once, with the end of its log.
    let mut broken = Running::new(example("chain.toml"), 'f');
    let fake = fake_switch(&dir, "echo 'no such port: test' >&2; exit 1");
    broken
        .env
        .push(("VSWITCHD".into(), fake.display().to_string()));
    let started = std::time::Instant::now();
    let out = broken.lab("up", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("exited; its log says:\n  no such port: test"),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "up waited for a dead switch"
    );
    assert_gone(&broken.name);

    // A namespace of the lab's name that is not in its record: up refuses, and leaves it.
    let taken = Running::new(example("chain.toml"), 'f');
    let squatter = format!("{}-h2", taken.name);
    sh_ok(&["ip", "netns", "add", &squatter]);
    let out = taken.lab("up", &[]);
    let exists = Path::new("/run/netns").join(&squatter).exists();
    run(&["ip", "netns", "del", &squatter]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not in lab"), "{}", text(&out));
    assert!(exists, "up removed a namespace it did not create");
    assert_gone(&taken.name);
    let _ = std::fs::remove_dir_all(&dir);
}

fn sh_ok(args: &[&str]) {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
}

#[test]
fn a_bad_file_is_refused_with_its_line_and_key_without_root() {
    let dir = std::env::temp_dir().join(format!("vswitch-lab-b{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "name = \"b\"\n[[switch]]\nname = \"s1\"\n[[host]]\nname = \"h1\"\n\
         [[link]]\nends = [\"h1\", \"s1\"]\nloss = \"lots\"\n",
    )
    .unwrap();
    let out = run(&[LAB, "up", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("bad.toml:8: loss: "), "{message}");
    // Every shipped example passes the same check and plans its names.
    for name in ["wan.toml", "vlans.toml", "chain.toml", "vms.toml"] {
        let out = run(&[
            LAB,
            "--name",
            "zz",
            "up",
            "--dry-run",
            example(name).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("namespace zz-s1"),
            "{name}: {}",
            text(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
