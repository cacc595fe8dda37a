//! A lab for end-to-end tests: network namespaces made by the test, the real `vswitchd` binary in
//! a namespace of its own, and hosts whose interfaces are the switch's TAPs.
//!
//! Safety rules (design.md §5): nothing here touches the root namespace's interfaces, addresses
//! or routes; every name carries a prefix unique to this process and lab; every external command
//! runs under `timeout`; `Drop` stops the processes the lab started (by pid) and deletes its
//! namespaces, also when a test fails.

#![allow(dead_code)] // Each test binary uses a different part of the lab.

pub mod ports;
pub mod qemu;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const VSWITCHD: &str = env!("CARGO_BIN_EXE_vswitchd");
pub const VSWITCHCTL: &str = env!("CARGO_BIN_EXE_vswitchctl");

/// Seconds any single external command may take.
const CMD_TIMEOUT: &str = "30";

/// Whether end-to-end tests can run here. They need root for namespaces and TAPs; without it
/// they are skipped with a message, unless `VSWITCH_E2E=require` (CI) makes that a failure.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("VSWITCH_E2E").as_deref() == Ok("require") {
        panic!("{test}: end-to-end tests need root (VSWITCH_E2E=require)");
    }
    eprintln!("{test}: skipped, needs root (run the suite with sudo; see README)");
    false
}

/// Whether every command in `commands` is installed; without one the test is skipped with a
/// message naming the Debian `package`, unless `VSWITCH_E2E=require`.
pub fn tools_or_skip(test: &str, commands: &[&str], package: &str) -> bool {
    let missing: Vec<&str> = commands
        .iter()
        .copied()
        .filter(|c| {
            !run(&["sh", "-c", &format!("command -v {c}")])
                .status
                .success()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("VSWITCH_E2E").as_deref() == Ok("require") {
        panic!("{test}: {what} not installed (package {package}; scripts/deps.sh install)");
    }
    eprintln!("{test}: skipped, needs {what} (package {package}; scripts/deps.sh install)");
    false
}

/// Runs a command under `timeout`, returning its output.
pub fn run(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(CMD_TIMEOUT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits at most `limit` for a child to exit; `None` if it is still running.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Stops a child we started: SIGTERM, then SIGKILL after `grace`. Returns its exit status.
pub fn stop_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    if let Some(status) = wait_exit(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// `n` in base 36, zero-padded to at least `width` digits.
fn base36(mut n: u32, width: usize) -> String {
    let mut digits = Vec::new();
    while n > 0 || digits.len() < width {
        digits.push(char::from_digit(n % 36, 36).unwrap());
        n /= 36;
    }
    digits.iter().rev().collect()
}

/// A host: a namespace holding one of the switch's TAPs as its interface.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ifname: String,
    pub ip: String,
    pub mac: String,
}

impl Host {
    /// Adds an 802.1Q subinterface `IFNAME.VID` with address `ip`/24 and brings it up; returns a
    /// host view of it (same namespace, same MAC).
    pub fn vlan_subinterface(&self, vid: u16, ip: &str) -> Host {
        let name = format!("{}.{vid}", self.ifname);
        let id = vid.to_string();
        self.sh(&[
            "ip",
            "link",
            "add",
            "link",
            &self.ifname,
            "name",
            &name,
            "type",
            "vlan",
            "id",
            &id,
        ]);
        self.sh(&["ip", "addr", "add", &format!("{ip}/24"), "dev", &name]);
        self.sh(&["ip", "link", "set", &name, "up"]);
        Host {
            ns: self.ns.clone(),
            ifname: name,
            ip: ip.to_owned(),
            mac: self.mac.clone(),
        }
    }

    /// Runs a command inside the host's namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn sh(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Pings `ip` `count` times, 0.2 s apart; whether every reply came (within 2 s + 0.5 s
    /// per ping: `-w` makes ping fail unless all `count` replies arrive by then).
    pub fn ping(&self, ip: &str, count: u32) -> bool {
        let deadline = (2 + count.div_ceil(2)).to_string();
        let count = count.to_string();
        self.run(&[
            "ping", "-n", "-q", "-c", &count, "-i", "0.2", "-w", &deadline, ip,
        ])
        .status
        .success()
    }

    /// Pings until one reply comes (bounded): the first frames may race the link coming up.
    pub fn ping_eventually(&self, ip: &str) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.run(&["ping", "-n", "-q", "-c", "1", "-W", "1", ip])
                .status
                .success()
        })
    }

    /// Pins `other`'s MAC in this host's neighbour table, so no ARP traffic is needed.
    pub fn pin_neighbour(&self, other: &Host) {
        self.sh(&[
            "ip",
            "neigh",
            "replace",
            &other.ip,
            "lladdr",
            &other.mac,
            "nud",
            "permanent",
            "dev",
            &self.ifname,
        ]);
    }

    /// Starts tcpdump on the host's interface, writing `filter`ed frames to a pcap file.
    pub fn capture(&self, filter: &str, path: &Path) -> Capture {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args([
                "timeout",
                "120",
                "tcpdump",
                "-i",
                &self.ifname,
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "128",
            ])
            .arg("-w")
            .arg(path)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (apt install tcpdump)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // tcpdump says "listening on" once its socket is bound; only then is nothing missed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => {
                    stop_child(&mut child, Duration::from_secs(2));
                    panic!("tcpdump in {} did not start", self.ns);
                }
            }
        }
        Capture {
            child,
            path: path.to_owned(),
        }
    }
}

/// A running tcpdump.
pub struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    /// Stops the capture and returns the original length of every frame it saw.
    pub fn finish(mut self) -> Vec<u32> {
        // Let frames in flight land first.
        std::thread::sleep(Duration::from_millis(300));
        stop_child(&mut self.child, Duration::from_secs(5));
        pcap_frame_lengths(&self.path)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// Original lengths of the frames in a classic pcap file (what tcpdump -w writes).
pub fn pcap_frame_lengths(path: &Path) -> Vec<u32> {
    pcap_frames(path).into_iter().map(|(len, _)| len).collect()
}

/// Each frame in a classic pcap file: its original length and the captured bytes.
pub fn pcap_frames(path: &Path) -> Vec<(u32, Vec<u8>)> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.len() >= 24,
        "pcap file {} is too short",
        path.display()
    );
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => panic!("{} is not a pcap file", path.display()),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(at + 8) as usize;
        let data = bytes[at + 16..(at + 16 + incl).min(bytes.len())].to_vec();
        frames.push((u32_at(at + 12), data));
        at += 16 + incl;
    }
    frames
}

/// The switch process and the namespaces around it.
pub struct Lab {
    pub prefix: String,
    pub sw_ns: String,
    pub hosts: Vec<Host>,
    namespaces: Vec<String>,
    switch: Option<Child>,
    pub dir: PathBuf,
    subnet: u8,
}

impl Lab {
    /// A lab with only the switch's namespace. Names are `v` + the pid in base 36 (at most 5
    /// digits for Linux's largest pid) + a 2-digit counter: unique across parallel tests and
    /// processes, and `{prefix}t12` fits in 15 bytes.
    pub fn new() -> Lab {
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("v{}{}", base36(std::process::id(), 1), base36(n % 1296, 2));
        let dir = std::env::temp_dir().join(format!("vswitch-test-{prefix}"));
        // A directory left by a crashed run of a recycled pid is stale; one of a live run is
        // impossible (same pid, same counter).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut lab = Lab {
            sw_ns: format!("{prefix}sw"),
            prefix,
            hosts: Vec::new(),
            namespaces: Vec::new(),
            switch: None,
            dir,
            subnet: 10 + (n % 200) as u8,
        };
        let sw = lab.sw_ns.clone();
        lab.add_namespace(&sw);
        lab
    }

    fn add_namespace(&mut self, ns: &str) {
        sh(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_owned());
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        // No IPv6: its router solicitations and DAD would teach the switch behind the tests'
        // backs and make "no traffic" windows noisy.
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
    }

    /// The TAP name of host `i` (1-based).
    pub fn tap(&self, i: usize) -> String {
        format!("{}t{i}", self.prefix)
    }

    /// The IPv4 address of host `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("10.{}.0.{i}", self.subnet)
    }

    pub fn broadcast(&self) -> String {
        format!("10.{}.0.255", self.subnet)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("vswitchd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The control socket of the switch `start_switch` starts.
    pub fn ctl_path(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// Runs `vswitchctl` against the lab's switch (bounded by `timeout`).
    pub fn ctl(&self, args: &[&str]) -> Output {
        let socket = self.ctl_path();
        let mut all = vec![VSWITCHCTL, "-s", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// The `fdb show` row of `mac` (its first, if it is in several VLANs).
    pub fn fdb_row(&self, mac: &str) -> serde_json::Value {
        let fdb = self.ctl_json(&["fdb", "show"]);
        fdb.as_array()
            .unwrap()
            .iter()
            .find(|r| r["mac"] == mac)
            .cloned()
            .unwrap_or_else(|| panic!("{mac} not in the MAC table: {fdb}"))
    }

    /// Runs `vswitchctl` and returns its stdout, asserting it succeeded.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "vswitchctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `vswitchctl --json ...`, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vswitchctl {args:?}: {e}: {out}"))
    }

    /// A directory in the lab that user `uid` may write to.
    pub fn user_dir(&self, uid: u32) -> PathBuf {
        let dir = self.dir.join(format!("uid{uid}"));
        let _ = std::fs::create_dir(&dir);
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
        dir
    }

    /// A command that runs `vswitchd` inside the switch's namespace.
    pub fn vswitchd_command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.sw_ns, VSWITCHD])
            .args(args);
        cmd
    }

    /// Starts `vswitchd` with `--port` for TAPs 1..=n and `extra` flags, and waits until its
    /// TAPs exist.
    pub fn start_switch(&mut self, n: usize, extra: &[&str]) {
        let mut args: Vec<String> = (1..=n)
            .flat_map(|i| ["--port".into(), self.tap(i)])
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let taps: Vec<usize> = (1..=n).collect();
        self.launch(args, &taps);
    }

    /// Starts `vswitchd` with `args` (plus the lab's control socket and -v) and waits until the
    /// TAPs numbered in `taps` exist.
    pub fn launch(&mut self, mut args: Vec<String>, taps: &[usize]) {
        args.push("--ctl-socket".into());
        args.push(self.ctl_path().display().to_string());
        args.push("-v".into());
        let log = File::create(self.log_path()).unwrap();
        let child = self
            .vswitchd_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vswitchd");
        self.switch = Some(child);
        let taps: Vec<String> = taps.iter().map(|&i| self.tap(i)).collect();
        let ready = wait_until(Duration::from_secs(10), || {
            if let Some(status) = self.switch.as_mut().unwrap().try_wait().ok().flatten() {
                panic!("vswitchd exited at start ({status}):\n{}", self.log());
            }
            self.log().contains("switching between")
                && taps.iter().all(|t| self.link_exists(&self.sw_ns, t))
        });
        assert!(ready, "vswitchd did not come up:\n{}", self.log());
    }

    pub fn link_exists(&self, ns: &str, ifname: &str) -> bool {
        run(&["ip", "-n", ns, "link", "show", "dev", ifname])
            .status
            .success()
    }

    /// Moves TAP `i` into a new namespace as host `i`'s interface, with address
    /// `10.SUBNET.0.i/24` and the given MTU, and brings it up.
    pub fn add_host(&mut self, i: usize, mtu: u32) -> Host {
        let ip = self.ip(i);
        self.add_host_at(i, mtu, Some(&ip))
    }

    /// Like [`Lab::add_host`], with address `ip` (/24) on the TAP, or none.
    pub fn add_host_at(&mut self, i: usize, mtu: u32, ip: Option<&str>) -> Host {
        let ns = format!("{}h{i}", self.prefix);
        self.add_namespace(&ns);
        let tap = self.tap(i);
        sh(&["ip", "-n", &self.sw_ns, "link", "set", &tap, "netns", &ns]);
        if let Some(ip) = ip {
            let addr = format!("{ip}/24");
            sh(&["ip", "-n", &ns, "addr", "add", &addr, "dev", &tap]);
        }
        let mtu = mtu.to_string();
        sh(&["ip", "-n", &ns, "link", "set", &tap, "mtu", &mtu, "up"]);
        let out = sh(&["ip", "-n", &ns, "-br", "link", "show", "dev", &tap]);
        let mac = out
            .split_whitespace()
            .nth(2)
            .expect("MAC in `ip -br link` output")
            .to_owned();
        let host = Host {
            ns,
            ifname: tap,
            ip: ip.unwrap_or_default().to_owned(),
            mac,
        };
        self.hosts.push(host.clone());
        host
    }

    /// A namespace of the lab's own, `{prefix}{name}`, where a kernel bridge `wire` joins
    /// interfaces moved in from other namespaces: a piece of wire between two switches (the
    /// bridge passes 802.1Q-tagged frames, GSO super-frames included, without looking at them).
    /// `ends` are (namespace, interface) pairs. Returns the namespace.
    pub fn wire(&mut self, name: &str, ends: &[(&str, &str)]) -> String {
        let ns = format!("{}{name}", self.prefix);
        self.add_namespace(&ns);
        sh(&[
            "ip", "-n", &ns, "link", "add", "name", "wire", "type", "bridge",
        ]);
        for (from, ifname) in ends {
            sh(&["ip", "-n", from, "link", "set", ifname, "netns", &ns]);
            sh(&[
                "ip", "-n", &ns, "link", "set", ifname, "master", "wire", "up",
            ]);
        }
        sh(&["ip", "-n", &ns, "link", "set", "wire", "up"]);
        ns
    }

    /// The subnet number of this lab's addresses (`10.SUBNET.x.y`).
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// Starts a switch with `n` TAPs and makes each a host with MTU 1500.
    pub fn with_hosts(n: usize, extra: &[&str]) -> (Lab, Vec<Host>) {
        let mut lab = Lab::new();
        lab.start_switch(n, extra);
        let hosts = (1..=n).map(|i| lab.add_host(i, 1500)).collect();
        (lab, hosts)
    }

    pub fn switch_pid(&self) -> u32 {
        self.switch.as_ref().expect("switch started").id()
    }

    /// Whether the switch process is still running.
    pub fn switch_running(&mut self) -> bool {
        matches!(self.switch.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits at most `limit` for the switch to exit by itself.
    pub fn wait_switch_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_exit(self.switch.as_mut()?, limit);
        if status.is_some() {
            self.switch = None;
        }
        status
    }

    /// Sends SIGTERM to the switch and returns its exit status (SIGKILL after 10 s).
    pub fn stop_switch(&mut self) -> Option<ExitStatus> {
        let mut child = self.switch.take()?;
        stop_child(&mut child, Duration::from_secs(10))
    }

    /// Deletes one namespace early (as a user deleting a host would).
    pub fn delete_namespace(&mut self, ns: &str) {
        sh(&["ip", "netns", "del", ns]);
        self.namespaces.retain(|n| n != ns);
    }

    /// Runs `f` with the calling thread inside `host`'s network namespace (on a fresh thread,
    /// so the test thread's namespace never changes).
    pub fn in_netns<T: Send + 'static>(
        host: &Host,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", host.ns);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.switch.take() {
            stop_child(&mut child, Duration::from_secs(10));
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = run(&["ip", "netns", "del", &ns]);
        }
        if std::thread::panicking() {
            eprintln!(
                "vswitchd log ({}):\n{}",
                self.log_path().display(),
                self.log()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pseudo-random bytes, the same for the same seed.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sends `len` pseudo-random bytes (from `seed`) over TCP from `from` to `to` and asserts that
/// exactly those bytes arrived; `what` names the path in the failure message.
pub fn transfer_intact(from: &Host, to: &Host, len: usize, seed: u64, what: &str) {
    let data = payload(len, seed);
    let want = fnv1a(&data);
    let got = tcp_transfer(from, to, data);
    assert_eq!(got.len(), len, "{what}: byte count");
    assert_eq!(fnv1a(&got), want, "{what}: the bytes changed on the way");
}

/// Sends `data` over TCP from `from` to `to` (port 7001); returns what `to` received.
fn tcp_transfer(from: &Host, to: &Host, data: Vec<u8>) -> Vec<u8> {
    let addr: SocketAddr = format!("{}:7001", to.ip).parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = Lab::in_netns(to, move || {
        let listener = TcpListener::bind(addr).expect("bind in host namespace");
        listener.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut stream, _) = loop {
            match listener.accept() {
                Ok(conn) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection within 20 s");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read the transfer");
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server ready");
    let client = Lab::in_netns(from, move || {
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(&data).expect("write the transfer");
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    });
    client.join().expect("client thread");
    server.join().expect("server thread")
}
