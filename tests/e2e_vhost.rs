//! A real QEMU guest on a `vhost-user:` port: TCP both ways with a host on a TAP, offloaded
//! super-frames crossing between the TAP and the VM's rings untouched, and a VM that powers off
//! and boots again on the same port. Needs root and QEMU (see `common::qemu::guest`). And
//! frontends that misbehave on purpose against the real vswitchd while two hosts keep
//! talking through it (root, no QEMU).

mod common;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::qemu::{self, Launch, Nic, Role, Vm, http_get, http_serve_once, sha256_hex, word};
use common::{Lab, root_or_skip, wait_until};
use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

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
        list.contains("VM connected, rings running")
            && list.contains("guest_tso4")
            && list.contains("mrg_rxbuf")
            && list.contains("event_idx"),
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

#[test]
fn two_vms_on_vhost_user_ports_ping_and_move_tcp() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let mut lab = Lab::new();
    let (s1, s2) = (lab.dir.join("vm1.sock"), lab.dir.join("vm2.sock"));
    let spec = |s: &Path| format!("vhost-user:{}", s.display());
    lab.launch(
        vec!["--port".into(), spec(&s1), "--port".into(), spec(&s2)],
        &[],
    );
    let how = Launch::default();
    let (a, b) = (
        format!("10.{}.0.101", lab.subnet()),
        format!("10.{}.0.102", lab.subnet()),
    );
    let (n1, nic1) = vhost_user(&s1);
    let (n2, nic2) = vhost_user(&s2);
    let mut server = Vm::boot_with(
        &lab,
        "vm1",
        &n1,
        &a,
        Role::Serve { bytes: BYTES },
        &how,
        &nic1,
    );
    let served = server.expect(&["VSWITCH-SERVING"], BOOT);
    let mut client = Vm::boot_with(&lab, "vm2", &n2, &b, Role::Fetch { peer: &a }, &how, &nic2);
    let ping = client.expect(&["VSWITCH-PING-OK", "VSWITCH-PING-FAIL"], BOOT);
    assert_eq!(ping, "VSWITCH-PING-OK", "full-size pings\n{}", lab.log());
    let fetched = client.expect(&["VSWITCH-FETCHED", "VSWITCH-FETCH-FAIL"], BOOT);
    assert_eq!(word(&fetched, 1), word(&served, 1), "{fetched} vs {served}");
    assert_eq!(word(&fetched, 2), BYTES.to_string());
    // Both guests took the offloads: the server's TSO super-frames reached the client whole.
    let stats = lab.ctl_json(&["port", "stats", "vm2.sock"]);
    let (bytes, frames) = (
        stats[0]["tx_bytes"].as_u64().unwrap(),
        stats[0]["tx_frames"].as_u64().unwrap(),
    );
    assert!(
        bytes / frames.max(1) > 1514,
        "no super-frames VM to VM: {stats}"
    );
    assert_eq!(stats[0]["drops"]["no_offload"], 0, "{stats}");
}

#[test]
fn a_vm_serving_vhost_user_keeps_its_port_across_a_switch_restart() {
    if !ready() {
        return;
    }
    let _one = qemu::exclusive();
    let mut lab = Lab::new();
    // Host 1 on a veth whose switch end the switch attaches with netdev:, so that it outlives
    // the switch (a TAP the switch made would go with it).
    let (end, peer) = (lab.tap(1), format!("{}p", lab.tap(1)));
    common::sh(&[
        "ip", "-n", &lab.sw_ns, "link", "add", &end, "type", "veth", "peer", "name", &peer,
    ]);
    common::sh(&["ip", "-n", &lab.sw_ns, "link", "set", &peer, "up"]);
    let h1 = lab.add_host(1, 1500);

    // QEMU serves the socket; the switch connects to it.
    let sock = lab.dir.join("qemu.sock");
    let (netdev, mut nic) = vhost_user(&sock);
    for arg in &mut nic.qemu {
        if arg.starts_with("socket,") {
            arg.push_str(",server=on,wait=off");
        }
    }
    let vm_ip = format!("10.{}.0.101", lab.subnet());
    let how = Launch::default();
    let mut vm = Vm::boot_with(
        &lab,
        "vm1",
        &netdev,
        &vm_ip,
        Role::Serve { bytes: BYTES },
        &how,
        &nic,
    );
    assert!(wait_until(Duration::from_secs(10), || sock.exists()));
    let args = || {
        vec![
            "--port".to_string(),
            format!("netdev:{peer}"),
            "--port".to_string(),
            format!("vhost-user-client:{}", sock.display()),
        ]
    };
    lab.launch(args(), &[]);
    let served = vm.expect(&["VSWITCH-SERVING"], BOOT);
    assert_eq!(sha256_hex(&http_get(&h1, &vm_ip)), word(&served, 1));
    let list = lab.ctl_json(&["port", "list"]).to_string();
    assert!(list.contains("vhost-user client of"), "{list}");

    // The switch goes and comes back; the VM runs on and gets its port back.
    assert_eq!(lab.stop_switch().and_then(|s| s.code()), Some(0));
    assert!(sock.exists(), "the switch left QEMU's socket alone");
    lab.launch(args(), &[]);
    assert_eq!(
        sha256_hex(&http_get(&h1, &vm_ip)),
        word(&served, 1),
        "after the restart\n{}",
        lab.log()
    );
    assert!(
        lab.log().contains("connected to the VM at"),
        "{}",
        lab.log()
    );
}

/// A frontend that sets up one pair of 16-entry rings in 1 MiB of memory it shares through a
/// file, then puts a transmit chain that loops on its ring and kicks.
fn frontend_with_a_looping_chain(sock: &Path, dir: &Path) -> (Frontend, EventFd) {
    const MEM: usize = 1 << 20;
    const VA: u64 = 0x7f00_0000_0000;
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("vm.mem"))
        .unwrap();
    file.set_len(MEM as u64).unwrap();
    let offset = FileOffset::new(file.try_clone().unwrap(), 0);
    let mem: GuestMemoryMmap =
        GuestMemoryMmap::from_ranges_with_files([(GuestAddress(0), MEM, Some(offset))]).unwrap();
    let frontend = Frontend::connect(sock, 2).unwrap();
    frontend.set_owner().unwrap();
    frontend.get_features().unwrap();
    frontend.set_features(1 << 32).unwrap();
    frontend
        .set_mem_table(&[VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: MEM as u64,
            userspace_addr: VA,
            mmap_offset: 0,
            mmap_handle: file.as_raw_fd(),
        }])
        .unwrap();
    let kick = EventFd::new(0).unwrap();
    for q in 0..2u64 {
        let base = q * 0x4000;
        frontend.set_vring_num(q as usize, 16).unwrap();
        let config = VringConfigData {
            queue_max_size: 16,
            queue_size: 16,
            flags: 0,
            desc_table_addr: VA + base,
            used_ring_addr: VA + base + 0x2000,
            avail_ring_addr: VA + base + 0x1000,
            log_addr: None,
        };
        frontend.set_vring_addr(q as usize, &config).unwrap();
        frontend.set_vring_base(q as usize, 0).unwrap();
        frontend.set_vring_kick(q as usize, &kick).unwrap();
    }
    // Transmit queue (1): descriptors 0 -> 1 -> 0 ..., offered as the first chain.
    let desc = 0x4000u64;
    for (i, next) in [(0u64, 1u16), (1, 0)] {
        let at = desc + 16 * i;
        mem.write_obj(0x10000u64, GuestAddress(at)).unwrap();
        mem.write_obj(64u32, GuestAddress(at + 8)).unwrap();
        mem.write_obj(1u16, GuestAddress(at + 12)).unwrap();
        mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }
    mem.write_obj(0u16, GuestAddress(0x5004)).unwrap();
    mem.write_obj(1u16, GuestAddress(0x5002)).unwrap();
    kick.write(1).unwrap();
    (frontend, kick)
}

#[test]
fn misbehaving_frontends_lose_the_port_while_the_other_ports_forward() {
    if !root_or_skip("vhost") {
        return;
    }
    let mut lab = Lab::new();
    let sock = lab.dir.join("vm.sock");
    let spec = format!("vhost-user:{}", sock.display());
    lab.start_switch(2, &["--port", &spec]);
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    assert!(h1.ping_eventually(&h2.ip));
    let dropped = |lab: &Lab, n: usize| {
        wait_until(Duration::from_secs(5), || {
            lab.log().matches("waiting for it").count() >= n
        })
    };

    // Garbage on the socket.
    let mut junk = UnixStream::connect(&sock).unwrap();
    junk.write_all(&[0xde; 64]).unwrap();
    assert!(dropped(&lab, 1), "{}", lab.log());
    drop(junk);

    // Half a message, and the socket left open: the loop does not wait for the rest.
    let mut half = UnixStream::connect(&sock).unwrap();
    half.write_all(&[1, 0, 0, 0, 1, 0]).unwrap();
    assert!(h1.ping(&h2.ip, 5), "{}", lab.log());
    drop(half);
    assert!(dropped(&lab, 2), "{}", lab.log());

    // A transmit chain that loops.
    let (_frontend, _kick) = frontend_with_a_looping_chain(&sock, &lab.dir);
    assert!(dropped(&lab, 3), "{}", lab.log());
    assert!(h1.ping(&h2.ip, 5), "{}", lab.log());
    assert!(lab.switch_running());
    let log = lab.log();
    // One line for each.
    assert_eq!(log.matches("waiting for it").count(), 3, "{log}");
    assert_eq!(
        log.matches("dropped the VM: it broke its rings").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("dropped the VM: vhost-user protocol").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("end of stream in the middle of a message"),
        "{log}"
    );
}
