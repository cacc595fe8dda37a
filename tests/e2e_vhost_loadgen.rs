//! The vhost-user load generator (examples/vhost_loadgen.rs) against the real vswitchd: its
//! two frontends on two vhost-user ports for 1 s in each mode, and the frames must arrive
//! whole at the second. What it measures is not checked here (scripts/bench.sh does that).
//! Root, for the switch's namespace.

mod common;

use std::path::{Path, PathBuf};

use common::{Lab, root_or_skip};

/// The example, which `cargo test` builds next to the test binaries.
fn loadgen() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).unwrap();
    target.join("examples").join("vhost_loadgen")
}

/// The number after `word` in the generator's report.
fn after(report: &str, word: &str) -> u64 {
    let mut words = report.split_whitespace();
    words.find(|w| *w == word);
    let n = words
        .next()
        .and_then(|n| n.trim_end_matches(';').parse().ok());
    n.unwrap_or_else(|| panic!("no number after {word:?} in {report:?}"))
}

#[test]
fn the_load_generator_moves_frames_between_two_vhost_user_ports_in_both_modes() {
    if !root_or_skip("vhost_loadgen") {
        return;
    }
    let generator = loadgen();
    assert!(
        generator.exists(),
        "{} is missing (cargo test builds the examples)",
        generator.display()
    );
    let generator = generator.to_str().unwrap();
    let mut lab = Lab::new();
    let (a, b) = (lab.dir.join("a.sock"), lab.dir.join("b.sock"));
    let spec = |s: &Path| format!("vhost-user:{}", s.display());
    lab.launch(
        vec!["--port".into(), spec(&a), "--port".into(), spec(&b)],
        &[],
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    for mode in ["small", "tso"] {
        let out = common::run(&[generator, "--mode", mode, "--seconds", "1", a, b]);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {report}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            lab.log()
        );
        assert!(after(&report, "received") > 0, "{report}");
        // Every frame as A sent it: in tso mode the super-frames crossed whole.
        assert_eq!(after(&report, "length"), 0, "{report}");
    }
    let stats = lab.ctl_json(&["port", "stats", "b.sock"]);
    assert!(stats[0]["tx_frames"].as_u64().unwrap() > 0, "{stats}");
    assert!(lab.switch_running());

    // Without a socket it says so and stops.
    let none = lab.dir.join("none.sock");
    let out = common::run(&[generator, none.to_str().unwrap(), b]);
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("no vhost-user socket there"), "{why}");
}
