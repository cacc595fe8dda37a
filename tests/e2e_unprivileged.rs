//! End to end: vswitchd as an unprivileged user (the tutorial's `ip tuntap add ... user` use).
//! Root makes two persistent TAPs for `nobody`; the switch then runs as `nobody`, with no
//! capabilities, in a private mount namespace where a 0666 tun node is bind-mounted over
//! /dev/net/tun (so the machine's own /dev/net/tun is never changed). Two namespace hosts ping
//! through it and `vswitchctl -s PATH` works, as `nobody`, on the socket that user owns. Needs
//! root to set this up (see `common::root_or_skip`).

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{VSWITCHCTL, VSWITCHD, root_or_skip, run, sh, stop_child, wait_until};

const NOBODY: &str = "65534";

/// What the test made, undone on every exit path.
struct Setup {
    tag: String,
    dir: PathBuf,
    switch: Option<Child>,
}

impl Setup {
    fn ns(&self, what: &str) -> String {
        format!("{}{what}", self.tag)
    }

    fn tap(&self, i: u32) -> String {
        format!("{}t{i}", self.tag)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vswitchd.log")).unwrap_or_default()
    }

    /// `args` run as `nobody` with no capabilities.
    fn as_nobody(args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            NOBODY,
            "--regid",
            NOBODY,
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]);
        c.args(args);
        c
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut child) = self.switch.take() {
            stop_child(&mut child, Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!("vswitchd log:\n{}", self.log());
        }
        // Persistent TAPs outlive the switch: delete them wherever they are now.
        for ns in ["sw", "h1", "h2"] {
            for i in 1..=2 {
                let _ = run(&[
                    "ip",
                    "-n",
                    &self.ns(ns),
                    "tuntap",
                    "del",
                    "dev",
                    &self.tap(i),
                    "mode",
                    "tap",
                ]);
            }
            let _ = run(&["ip", "netns", "del", &self.ns(ns)]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_unprivileged_switch_forwards_on_taps_made_for_its_user() {
    if !root_or_skip("unprivileged") {
        return;
    }
    let tag = format!("vu{}", std::process::id() % 100_000);
    let dir = std::env::temp_dir().join(format!("vswitch-unpriv-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dev")).unwrap();
    let mut s = Setup {
        tag,
        dir,
        switch: None,
    };
    let dir = s.dir.display().to_string();
    sh(&["chown", &format!("{NOBODY}:{NOBODY}"), &dir]);
    for ns in ["sw", "h1", "h2"] {
        sh(&["ip", "netns", "add", &s.ns(ns)]);
    }
    let (sw, t1, t2) = (s.ns("sw"), s.tap(1), s.tap(2));
    for t in [&t1, &t2] {
        sh(&[
            "ip", "-n", &sw, "tuntap", "add", "dev", t, "mode", "tap", "user", NOBODY, "vnet_hdr",
        ]);
    }
    let socket = format!("{dir}/ctl.sock");
    let vswitchd_args = [
        VSWITCHD,
        "--name",
        &s.tag,
        "--ctl-socket",
        &socket,
        "--port",
        &t1,
        "--port",
        &t2,
    ];

    // Without access to /dev/net/tun, the message names the fix.
    let mut denied = Command::new("ip");
    denied.args(["netns", "exec", &sw]);
    denied
        .arg("setpriv")
        .args(Setup::as_nobody(&vswitchd_args).get_args());
    let denied = denied.output().unwrap();
    let message = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(1), "{message}");
    assert!(
        message.contains("make /dev/net/tun accessible") && message.contains("ip tuntap add"),
        "{message}"
    );

    // In a private mount namespace, a 0666 tun node over /dev/net/tun; then nobody.
    let mut script = format!(
        "mount -t tmpfs -o mode=755 none {dir}/dev && mknod -m 0666 {dir}/dev/tun c 10 200 && \
         mount --bind {dir}/dev/tun /dev/net/tun && exec setpriv"
    );
    for arg in Setup::as_nobody(&vswitchd_args).get_args() {
        script.push(' ');
        script.push_str(&arg.to_string_lossy());
    }
    let log = File::create(s.dir.join("vswitchd.log")).unwrap();
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &sw,
            "unshare",
            "-m",
            "--propagation",
            "private",
        ])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    s.switch = Some(child);
    assert!(
        wait_until(Duration::from_secs(10), || s
            .log()
            .contains("switching between")),
        "vswitchd did not start as nobody:\n{}",
        s.log()
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == NOBODY), "{uid}");
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(caps.ends_with("0000000000000000"), "{caps}");

    // Two hosts on the TAPs ping through it.
    for (i, t) in [(1, &t1), (2, &t2)] {
        let host = s.ns(&format!("h{i}"));
        sh(&["ip", "-n", &sw, "link", "set", t, "netns", &host]);
        sh(&[
            "ip",
            "-n",
            &host,
            "addr",
            "add",
            &format!("10.79.0.{i}/24"),
            "dev",
            t,
        ]);
        sh(&["ip", "-n", &host, "link", "set", t, "up"]);
    }
    let h1 = s.ns("h1");
    let pinged = wait_until(Duration::from_secs(15), || {
        run(&[
            "ip",
            "netns",
            "exec",
            &h1,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "10.79.0.2",
        ])
        .status
        .success()
    });
    assert!(
        pinged,
        "no ping through the unprivileged switch\n{}",
        s.log()
    );

    // The control socket belongs to nobody, who can use it.
    let out = Setup::as_nobody(&[VSWITCHCTL, "-s", &socket, "show"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains(&t1) && shown.contains(&t2), "{shown}");
    let owner = sh(&["stat", "-c", "%u", &socket]);
    assert_eq!(owner.trim(), NOBODY);
}
