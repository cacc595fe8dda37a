//! A real QEMU guest on a `vhost-user:` port: TCP both ways with a host on a TAP, offloaded
//! super-frames crossing between the TAP and the VM's rings untouched, and a VM that powers off
//! and boots again on the same port. Needs root and QEMU (see `common::qemu::guest`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::qemu::{self, Launch, Nic, Role, Vm, http_get, http_serve_once, sha256_hex, word};
use common::{Lab, root_or_skip};

const BOOT: Duration = Duration::from_secs(90);
const BYTES: usize = 256 * 1024;

fn ready() -> bool {
    root_or_skip("qemu") && qemu::guest().is_some()
}

/// QEMU's side of a vhost-user port at `sock`: the guest's memory shared (a memfd the switch
/// maps), the socket, and `vectors=0` (QEMU 7.2 under TCG crashes setting up MSI-X vector
/// notifiers for a vhost-user device; the guest uses INTx instead).
fn vhost_user(sock: &Path) -> (String, Nic) {
    let qemu = [
        "-object",
        "memory-backend-memfd,id=mem,size=256M,share=on",
        "-numa",
        "node,memdev=mem",
        "-chardev",
        &format!("socket,id=c0,path={}", sock.display()),
    ];
    let nic = Nic {
        qemu: qemu.iter().map(|s| s.to_string()).collect(),
        device: ",vectors=0".into(),
    };
    ("vhost-user,chardev=c0".into(), nic)
}

/// A switch with TAP 1 (moved into host 1) and a vhost-user port `vm.sock`.
fn lab_with_host() -> (Lab, common::Host, Launch) {
    let mut lab = Lab::new();
    let sock = format!("vhost-user:{}", lab.dir.join("vm.sock").display());
    lab.launch(
        vec!["--port".into(), lab.tap(1), "--port".into(), sock],
        &[1],
    );
    let h1 = lab.add_host(1, 1500);
    let how = Launch {
        netns: Some(lab.sw_ns.clone()),
        uid: None,
    };
    (lab, h1, how)
}

#[test]
fn tcp_between_a_vm_on_a_vhost_user_port_and_a_tap_host_both_ways_across_a_vm_restart() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let (lab, h1, how) = lab_with_host();
    let (netdev, nic) = vhost_user(&lab.dir.join("vm.sock"));
    let vm_ip = format!("10.{}.0.101", lab.subnet());
    let port = lab.ctl_json(&["port", "list"]);
    assert!(
        port.to_string().contains("no VM connected"),
        "before QEMU starts: {port}"
    );

    // Host -> VM: the TAP hands over TSO super-frames; the VM negotiated the offloads, so they
    // go into its ring as they are.
    let data = common::payload(BYTES, 16);
    let want = sha256_hex(&data);
    let server = http_serve_once(&h1, data);
    let mut vm = Vm::boot_with(
        &lab,
        "vm1",
        &netdev,
        &vm_ip,
        Role::Fetch { peer: &h1.ip },
        &how,
        &nic,
    );
    let ping = vm.expect(&["VSWITCH-PING-OK", "VSWITCH-PING-FAIL"], BOOT);
    assert_eq!(ping, "VSWITCH-PING-OK", "full-size pings\n{}", lab.log());
    let fetched = vm.expect(&["VSWITCH-FETCHED", "VSWITCH-FETCH-FAIL"], BOOT);
    server.join().expect("the host's server");
    assert_eq!(
        word(&fetched, 1),
        want,
        "the VM got other bytes\n{}",
        lab.log()
    );
    let stats = lab.ctl_json(&["port", "stats", "vm.sock"]);
    let (bytes, frames) = (
        stats[0]["tx_bytes"].as_u64().unwrap(),
        stats[0]["tx_frames"].as_u64().unwrap(),
    );
    assert!(
        bytes / frames.max(1) > 1514,
        "no super-frames reached the VM: {stats}"
    );
    let list = lab.ctl_json(&["port", "list"]).to_string();
    assert!(
        list.contains("VM connected, rings running") && list.contains("guest_tso4"),
        "{list}"
    );
    vm.stop();
    // The next VM has the same address and a new MAC.
    h1.sh(&["ip", "neigh", "flush", "dev", &h1.ifname]);

    // VM -> host, from a new QEMU on the same socket: the port waited for it.
    let mut vm = Vm::boot_with(
        &lab,
        "vm2",
        &netdev,
        &vm_ip,
        Role::Serve { bytes: BYTES },
        &how,
        &nic,
    );
    let served = vm.expect(&["VSWITCH-SERVING"], BOOT);
    let body = http_get(&h1, &vm_ip);
    assert_eq!(sha256_hex(&body), word(&served, 1));

    let stats = lab.ctl_json(&["port", "stats", "vm.sock"]);
    assert_eq!(stats[0]["drops"]["no_offload"], 0, "{stats}");
    let log = lab.log();
    assert!(log.contains("the VM disconnected"), "{log}");
    assert_eq!(log.matches("a VM connected").count(), 2, "{log}");
}
