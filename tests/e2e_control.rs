//! End to end: `vswitchctl` against the real `vswitchd`, with hosts in namespaces. Needs root
//! (see `common::root_or_skip`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Host, Lab, VSWITCHCTL, root_or_skip, wait_until};
use serde_json::Value;

fn rows_for<'a>(fdb: &'a Value, mac: &str) -> Vec<&'a Value> {
    fdb.as_array()
        .expect("fdb show --json is a list")
        .iter()
        .filter(|r| r["mac"] == mac)
        .collect()
}

#[test]
fn fdb_show_and_port_stats_report_what_crossed_the_switch() {
    if !root_or_skip("fdb_show") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    assert!(h[0].ping_eventually(&h[2].ip));
    let before = lab.ctl_json(&["port", "stats", &h[0].ifname]);
    assert!(h[0].ping(&h[1].ip, 10));

    // Text: the ovs-appctl fdb/show row shape, with port names.
    let text = lab.ctl_ok(&["fdb", "show"]);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.ends_with("port  VLAN  MAC                Age"),
        "{header:?}"
    );
    for host in &h {
        let row = lines
            .clone()
            .find(|l| l.contains(&host.mac))
            .unwrap_or_else(|| panic!("{} missing from:\n{text}", host.mac));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[0], host.ifname, "{row}");
        assert_eq!(cols[1], "0", "{row}");
        assert!(cols[3].parse::<u32>().is_ok(), "age in {row}");
    }

    // JSON: the same, parsed.
    let fdb = lab.ctl_json(&["fdb", "show"]);
    for host in &h {
        let rows = rows_for(&fdb, &host.mac);
        assert_eq!(rows.len(), 1, "{fdb}");
        assert_eq!(rows[0]["port"], host.ifname.as_str());
        assert_eq!(rows[0]["vlan"], 0);
        assert!(rows[0]["age"].is_u64());
        assert!(rows[0].get("static").is_none());
    }

    // Ten echo requests in, ten replies out on h1's port (plus whatever ARP did).
    let after = lab.ctl_json(&["port", "stats", &h[0].ifname]);
    let delta = |key: &str| after[0][key].as_u64().unwrap() - before[0][key].as_u64().unwrap();
    assert!(
        delta("rx_frames") >= 10 && delta("tx_frames") >= 10,
        "{before} -> {after}"
    );
    assert!(delta("rx_bytes") >= 10 * 98, "{before} -> {after}");
    assert_eq!(after[0]["name"], h[0].ifname.as_str());

    let stats = lab.ctl_ok(&["port", "stats"]);
    for host in &h {
        assert!(stats.contains(&format!("{}:", host.ifname)), "{stats}");
    }
    let show = lab.ctl_ok(&["show"]);
    assert!(show.contains("3 of 8192 entries"), "{show}");
    let fdb_stats = lab.ctl_json(&["fdb", "stats"]);
    assert_eq!(fdb_stats["entries"], 3);
    assert!(fdb_stats["learned"].as_u64().unwrap() >= 3);
}

#[test]
fn static_entries_survive_flush_and_ageing() {
    if !root_or_skip("static_entries") {
        return;
    }
    let (lab, h) = Lab::with_hosts(3, &["--mac-ageing", "10"]);
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0)] {
        h[a].pin_neighbour(&h[b]);
    }
    assert!(h[0].ping_eventually(&h[1].ip));
    // A static entry for h3's real MAC on h3's port, before h3 ever sends anything.
    lab.ctl_ok(&["fdb", "add", &h[2].ifname, &h[2].mac]);
    let flushed = lab.ctl_json(&["fdb", "flush"]);
    assert_eq!(flushed["removed"], 2, "h1 and h2 were learned");
    let fdb = lab.ctl_json(&["fdb", "show"]);
    assert_eq!(fdb.as_array().unwrap().len(), 1, "{fdb}");
    assert_eq!(rows_for(&fdb, &h[2].mac)[0]["static"], true);

    // Traffic to the static MAC goes straight to h3's port; h2 never sees it.
    let pcap = lab.dir.join("h2.pcap");
    let capture = h[1].capture("icmp", &pcap);
    assert!(h[0].ping(&h[2].ip, 2));
    assert!(
        capture.finish().is_empty(),
        "h2 saw traffic for the static MAC"
    );

    // Past the ageing time, learned entries are gone and the static one stays.
    std::thread::sleep(Duration::from_millis(13_500));
    let fdb = lab.ctl_json(&["fdb", "show"]);
    let rows = fdb.as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the static entry should remain: {fdb}");
    assert_eq!(rows[0]["mac"], h[2].mac.as_str());
    assert_eq!(rows[0]["static"], true);
    let text = lab.ctl_ok(&["fdb", "show"]);
    assert!(text.contains("static"), "{text}");
    // Deleting it is allowed; deleting it twice is refused with exit 1.
    lab.ctl_ok(&["fdb", "del", &h[2].mac]);
    let again = lab.ctl(&["fdb", "del", &h[2].mac]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn ports_are_added_and_deleted_while_the_switch_runs() {
    if !root_or_skip("port_add_del") {
        return;
    }
    let (mut lab, h) = Lab::with_hosts(2, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));

    // A new TAP, moved into a new namespace, is reachable without restarting anything.
    let tap3 = lab.tap(3);
    let added = lab.ctl_json(&["port", "add", &tap3]);
    assert_eq!(added["name"], tap3.as_str());
    assert_eq!(added["kind"], "tap");
    let h3 = lab.add_host(3, 1500);
    assert!(h[0].ping_eventually(&h3.ip), "{}", lab.log());
    assert!(h3.ping(&h[1].ip, 2));
    let list = lab.ctl_json(&["port", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(rows_for(&lab.ctl_json(&["fdb", "show"]), &h3.mac).len(), 1);

    // Adding it twice, or a bad spec, is refused and changes nothing.
    assert_eq!(lab.ctl(&["port", "add", &tap3]).status.code(), Some(1));
    let bad = lab.ctl(&["port", "add", "bogus:x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bogus"));
    assert_eq!(lab.ctl_json(&["port", "list"]).as_array().unwrap().len(), 3);

    // Deleting it takes its MACs and deletes the TAP the switch created.
    let gone = lab.ctl_json(&["port", "del", &tap3]);
    assert_eq!(gone["macs_removed"], 1);
    assert!(rows_for(&lab.ctl_json(&["fdb", "show"]), &h3.mac).is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || !lab.link_exists(&h3.ns, &tap3)),
        "TAP {tap3} still exists in {}",
        h3.ns
    );
    assert!(h[0].ping(&h[1].ip, 3), "the others keep forwarding");
    assert_eq!(lab.ctl(&["port", "del", &tap3]).status.code(), Some(1));
}

/// Writes a config file listing TAPs `taps` of the lab.
fn write_config(lab: &Lab, taps: &[usize], extra: &str) -> std::path::PathBuf {
    let path = lab.dir.join("vswitchd.toml");
    let mut text = format!("# written by the test\nmac-ageing = 300\n{extra}\n");
    for &i in taps {
        text.push_str(&format!("\n[[port]]\nname = \"{}\"\n", lab.tap(i)));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Pings `to` from `from` every 20 ms for about `secs` seconds in the background.
fn steady_ping(from: &Host, to: &Host, secs: u32) -> std::process::Child {
    let count = (secs * 50).to_string();
    let deadline = (secs + 5).to_string();
    Command::new("ip")
        .args([
            "netns", "exec", &from.ns, "ping", "-n", "-q", "-i", "0.02", "-c", &count,
        ])
        .args(["-w", &deadline, &to.ip])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping")
}

/// Waits for a [`steady_ping`] to end and asserts it lost nothing.
fn assert_no_loss(mut ping: std::process::Child) {
    let status = common::wait_exit(&mut ping, Duration::from_secs(15));
    let out = ping.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{summary}");
    assert!(summary.contains(" 0% packet loss"), "{summary}");
}

#[test]
fn config_reload_adds_and_removes_ports_without_disturbing_the_others() {
    if !root_or_skip("config_reload") {
        return;
    }
    let mut lab = Lab::new();
    let config = write_config(&lab, &[1, 2, 3], "");
    lab.launch(
        vec!["--config".into(), config.display().to_string()],
        &[1, 2, 3],
    );
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    let h3 = lab.add_host(3, 1500);
    assert!(h1.ping_eventually(&h2.ip));
    assert!(h1.ping_eventually(&h3.ip));

    let ping = steady_ping(&h1, &h2, 6);
    std::thread::sleep(Duration::from_millis(500));

    // Drop port 3, add port 4, through `vswitchctl reload`.
    write_config(&lab, &[1, 2, 4], "mac-table-size = 4096");
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(reply["added"], serde_json::json!([lab.tap(4)]), "{reply}");
    assert_eq!(reply["removed"], serde_json::json!([lab.tap(3)]), "{reply}");
    assert_eq!(
        reply["unchanged"],
        serde_json::json!([lab.tap(1), lab.tap(2)]),
        "{reply}"
    );
    assert!(wait_until(Duration::from_secs(5), || !lab
        .link_exists(&h3.ns, &h3.ifname)));
    let h4 = lab.add_host(4, 1500);
    assert!(h1.ping_eventually(&h4.ip));
    assert_eq!(lab.ctl_json(&["show"])["fdb"]["max"], 4096);

    // A bad file is refused with its line; the running configuration stays.
    std::fs::write(
        &config,
        "mac-ageing = 300\n[[port]]\nname = \"ok\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let bad = lab.ctl(&["reload"]);
    assert_eq!(bad.status.code(), Some(1));
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        message.contains("line 4") && message.contains("colour"),
        "{message}"
    );
    assert_eq!(lab.ctl_json(&["port", "list"]).as_array().unwrap().len(), 3);

    // SIGHUP does the same as `reload`: port 5 appears.
    write_config(&lab, &[1, 2, 4, 5], "");
    let pid = nix::unistd::Pid::from_raw(lab.switch_pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .link_exists(&lab.sw_ns, &lab.tap(5))),
        "SIGHUP did not add the new port:\n{}",
        lab.log()
    );
    assert!(lab.switch_running());

    // The ping between the unchanged ports ran through all of it without losing a frame.
    assert_no_loss(ping);
}

#[test]
fn reload_reopens_a_port_whose_socket_changed_and_keeps_its_static_arp() {
    if !root_or_skip("reload_replace") {
        return;
    }
    let mut lab = Lab::new();
    let config = lab.dir.join("vswitchd.toml");
    let (a, b) = (lab.dir.join("a.sock"), lab.dir.join("b.sock"));
    let tap = lab.tap(1);
    let write = |path: &std::path::Path| {
        let text = format!(
            "[[port]]\nname = \"{tap}\"\n\n\
             [[port]]\nname = \"vm\"\nkind = \"dgram\"\npath = \"{path}\"\n\n\
             [[arp]]\nip = \"10.77.0.5\"\nmac = \"02:00:00:00:77:05\"\nport = \"vm\"\n",
            path = path.display()
        );
        std::fs::write(&config, text).unwrap();
    };
    write(&a);
    lab.launch(vec!["--config".into(), config.display().to_string()], &[1]);
    assert!(a.exists(), "{}", lab.log());
    let binding = |lab: &Lab| -> Vec<Value> {
        lab.ctl_json(&["arp", "show"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ip"] == "10.77.0.5")
            .cloned()
            .collect()
    };
    assert_eq!(binding(&lab).len(), 1);

    // The same file again changes nothing.
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(reply["replaced"], serde_json::json!([]), "{reply}");
    let mut unchanged = reply["unchanged"].as_array().unwrap().clone();
    unchanged.sort_by_key(|v| v.to_string());
    let mut want = vec![Value::from("vm"), Value::from(tap.as_str())];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(unchanged, want, "{reply}");

    // Another socket path: the port is closed and opened on the new path, and its static
    // binding follows it.
    write(&b);
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(reply["replaced"], serde_json::json!(["vm"]), "{reply}");
    assert_eq!(reply["failed"], serde_json::json!([]), "{reply}");
    assert!(b.exists() && !a.exists(), "{}", lab.log());
    let rows = binding(&lab);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["port"], "vm");
    assert_eq!(rows[0]["static"], true);

    // Frames sent to the new path arrive on the port.
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0x77, 0x09, 0x88, 0xb5]);
    frame.resize(60, 0);
    client.send_to(&frame, &b).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || {
            lab.ctl_json(&["port", "stats", "vm"])[0]["rx_frames"] == 1
        }),
        "{}",
        lab.log()
    );

    // A port added at runtime on another socket and then listed by the file is moved to the
    // file's socket at the next reload, not adopted as it is.
    let c = lab.dir.join("c.sock");
    lab.ctl_ok(&["port", "del", "vm"]);
    lab.ctl_ok(&["port", "add", &format!("dgram:{},name=vm", c.display())]);
    assert!(c.exists() && !b.exists());
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(reply["replaced"], serde_json::json!(["vm"]), "{reply}");
    assert!(b.exists() && !c.exists(), "{}", lab.log());
}

#[test]
fn reload_never_replaces_the_switchs_own_port() {
    if !root_or_skip("reload_own_port") {
        return;
    }
    let mut lab = Lab::new();
    let config = lab.dir.join("vswitchd.toml");
    let port = format!("[[port]]\nname = \"{}\"\n", lab.tap(1));
    std::fs::write(&config, format!("ip = \"10.77.0.254/24\"\n{port}")).unwrap();
    lab.launch(vec!["--config".into(), config.display().to_string()], &[1]);
    // The file drops its address and lists a port with the switch's name instead.
    let sock = lab.dir.join("own.sock");
    std::fs::write(
        &config,
        format!(
            "{port}\n[[port]]\nname = \"vswitch0\"\nkind = \"dgram\"\npath = \"{}\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let out = lab.ctl(&["--json", "reload"]);
    assert_eq!(out.status.code(), Some(1), "a partial failure exits 1");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = reply["failed"].to_string();
    assert!(
        failed.contains("vswitch0") && failed.contains("own port"),
        "{reply}"
    );
    assert!(
        !reply["needs_restart"].as_array().unwrap().is_empty(),
        "{reply}"
    );
    let list = lab.ctl_json(&["port", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "vswitch0" && p["kind"] == "internal"),
        "{list}"
    );
    assert!(!sock.exists());
}

#[test]
fn reload_refuses_a_table_smaller_than_its_static_entries() {
    if !root_or_skip("reload_table_size") {
        return;
    }
    let mut lab = Lab::new();
    let tap = lab.tap(1);
    let statics = |n: usize| -> String {
        (1..=n)
            .map(|i| format!("\n[[fdb]]\nport = \"{tap}\"\nmac = \"02:00:00:00:66:0{i}\"\n"))
            .collect()
    };
    let config = write_config(&lab, &[1], &format!("mac-table-size = 8\n{}", statics(3)));
    lab.launch(vec!["--config".into(), config.display().to_string()], &[1]);
    let fdb = |lab: &Lab| lab.ctl_json(&["fdb", "stats"]);
    assert_eq!(fdb(&lab)["static"], 3);

    // Two entries for three statics: refused, named, and nothing else lost.
    write_config(&lab, &[1], &format!("mac-table-size = 2\n{}", statics(3)));
    let out = lab.ctl(&["--json", "reload"]);
    assert_eq!(out.status.code(), Some(1), "a partial failure exits 1");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = reply["failed"].to_string();
    assert!(
        failed.contains("mac-table-size") && failed.contains("3 static"),
        "{reply}"
    );
    let stats = fdb(&lab);
    assert_eq!(
        (stats["max"].clone(), stats["static"].clone()),
        (8.into(), 3.into())
    );

    // The same size with one static left fits: the entries that left go first.
    write_config(&lab, &[1], &format!("mac-table-size = 2\n{}", statics(1)));
    let reply = lab.ctl_json(&["reload"]);
    assert_eq!(reply["failed"], serde_json::json!([]), "{reply}");
    let stats = fdb(&lab);
    assert_eq!(
        (stats["max"].clone(), stats["static"].clone()),
        (2.into(), 1.into())
    );
}

#[test]
fn fifty_vswitchctl_clients_at_once_while_traffic_flows() {
    if !root_or_skip("fifty_clients") {
        return;
    }
    let (lab, h) = Lab::with_hosts(2, &[]);
    assert!(h[0].ping_eventually(&h[1].ip));
    let ping = steady_ping(&h[0], &h[1], 4);
    let socket = lab.ctl_path();
    let mut clients: Vec<_> = (0..50)
        .map(|i| {
            let command = ["show", "fdb", "port", "version"][i % 4];
            let mut c = Command::new("timeout");
            c.args(["20", VSWITCHCTL, "-s"])
                .arg(&socket)
                .arg("--json")
                .arg(command);
            match command {
                "fdb" => c.arg("show"),
                "port" => c.arg("stats"),
                _ => &mut c,
            };
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in clients.drain(..).enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "client {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON reply");
    }
    assert_no_loss(ping);
}

#[test]
fn vswitchctl_exit_codes_follow_the_contract() {
    if !root_or_skip("vswitchctl_exit_codes") {
        return;
    }
    let (lab, _h) = Lab::with_hosts(1, &[]);
    let out = lab.ctl(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains("vswitchd 0.1.0") && version.contains("vswitchctl"),
        "{version}"
    );
    // 1: the daemon refused.
    let out = lab.ctl(&["fdb", "add", "nope", "02:00:00:00:00:01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no port named"));
    // 2: usage.
    assert_eq!(
        lab.ctl(&["fdb", "add", "x", "not-a-mac"]).status.code(),
        Some(2)
    );
    assert_eq!(lab.ctl(&["frobnicate"]).status.code(), Some(2));
    // 3: no daemon at that socket; the message names it.
    let missing = lab.dir.join("missing.ctl");
    let out = common::run(&[VSWITCHCTL, "-s", missing.to_str().unwrap(), "show"]);
    assert_eq!(out.status.code(), Some(3));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("missing.ctl") && message.contains("running"),
        "{message}"
    );
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_and_a_stale_socket_is_replaced() {
    if !root_or_skip("live_socket") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_switch(1, &[]);
    // Same control socket, other port: refused before any port is touched.
    let other = lab.tap(2);
    let mut second = lab
        .vswitchd_command(&[
            "--port".into(),
            other.clone(),
            "--ctl-socket".into(),
            lab.ctl_path().display().to_string(),
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status = common::wait_exit(&mut second, Duration::from_secs(10));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    assert!(err.contains("another vswitchd is serving"), "{err}");
    assert!(!lab.link_exists(&lab.sw_ns, &other));
    assert_eq!(
        lab.ctl(&["show"]).status.code(),
        Some(0),
        "the first one is unharmed"
    );

    // A daemon killed with SIGKILL leaves its socket file; the next one replaces it.
    let pid = nix::unistd::Pid::from_raw(lab.switch_pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    lab.wait_switch_exit(Duration::from_secs(10))
        .expect("killed");
    assert!(
        lab.ctl_path().exists(),
        "a killed daemon cannot remove its socket"
    );
    lab.start_switch(1, &[]);
    assert_eq!(lab.ctl(&["show"]).status.code(), Some(0));
    let status = lab.stop_switch().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!lab.ctl_path().exists(), "a clean exit removes the socket");
}
