//! Real QEMU guests on vswitchd: QEMU-owned taps attached with `netdev:`, `stream:` and
//! `dgram:` socket ports, TCP with QEMU's default offloads, software segmentation towards socket
//! ports, and VMs restarting on their ports. Needs root and QEMU (see `common::qemu::guest`).
//!
//! The guest (scripts/qemu-lab.sh) serves or fetches a 256 KiB random file over HTTP and prints
//! its SHA-256; a test passes only if both ends print the same one.

mod common;

use std::time::Duration;

use common::qemu::{self, Launch, Role, Vm, http_get, http_serve_once, sha256_hex, word};
use common::{Lab, root_or_skip, wait_until};

const BOOT: Duration = Duration::from_secs(90);
const BYTES: usize = 256 * 1024;

fn ready() -> bool {
    root_or_skip("qemu") && qemu::guest().is_some()
}

/// QEMU's `-netdev` for a stream port listening at `sock`.
fn stream_netdev(sock: &std::path::Path) -> String {
    format!(
        "stream,server=off,addr.type=unix,addr.path={}",
        sock.display()
    )
}

/// A lab whose switch has TAP 1 (moved into host 1) and the ports `ports(&lab)` makes; VMs
/// launch in the switch's namespace. Returns the lab, host 1 and how to launch VMs.
fn lab_with_host(ports: impl FnOnce(&Lab) -> Vec<String>) -> (Lab, common::Host, Launch) {
    let mut lab = Lab::new();
    let mut args = vec!["--port".to_owned(), lab.tap(1)];
    for spec in ports(&lab) {
        args.push("--port".to_owned());
        args.push(spec);
    }
    lab.launch(args, &[1]);
    let h1 = lab.add_host(1, 1500);
    let how = Launch {
        netns: Some(lab.sw_ns.clone()),
        uid: None,
    };
    (lab, h1, how)
}

/// A VM serving, another fetching from it; asserts the ping and the checksums.
fn serve_and_fetch(lab: &Lab, netdevs: [&str; 2], how: &Launch) {
    let ip = |i: u8| format!("10.{}.0.{}", lab.subnet(), 100 + i);
    let (a, b) = (ip(1), ip(2));
    let mut server = Vm::boot(
        lab,
        "vm1",
        netdevs[0],
        &a,
        Role::Serve { bytes: BYTES },
        how,
    );
    let served = server.expect(&["VSWITCH-SERVING"], BOOT);
    let mut client = Vm::boot(lab, "vm2", netdevs[1], &b, Role::Fetch { peer: &a }, how);
    let ping = client.expect(&["VSWITCH-PING-OK", "VSWITCH-PING-FAIL"], BOOT);
    assert_eq!(
        ping,
        "VSWITCH-PING-OK",
        "full-size pings failed\n{}",
        lab.log()
    );
    let fetched = client.expect(&["VSWITCH-FETCHED", "VSWITCH-FETCH-FAIL"], BOOT);
    assert_eq!(word(&fetched, 1), word(&served, 1), "{fetched} vs {served}");
    assert_eq!(word(&fetched, 2), BYTES.to_string());
}

#[test]
fn two_vms_on_qemu_owned_taps_attached_with_netdev() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let mut lab = Lab::new();
    // QEMU creates the taps when the VMs start; the switch waits for them.
    let (t1, t2) = (format!("{}q1", lab.prefix), format!("{}q2", lab.prefix));
    lab.launch(
        vec![
            "--port".into(),
            format!("netdev:{t1}"),
            "--port".into(),
            format!("netdev:{t2}"),
        ],
        &[],
    );
    let how = Launch {
        netns: Some(lab.sw_ns.clone()),
        uid: None,
    };
    let tap = |t: &str| format!("tap,ifname={t},script=no,downscript=no");
    serve_and_fetch(&lab, [&tap(&t1), &tap(&t2)], &how);
    // QEMU's default offloads were on: the guests' TCP crossed as super-frames.
    let stats = lab.ctl_json(&["port", "stats"]);
    for row in stats.as_array().unwrap() {
        assert_eq!(row["drops"]["no_offload"], 0, "{row}");
    }
    assert!(lab.log().contains("interface is back"), "{}", lab.log());
}

#[test]
fn two_vms_on_stream_ports_without_root() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let mut lab = Lab::new();
    // Neither vswitchd nor QEMU needs privileges for socket ports.
    let dir = lab.user_dir(65534);
    let (s1, s2) = (dir.join("vm1.sock"), dir.join("vm2.sock"));
    let ctl = dir.join("ctl.sock");
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(common::VSWITCHD)
    .arg("--port")
    .arg(format!("stream:{}", s1.display()))
    .arg("--port")
    .arg(format!("stream:{}", s2.display()))
    .arg("--ctl-socket")
    .arg(&ctl)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(lab.log_path()).unwrap());
    let mut switch = cmd.spawn().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || s2.exists()),
        "{}",
        lab.log()
    );
    let how = Launch {
        netns: None,
        uid: Some(65534),
    };
    serve_and_fetch(&lab, [&stream_netdev(&s1), &stream_netdev(&s2)], &how);
    let fdb = common::run(&[
        common::VSWITCHCTL,
        "-s",
        ctl.to_str().unwrap(),
        "fdb",
        "show",
    ]);
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.contains("vm1.sock") && fdb.contains("vm2.sock"),
        "{fdb}"
    );
    common::stop_child(&mut switch, Duration::from_secs(5));
    let _ = lab.stop_switch();
}

#[test]
fn a_vm_on_a_dgram_port_talks_to_a_namespace_host() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let (lab, h1, how) =
        lab_with_host(|lab| vec![format!("dgram:{}", lab.dir.join("sw.sock").display())]);
    let sock = lab.dir.join("sw.sock");
    let vm_ip = format!("10.{}.0.101", lab.subnet());
    let dgram = format!(
        "dgram,local.type=unix,local.path={},remote.type=unix,remote.path={}",
        lab.dir.join("vm.sock").display(),
        sock.display()
    );
    let mut vm = Vm::boot(
        &lab,
        "vm1",
        &dgram,
        &vm_ip,
        Role::Serve { bytes: BYTES },
        &how,
    );
    let served = vm.expect(&["VSWITCH-SERVING"], BOOT);
    assert!(h1.ping_eventually(&vm_ip), "{}", lab.log());
    let body = http_get(&h1, &vm_ip);
    assert_eq!(body.len(), BYTES);
    assert_eq!(sha256_hex(&body), word(&served, 1));
}

#[test]
fn tcp_between_a_vm_on_a_stream_port_and_a_host_with_offloads_both_ways() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let (lab, h1, how) =
        lab_with_host(|lab| vec![format!("stream:{}", lab.dir.join("vm.sock").display())]);
    let vm_ip = format!("10.{}.0.101", lab.subnet());
    let stream = stream_netdev(&lab.dir.join("vm.sock"));

    // Host -> VM: the host's TAP hands over TSO super-frames with partial checksums; the
    // stream port cannot take them, so the switch segments and checksums them in software.
    let data = common::payload(BYTES, 99);
    let want = sha256_hex(&data);
    let server = http_serve_once(&h1, data);
    let mut vm = Vm::boot(
        &lab,
        "vm1",
        &stream,
        &vm_ip,
        Role::Fetch { peer: &h1.ip },
        &how,
    );
    let fetched = vm.expect(&["VSWITCH-FETCHED", "VSWITCH-FETCH-FAIL"], BOOT);
    server.join().expect("the host's server");
    // The host's side did send super-frames (hence software segmentation for the VM).
    let tap = lab.ctl_json(&["port", "stats", &h1.ifname]);
    let (bytes, frames) = (
        tap[0]["rx_bytes"].as_u64().unwrap(),
        tap[0]["rx_frames"].as_u64().unwrap(),
    );
    assert!(
        bytes / frames.max(1) > 1514,
        "no super-frames from the host: {tap}"
    );
    assert_eq!(
        word(&fetched, 1),
        want,
        "the VM got other bytes\n{}",
        lab.log()
    );
    vm.stop();
    // The next VM has the same address and a new MAC.
    h1.sh(&["ip", "neigh", "flush", "dev", &h1.ifname]);

    // VM -> host.
    let mut vm = Vm::boot(
        &lab,
        "vm2",
        &stream,
        &vm_ip,
        Role::Serve { bytes: BYTES },
        &how,
    );
    let served = vm.expect(&["VSWITCH-SERVING"], BOOT);
    let body = http_get(&h1, &vm_ip);
    assert_eq!(sha256_hex(&body), word(&served, 1));

    let stats = lab.ctl_json(&["port", "stats", "vm.sock"]);
    assert_eq!(stats[0]["drops"]["no_offload"], 0, "{stats}");
}

#[test]
fn a_restarted_vm_regains_its_stream_and_netdev_ports() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let (mut lab, h1, how) = lab_with_host(|lab| {
        vec![
            format!("stream:{}", lab.dir.join("vm.sock").display()),
            format!("netdev:{}q1", lab.prefix),
        ]
    });
    let tap = format!("{}q1", lab.prefix);
    let stream = stream_netdev(&lab.dir.join("vm.sock"));
    let qtap = format!("tap,ifname={tap},script=no,downscript=no");
    let (ip_s, ip_t) = (
        format!("10.{}.0.101", lab.subnet()),
        format!("10.{}.0.102", lab.subnet()),
    );
    for round in 1..=2 {
        let mut a = Vm::boot(
            &lab,
            &format!("s{round}"),
            &stream,
            &ip_s,
            Role::Ping { peer: &h1.ip },
            &how,
        );
        let mut b = Vm::boot(
            &lab,
            &format!("t{round}"),
            &qtap,
            &ip_t,
            Role::Ping { peer: &h1.ip },
            &how,
        );
        for vm in [&mut a, &mut b] {
            let ping = vm.expect(&["VSWITCH-PING-OK", "VSWITCH-PING-FAIL"], BOOT);
            assert_eq!(
                ping,
                "VSWITCH-PING-OK",
                "round {round}, {}\n{}",
                vm.name,
                lab.log()
            );
        }
        // The VMs power off (QEMU exits, its tap goes); the switch keeps running.
        a.stop();
        b.stop();
        h1.sh(&["ip", "neigh", "flush", "dev", &h1.ifname]);
        assert!(lab.switch_running());
    }
    let log = lab.log();
    assert!(log.contains("the VM disconnected"), "{log}");
    assert!(log.contains("interface gone"), "{log}");
}

#[test]
fn a_vm_on_a_udp_port_talks_to_a_namespace_host() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    // QEMU's inet dgram netdev: bare frames in UDP, the format of GNS3 and `-netdev socket,udp=`.
    let (lab, h1, how) =
        lab_with_host(|_| vec!["udp:vm,local=127.0.0.1:10001,remote=127.0.0.1:10002".to_owned()]);
    let vm_ip = format!("10.{}.0.101", lab.subnet());
    let udp = "dgram,local.type=inet,local.host=127.0.0.1,local.port=10002,\
               remote.type=inet,remote.host=127.0.0.1,remote.port=10001";
    let mut vm = Vm::boot(&lab, "vm1", udp, &vm_ip, Role::Serve { bytes: BYTES }, &how);
    let served = vm.expect(&["VSWITCH-SERVING"], BOOT);
    assert!(h1.ping_eventually(&vm_ip), "{}", lab.log());
    let body = http_get(&h1, &vm_ip);
    assert_eq!(body.len(), BYTES);
    assert_eq!(sha256_hex(&body), word(&served, 1));
    let list = lab.ctl_ok(&["port", "list"]);
    assert!(
        list.contains("UDP 127.0.0.1:10001 <-> 127.0.0.1:10002"),
        "{list}"
    );
}
