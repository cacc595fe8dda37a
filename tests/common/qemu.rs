//! QEMU guests for end-to-end tests: the guest of `scripts/qemu-lab.sh` (built once, cached),
//! booted under TCG with a serial console in a file the test reads markers from.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Host, Lab, stop_child, wait_until};

/// VMs are CPU-heavy under TCG: one test with VMs at a time.
static VM_TESTS: Mutex<()> = Mutex::new(());

/// Holds the machine for one VM test.
pub fn exclusive() -> MutexGuard<'static, ()> {
    VM_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directory with `vmlinux` and `initrd.img`, built by `scripts/qemu-lab.sh prepare` on
/// first use; `None` (with the reason printed) where QEMU cannot run, which fails the test
/// when `VSWITCH_E2E=require`.
pub fn guest() -> Option<PathBuf> {
    static GUEST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = GUEST.get_or_init(|| {
        if Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_err()
        {
            return Err("qemu-system-x86_64 is not installed (scripts/deps.sh install)".into());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/qemu-lab.sh");
        let out = Command::new("timeout")
            .args(["600", script.to_str().unwrap(), "prepare"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "qemu-lab.sh prepare failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    match result {
        Ok(dir) => Some(dir.clone()),
        Err(why) => {
            if std::env::var("VSWITCH_E2E").as_deref() == Ok("require") {
                panic!("QEMU tests cannot run: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// What a guest does after booting (see scripts/qemu-lab.sh).
pub enum Role<'a> {
    /// Serve `bytes` random bytes over HTTP.
    Serve { bytes: usize },
    /// Ping `peer` with full-size frames, then fetch http://peer/data.
    Fetch { peer: &'a str },
    /// Ping `peer`.
    Ping { peer: &'a str },
}

/// How QEMU runs: inside a namespace (for its own taps), and/or as another user.
#[derive(Default, Clone)]
pub struct Launch {
    pub netns: Option<String>,
    pub uid: Option<u32>,
}

/// What a guest's NIC needs besides its `-netdev`: more QEMU arguments (shared memory for
/// vhost-user) and options of its `virtio-net-pci` device (each with its leading comma).
#[derive(Default, Clone)]
pub struct Nic {
    pub qemu: Vec<String>,
    pub device: String,
}

/// A running guest.
pub struct Vm {
    pub name: String,
    pub ip: String,
    child: Option<Child>,
    console: PathBuf,
}

static MACS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Vm {
    /// Boots a guest called `name` with `-netdev NETDEV,id=n0` and address `ip`/24.
    pub fn boot(lab: &Lab, name: &str, netdev: &str, ip: &str, role: Role, how: &Launch) -> Vm {
        Vm::boot_with(lab, name, netdev, ip, role, how, &Nic::default())
    }

    /// Like [`Vm::boot`], with QEMU arguments and virtio-net-pci options `nic` adds.
    pub fn boot_with(
        lab: &Lab,
        name: &str,
        netdev: &str,
        ip: &str,
        role: Role,
        how: &Launch,
        nic: &Nic,
    ) -> Vm {
        let guest = guest().expect("guest checked by the caller");
        let n = MACS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mac = format!(
            "52:54:00:{:02x}:{:02x}:{:02x}",
            std::process::id() & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        );
        let (role, peer, bytes) = match role {
            Role::Serve { bytes } => ("serve", String::new(), bytes.to_string()),
            Role::Fetch { peer } => ("fetch", peer.to_owned(), String::new()),
            Role::Ping { peer } => ("ping", peer.to_owned(), String::new()),
        };
        // QEMU writes the console itself, so as another user it needs a directory of its own.
        let dir = match how.uid {
            Some(uid) => lab.user_dir(uid),
            None => lab.dir.clone(),
        };
        let console = dir.join(format!("{name}.console"));
        let _ = std::fs::remove_file(&console);
        let mut cmd = Command::new("timeout");
        cmd.arg("600");
        if let Some(ns) = &how.netns {
            cmd.args(["ip", "netns", "exec", ns]);
        }
        if let Some(uid) = how.uid {
            let uid = uid.to_string();
            cmd.args([
                "setpriv",
                "--reuid",
                &uid,
                "--regid",
                &uid,
                "--clear-groups",
            ]);
            cmd.arg("--inh-caps=-all");
        }
        cmd.args([
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-machine",
            "q35",
        ])
        .args(["-m", "256", "-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(guest.join("vmlinux"))
        .arg("-initrd")
        .arg(guest.join("initrd.img"))
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet vs.name={name} vs.ip={ip}/24 vs.role={role} \
                 vs.peer={peer} vs.bytes={bytes}"
        ))
        .args(&nic.qemu)
        .arg("-netdev")
        .arg(format!("{netdev},id=n0"))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=n0,mac={mac}{}", nic.device))
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(lab.dir.join(format!("{name}.qemu.log"))).unwrap());
        let child = cmd.spawn().expect("start qemu-system-x86_64");
        Vm {
            name: name.to_owned(),
            ip: ip.to_owned(),
            child: Some(child),
            console,
        }
    }

    pub fn console(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.console) {
            let _ = f.read_to_string(&mut s);
        }
        s.replace('\r', "")
    }

    /// The first console line starting with one of `markers`, waiting at most `limit`.
    pub fn wait_for(&mut self, markers: &[&str], limit: Duration) -> Option<String> {
        let mut found = None;
        wait_until(limit, || {
            found = self
                .console()
                .lines()
                .find(|l| markers.iter().any(|m| l.starts_with(m)))
                .map(str::to_owned);
            found.is_some() || self.exited()
        });
        found
    }

    /// Like [`Vm::wait_for`], panicking with the console if the marker does not come.
    pub fn expect(&mut self, markers: &[&str], limit: Duration) -> String {
        match self.wait_for(markers, limit) {
            Some(line) => line,
            None => panic!(
                "{}: none of {markers:?} within {limit:?}; console:\n{}",
                self.name,
                self.console()
            ),
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Powers the VM off (SIGTERM to QEMU, SIGKILL after 5 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{} console:\n{}", self.name, self.console());
        }
        self.stop();
    }
}

/// SHA-256 of `data` in hex, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The second word of a marker line (`VSWITCH-SERVING <sha256>`).
pub fn word(line: &str, n: usize) -> String {
    line.split_whitespace().nth(n).unwrap_or("").to_owned()
}

/// Fetches http://`ip`/data from inside `host`'s namespace; returns the body.
pub fn http_get(host: &Host, ip: &str) -> Vec<u8> {
    let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
    let fetch = Lab::in_netns(host, move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "connect {addr}: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(b"GET /data HTTP/1.0\r\n\r\n").unwrap();
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .expect("the whole response");
        let body = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("HTTP headers");
        response.split_off(body + 4)
    });
    fetch.join().expect("http client")
}

/// Serves `data` once at http://`host.ip`/data from inside `host`'s namespace; the returned
/// thread ends after one request (or 60 s).
pub fn http_serve_once(host: &Host, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    let addr: SocketAddr = format!("{}:80", host.ip).parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = Lab::in_netns(host, move || {
        let listener = TcpListener::bind(addr).expect("bind port 80 in the host namespace");
        listener.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut stream, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no request within 60 s");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).expect("the request");
            assert!(n > 0, "connection closed before the request ended");
            request.extend_from_slice(&buf[..n]);
        }
        let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", data.len());
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&data).unwrap();
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server ready");
    server
}
