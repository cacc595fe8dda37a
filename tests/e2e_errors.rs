//! Runtime failures of the real binary: exit 1 with one line that names the TAP and the fix,
//! and nothing left behind. Needs root for the namespaces (see `common::root_or_skip`).

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Lab, root_or_skip, sh, wait_exit};

/// Runs vswitchd in the lab's switch namespace to completion (bounded); returns its exit code
/// and stderr.
fn run_to_exit(lab: &Lab, args: &[&str], uid: Option<u32>) -> (Option<i32>, String) {
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    // Its own control socket, where the user may create it, so the run gets as far as its ports.
    let ctl = lab.user_dir(uid.unwrap_or(0)).join("second.ctl");
    args.extend(["--ctl-socket".to_owned(), ctl.display().to_string()]);
    let mut cmd = match uid {
        // setpriv drops to the uid after `ip netns exec` has entered the namespace.
        Some(uid) => {
            let mut c = std::process::Command::new("ip");
            let uid = uid.to_string();
            c.args(["netns", "exec", &lab.sw_ns, "setpriv"])
                .args([
                    "--reuid",
                    &uid,
                    "--regid",
                    &uid,
                    "--clear-groups",
                    "--inh-caps=-all",
                ])
                .arg(common::VSWITCHD)
                .args(&args);
            c
        }
        None => lab.vswitchd_command(&args),
    };
    let stderr_path = lab
        .dir
        .join(format!("stderr-{}", args.join("_").replace('/', "_")));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let status = match wait_exit(&mut child, Duration::from_secs(10)) {
        Some(s) => s,
        None => {
            common::stop_child(&mut child, Duration::from_secs(2));
            panic!("vswitchd {args:?} kept running though it should have failed");
        }
    };
    (status.code(), std::fs::read_to_string(stderr_path).unwrap())
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("vswitchd: error:"))
        .unwrap_or_else(|| panic!("no `vswitchd: error:` line in:\n{stderr}"))
}

#[test]
fn a_tap_held_by_another_process_is_ebusy_with_the_netdev_hint() {
    if !root_or_skip("ebusy") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_switch(1, &[]);
    let held = lab.tap(1);
    let fresh = lab.tap(2);
    // The fresh TAP opens first, then the held one fails: the fresh one must not stay behind.
    let (code, stderr) = run_to_exit(&lab, &["--port", &fresh, "--port", &held], None);
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains(&held), "{line}");
    assert!(
        line.contains("already attached by another process"),
        "{line}"
    );
    assert!(line.contains(&format!("netdev:{held}")), "{line}");
    assert!(
        !lab.link_exists(&lab.sw_ns, &fresh),
        "TAP {fresh} left behind"
    );
    assert!(lab.switch_running(), "the first switch must keep its port");
}

#[test]
fn an_existing_interface_that_is_not_a_tap_is_refused() {
    if !root_or_skip("not_a_tap") {
        return;
    }
    let lab = Lab::new();
    let name = lab.tap(1);
    let peer = lab.tap(2);
    sh(&[
        "ip", "-n", &lab.sw_ns, "link", "add", &name, "type", "veth", "peer", "name", &peer,
    ]);
    let (code, stderr) = run_to_exit(&lab, &["--port", &name], None);
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains(&name) && line.contains("not a single-queue TAP"),
        "{line}"
    );
    assert!(
        lab.link_exists(&lab.sw_ns, &name),
        "the veth must be left alone"
    );
}

#[test]
fn without_privileges_the_error_says_how_to_get_them() {
    if !root_or_skip("permission") {
        return;
    }
    let lab = Lab::new();
    let name = lab.tap(1);
    let (code, stderr) = run_to_exit(&lab, &["--port", &name], Some(65534));
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains(&name), "{line}");
    assert!(line.contains("CAP_NET_ADMIN"), "{line}");
    assert!(
        line.contains(&format!("ip tuntap add dev {name} mode tap user 65534")),
        "{line}"
    );
    assert!(!lab.link_exists(&lab.sw_ns, &name));
}

/// Starts vswitchd as uid 65534 in the lab's switch namespace with `privileges` (setpriv
/// options) and `args`, logging to `log`. Users normally reach /dev/net/tun (mode 0666); where
/// this machine has it 0600, a private mount namespace gets a 0666 node for the same device on a
/// fresh tmpfs (so a `nodev` /tmp does not matter), leaving the machine's own as it is.
fn spawn_as_nobody(lab: &Lab, privileges: &str, args: &str, log: &std::path::Path) -> Child {
    let mnt = lab.dir.join("dev");
    let _ = std::fs::create_dir(&mnt);
    let script = format!(
        "set -e; mount -t tmpfs -o mode=0755 vswitch-test {mnt}; mknod {mnt}/tun c 10 200; \
         chmod 0666 {mnt}/tun; mount --bind {mnt}/tun /dev/net/tun; \
         exec ip netns exec {ns} setpriv --reuid 65534 --regid 65534 --clear-groups \
         {privileges} {bin} {args}",
        mnt = mnt.display(),
        ns = lab.sw_ns,
        bin = common::VSWITCHD,
    );
    std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn cap_net_admin_is_the_only_privilege_needed() {
    if !root_or_skip("cap_net_admin_only") {
        return;
    }
    // What docs/vswitchd@.service grants: an unprivileged user with CAP_NET_ADMIN alone.
    let mut lab = Lab::new();
    let log = lab.dir.join("capable.log");
    let ctl = lab.user_dir(65534).join("ctl.sock");
    let args = format!(
        "--port {} --port {} --ctl-socket {} -v",
        lab.tap(1),
        lab.tap(2),
        ctl.display()
    );
    let caps = "--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
                --bounding-set=-all,+net_admin";
    let mut child = spawn_as_nobody(&lab, caps, &args, &log);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let up = common::wait_until(Duration::from_secs(10), || {
        read_log().contains("switching between 2 ports") && lab.link_exists(&lab.sw_ns, &lab.tap(2))
    });
    if !up {
        common::stop_child(&mut child, Duration::from_secs(5));
        panic!(
            "vswitchd with CAP_NET_ADMIN did not come up:\n{}",
            read_log()
        );
    }
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    let reachable = h1.ping_eventually(&h2.ip);
    let ctl_out = common::run(&[
        common::VSWITCHCTL,
        "-s",
        ctl.to_str().unwrap(),
        "port",
        "add",
        &lab.tap(3),
    ]);
    let tap3_created = lab.link_exists(&lab.sw_ns, &lab.tap(3));
    let status = common::stop_child(&mut child, Duration::from_secs(5));
    assert!(
        reachable,
        "hosts could not ping through it:\n{}",
        read_log()
    );
    assert!(
        ctl_out.status.success(),
        "{}",
        String::from_utf8_lossy(&ctl_out.stderr)
    );
    assert!(
        tap3_created,
        "port add did not create the TAP:\n{}",
        read_log()
    );
    assert!(
        !read_log().contains("cannot bring the link up"),
        "{}",
        read_log()
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", read_log());
    assert!(
        !lab.link_exists(&lab.sw_ns, &lab.tap(3)),
        "created TAPs go at exit"
    );
    assert!(!ctl.exists(), "the socket goes at exit");
}

#[test]
fn an_unprivileged_user_can_attach_to_a_persistent_tap_made_for_it() {
    if !root_or_skip("unprivileged_attach") {
        return;
    }
    let lab = Lab::new();
    let name = lab.tap(1);
    sh(&[
        "ip", "-n", &lab.sw_ns, "tuntap", "add", "dev", &name, "mode", "tap", "user", "65534",
    ]);
    let log = lab.dir.join("unprivileged.log");
    let ctl = lab.user_dir(65534).join("ctl.sock");
    let args = format!("--port {name} --ctl-socket {} -v", ctl.display());
    let mut child = spawn_as_nobody(&lab, "--inh-caps=-all", &args, &log);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let up = common::wait_until(Duration::from_secs(10), || {
        read_log().contains("switching between 1 ports")
    });
    let still_running = wait_exit(&mut child, Duration::from_millis(200)).is_none();
    let status = common::stop_child(&mut child, Duration::from_secs(5));
    assert!(
        up && still_running,
        "vswitchd as uid 65534 did not run:\n{}",
        read_log()
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", read_log());
    assert!(
        lab.link_exists(&lab.sw_ns, &name),
        "a persistent TAP must stay"
    );
    assert!(
        read_log().contains("cannot bring the link up"),
        "an unprivileged switch should say it cannot bring the TAP up:\n{}",
        read_log()
    );
}
