//! Command-line errors: every bad invocation exits 2 with a message naming the problem, before
//! the switch opens anything (so these tests need no root and touch no interface).

use std::process::Command;

const VSWITCHD: &str = env!("CARGO_BIN_EXE_vswitchd");

/// Runs vswitchd to completion within 10 s. Every case here must fail validation before the
/// switch opens anything; as a guard against a regression that lets one through, a root run
/// happens in a network namespace of its own (`unshare --net`), with a control socket path in a
/// private directory, so nothing could land on the machine's interfaces or in /run.
fn vswitchd(args: &[&str]) -> (Option<i32>, String, String) {
    let root = nix::unistd::geteuid().is_root();
    let mut cmd = Command::new("timeout");
    cmd.arg("10");
    if root {
        cmd.args(["unshare", "--net"]);
    }
    let dir = std::env::temp_dir().join(format!("vswitch-cli-test-{}", std::process::id()));
    let out = cmd
        .arg(VSWITCHD)
        .args(args)
        .arg("--ctl-socket")
        .arg(dir.join("ctl.sock"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run vswitchd");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["--port"]),
        (
            &["--port", "tap0", "--port", "tap0"],
            &["tap0", "more than once"],
        ),
        (
            &["--port", "tap0", "--port", "tap:tap0"],
            &["tap0", "more than once"],
        ),
        (
            &["--port", "averyveryverylongname"],
            &["averyveryverylongname", "15 bytes"],
        ),
        (&["--port", "tap/0"], &["tap/0", "'/'"]),
        (&["--port", ""], &["empty port spec"]),
        (&["--port", "bogus:x"], &["\"bogus\"", "known kinds: tap"]),
        (&["--port", "tap0,colour=red"], &["\"colour\""]),
        (&["--port", "tap0,vlan=0"], &["vlan=0", "1 to 4094"]),
        (&["--port", "tap0,vlan=5000"], &["vlan=5000"]),
        (&["--port", "tap0,trunk="], &["trunk=", "empty"]),
        (&["--port", "tap0,trunk=10,20,native=0"], &["native=0"]),
        (&["--port", "tap0,vlan=10,trunk=20"], &["vlan=", "trunk="]),
        (&["--port", "tap0,native=10"], &["native= needs trunk="]),
        (
            &["--port", "tap0", "--mac-ageing", "5"],
            &["--mac-ageing", "5"],
        ),
        (
            &["--port", "tap0", "--mac-ageing", "2000000"],
            &["--mac-ageing"],
        ),
        (
            &["--port", "tap0", "--mac-ageing", "soon"],
            &["--mac-ageing", "soon"],
        ),
        (
            &["--port", "tap0", "--mac-table-size", "0"],
            &["--mac-table-size", "0"],
        ),
        (&["--port", "tap0", "--name", "a b"], &["--name", "a b"]),
        (&["--port", "tap0", "--frobnicate"], &["--frobnicate"]),
        (&["--port", "tap0", "-v", "-q"], &["--quiet"]),
    ];
    for (args, needles) in cases {
        let (code, _, stderr) = vswitchd(args);
        assert_eq!(
            code,
            Some(2),
            "{args:?} should be a usage error; stderr:\n{stderr}"
        );
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: {needle:?} not in:\n{stderr}"
            );
        }
    }
}

#[test]
fn help_and_version_exit_0() {
    let (code, stdout, _) = vswitchd(&["--help"]);
    assert_eq!(code, Some(0));
    for needle in [
        "--port",
        "--mac-ageing",
        "--mac-table-size",
        "Exit status",
        "ip tuntap add",
    ] {
        assert!(stdout.contains(needle), "--help lacks {needle:?}");
    }
    let (code, stdout, _) = vswitchd(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("vswitchd "), "{stdout}");
}
