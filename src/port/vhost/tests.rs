//! The port against frontends that play the VM: one that sets the device up as QEMU does and
//! moves frames both ways, and ones that misbehave on purpose (garbage on the socket, a
//! message cut short, broken rings, memory taken away, a second VM, a VM that leaves).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6,
};
use vm_memory::{Bytes, FileOffset, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::device::{RX, TX};
use super::ring::Memory;
use super::*;
use crate::wire::VNET_HDR_LEN;

const MEM: usize = 1 << 20;
/// Where the frontend claims the memory is in its address space (ring addresses use it).
const VA: u64 = 0x7f00_0000_0000;
const SIZE: u16 = 16;
/// Each queue's rings: descriptors, available ring, used ring.
const RINGS: [(u64, u64, u64); 2] = [(0x0, 0x1000, 0x2000), (0x4000, 0x5000, 0x6000)];
const BUFS: u64 = 0x10000;
const WRITE: u16 = 2;

/// A scratch directory for one test's socket and memory file.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vswitch-vhost-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The VM's memory: a file both sides map.
struct VmMemory {
    file: File,
    mem: Memory,
}

impl VmMemory {
    fn new(dir: &std::path::Path) -> VmMemory {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("mem"))
            .unwrap();
        file.set_len(MEM as u64).unwrap();
        let offset = FileOffset::new(file.try_clone().unwrap(), 0);
        let mem = Memory::from_ranges_with_files([(GuestAddress(0), MEM, Some(offset))]).unwrap();
        VmMemory { file, mem }
    }

    fn region(&self) -> VhostUserMemoryRegionInfo {
        region_of(&self.file)
    }

    fn desc(&self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = RINGS[q].0 + 16 * u64::from(i);
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Makes chain `head` available on queue `q`, as its `n`th.
    fn offer(&self, q: usize, n: u16, head: u16) {
        let avail = RINGS[q].1;
        let slot = avail + 4 + 2 * u64::from(n % SIZE);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.mem
            .write_obj(n.wrapping_add(1), GuestAddress(avail + 2))
            .unwrap();
    }

    fn used_idx(&self, q: usize) -> u16 {
        self.mem.read_obj(GuestAddress(RINGS[q].2 + 2)).unwrap()
    }
}

/// The memory table's one region, backed by `file`.
fn region_of(file: &File) -> VhostUserMemoryRegionInfo {
    VhostUserMemoryRegionInfo {
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: VA,
        mmap_offset: 0,
        mmap_handle: file.as_raw_fd(),
    }
}

/// The frontend's eventfds for the two queues.
struct Fds {
    kick: [EventFd; 2],
    call: [EventFd; 2],
}

/// Sets the device up as QEMU does, acknowledging `features`.
fn set_up(frontend: &mut Frontend, memory: &File, features: u64) -> Fds {
    let fds = Fds {
        kick: [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()],
        call: [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()],
    };
    frontend.set_owner().unwrap();
    let offered = frontend.get_features().unwrap();
    assert_eq!(offered & features, features);
    frontend.set_features(features).unwrap();
    frontend.set_mem_table(&[region_of(memory)]).unwrap();
    for (q, (desc, avail, used)) in RINGS.iter().enumerate() {
        frontend.set_vring_num(q, SIZE).unwrap();
        let config = VringConfigData {
            queue_max_size: SIZE,
            queue_size: SIZE,
            flags: 0,
            desc_table_addr: VA + desc,
            used_ring_addr: VA + used,
            avail_ring_addr: VA + avail,
            log_addr: None,
        };
        frontend.set_vring_addr(q, &config).unwrap();
        frontend.set_vring_base(q, 0).unwrap();
        frontend.set_vring_call(q, &fds.call[q]).unwrap();
        frontend.set_vring_kick(q, &fds.kick[q]).unwrap();
    }
    fds
}

fn bit(b: u32) -> u64 {
    1 << b
}

/// What `recv` gave while the port was pumped.
#[derive(Default, Debug)]
struct Pumped {
    frames: Vec<Vec<u8>>,
    refused: usize,
}

/// Calls `recv` until `done` says so (at most 5 s).
fn pump(port: &mut VhostUserPort, mut done: impl FnMut(&VhostUserPort, &Pumped) -> bool) -> Pumped {
    let mut got = Pumped::default();
    let mut buf = vec![0u8; crate::wire::FRAME_BUF_LEN];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(port, &got) {
        assert!(Instant::now() < deadline, "gave up: {}", port.detail());
        match port.recv(&mut buf) {
            Ok(n) => got.frames.push(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => got.refused += 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

fn running(port: &VhostUserPort, _: &Pumped) -> bool {
    port.detail().contains("rings running")
}

fn waiting(port: &VhostUserPort, _: &Pumped) -> bool {
    port.state() == "waiting"
}

/// A frontend connecting to `path` and setting the device up from a thread of its own (its
/// requests wait for the port's replies); it hands the frontend and the eventfds back.
fn connect(path: &std::path::Path, vm: &VmMemory, features: u64) -> JoinHandle<(Frontend, Fds)> {
    let path = path.to_owned();
    let memory = vm.file.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut frontend = Frontend::connect(&path, 2).unwrap();
        let fds = set_up(&mut frontend, &memory, features);
        (frontend, fds)
    })
}

/// An open port at a fresh socket, registered with a poll of its own.
fn open_port(dir: &std::path::Path) -> (VhostUserPort, mio::Poll) {
    let poll = mio::Poll::new().unwrap();
    let mut port = VhostUserPort::open("vm", &dir.join("vm.sock")).unwrap();
    port.register(poll.registry(), Token(1)).unwrap();
    (port, poll)
}

/// A port with a VM set up with `features`.
fn attached(test: &str, features: u64) -> (PathBuf, VhostUserPort, VmMemory, Frontend, Fds) {
    let dir = scratch(test);
    let (mut port, _poll) = open_port(&dir);
    let vm = VmMemory::new(&dir);
    let frontend = connect(&dir.join("vm.sock"), &vm, features);
    pump(&mut port, running);
    let (frontend, fds) = frontend.join().unwrap();
    (dir, port, vm, frontend, fds)
}

/// A frame in the switch's layout with a 60-byte Ethernet frame.
fn frame(tag: u8) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend((0..60).map(|i| i as u8 ^ tag));
    f
}

#[test]
fn frames_cross_both_ways_and_features_decide_the_offloads() {
    let features = bit(VIRTIO_F_VERSION_1);
    let (dir, mut port, vm, _frontend, fds) = attached("both-ways", features);
    assert_eq!(port.state(), "up");
    assert!(!port.caps().offloads, "the VM took no offloads");
    assert!(
        port.detail().contains("features version_1"),
        "{}",
        port.detail()
    );

    // VM -> switch: a frame on the transmit queue, and a kick.
    let sent = frame(1);
    vm.mem.write_slice(&sent, GuestAddress(BUFS)).unwrap();
    vm.desc(TX, 0, BUFS, sent.len() as u32, 0, 0);
    vm.offer(TX, 0, 0);
    fds.kick[TX].write(1).unwrap();
    let got = pump(&mut port, |_, got| !got.frames.is_empty());
    assert_eq!(got.frames, [sent]);
    assert_eq!(vm.used_idx(TX), 1);

    // Switch -> VM: no buffer yet is a full ring; then one buffer takes one frame.
    assert_eq!(
        port.send(&frame(2)).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    vm.desc(RX, 0, BUFS + 0x1000, 2048, WRITE, 0);
    vm.offer(RX, 0, 0);
    port.send(&frame(2)).unwrap();
    assert_eq!(vm.used_idx(RX), 1);
    let mut got = vec![0u8; 72];
    vm.mem
        .read_slice(&mut got, GuestAddress(BUFS + 0x1000))
        .unwrap();
    assert_eq!(got[VNET_HDR_LEN..], frame(2)[VNET_HDR_LEN..]);
    assert_eq!(fds.call[RX].read().unwrap(), 1, "the VM was interrupted");
    std::fs::remove_dir_all(dir).unwrap();

    let offloads = [
        VIRTIO_F_VERSION_1,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_GUEST_TSO6,
        VIRTIO_NET_F_GUEST_ECN,
    ];
    let all = offloads.iter().fold(0, |f, &b| f | bit(b));
    let (dir, port, ..) = attached("offloads", all);
    assert!(port.caps().offloads);
    drop(port);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn garbage_on_the_socket_drops_the_vm_and_the_port_takes_the_next() {
    let dir = scratch("garbage");
    let (mut port, _poll) = open_port(&dir);
    let mut junk = std::os::unix::net::UnixStream::connect(dir.join("vm.sock")).unwrap();
    pump(&mut port, |p, _| p.state() == "up");
    junk.write_all(&[0xde; 64]).unwrap();
    pump(&mut port, waiting);
    drop(junk);
    let vm = VmMemory::new(&dir);
    let frontend = connect(&dir.join("vm.sock"), &vm, bit(VIRTIO_F_VERSION_1));
    pump(&mut port, running);
    frontend.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_message_cut_short_never_holds_the_loop() {
    let dir = scratch("cut-short");
    let (mut port, _poll) = open_port(&dir);
    let mut stream = std::os::unix::net::UnixStream::connect(dir.join("vm.sock")).unwrap();
    pump(&mut port, |p, _| p.state() == "up");
    // Half a header, then silence with the socket open: the port waits for the rest, and
    // every call returns at once.
    stream.write_all(&[1, 0, 0, 0, 1, 0]).unwrap();
    let mut buf = vec![0u8; 2048];
    for _ in 0..20 {
        let started = Instant::now();
        let e = port.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() < Duration::from_millis(50));
    }
    assert_eq!(port.state(), "up");
    drop(stream);
    pump(&mut port, waiting);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_broken_ring_drops_the_vm_and_frames_to_it_find_no_link() {
    let (dir, mut port, vm, frontend, fds) = attached("broken-ring", bit(VIRTIO_F_VERSION_1));
    // A transmit chain that loops.
    vm.desc(TX, 0, BUFS, 64, 1, 1);
    vm.desc(TX, 1, BUFS, 64, 1, 0);
    vm.offer(TX, 0, 0);
    fds.kick[TX].write(1).unwrap();
    let got = pump(&mut port, waiting);
    assert!(got.frames.is_empty());
    assert_eq!(
        port.send(&frame(3)).unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    // The VM's end of the socket was closed.
    assert!(frontend.get_features().is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_taken_away_from_under_the_rings_drops_the_vm() {
    let (dir, mut port, vm, frontend, fds) = attached("memory", bit(VIRTIO_F_VERSION_1));
    // A new table whose one region starts past the rings: they now point nowhere.
    let mut region = vm.region();
    region.guest_phys_addr = 0x4000_0000;
    frontend.set_mem_table(&[region]).unwrap();
    vm.offer(TX, 0, 0);
    fds.kick[TX].write(1).unwrap();
    pump(&mut port, waiting);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_second_vm_is_refused_and_a_vm_that_leaves_frees_the_port() {
    let (dir, mut port, vm, frontend, _fds) = attached("second", bit(VIRTIO_F_VERSION_1));
    let second = Frontend::connect(dir.join("vm.sock"), 2).unwrap();
    let refused = std::thread::spawn(move || second.get_features().is_err());
    pump(&mut port, |_, _| refused.is_finished());
    assert!(refused.join().unwrap(), "the second VM got an answer");
    assert_eq!(port.state(), "up", "the first VM stays");
    // The first VM leaves in the middle of a frame: a chain offered, never kicked.
    vm.desc(TX, 0, BUFS, 64, 0, 0);
    vm.offer(TX, 0, 0);
    drop(frontend);
    pump(&mut port, waiting);
    assert_eq!(
        port.send(&frame(4)).unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert!(port.detail().contains("no VM connected"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_client_port_connects_when_the_vm_listens_and_again_after_it_left() {
    let dir = scratch("client");
    let path = dir.join("qemu.sock");
    let mut port = VhostUserPort::client("vm", &path);
    assert!(port.caps().polled, "ticks reconnect it");
    assert_eq!(port.kind(), PortKind::VhostUserClient);
    let t = |s: u64| Duration::from_secs(s);
    assert!(!port.tick(t(0)).ready, "nothing listens yet");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert_eq!(port.tick(t(0)).next, Some(RETRY), "not before RETRY");
    let vm = VmMemory::new(&dir);
    for round in 1..=2 {
        let tick = port.tick(t(round * 10));
        assert!(tick.ready, "round {round}: connected");
        let (stream, _) = listener.accept().unwrap();
        let memory = vm.file.try_clone().unwrap();
        let frontend = std::thread::spawn(move || {
            let mut frontend = Frontend::from_stream(stream, 2);
            set_up(&mut frontend, &memory, bit(VIRTIO_F_VERSION_1));
            frontend
        });
        pump(&mut port, running);
        assert!(port.detail().starts_with("vhost-user client of"));
        drop(frontend.join().unwrap());
        pump(&mut port, waiting);
    }
    drop(port);
    assert!(path.exists(), "QEMU's socket is QEMU's");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_region_larger_than_its_file_is_refused() {
    let dir = scratch("short-file");
    let (mut port, _poll) = open_port(&dir);
    let vm = VmMemory::new(&dir);
    let frontend = Frontend::connect(dir.join("vm.sock"), 2).unwrap();
    frontend.set_owner().unwrap();
    // Mapped whole, the last page would be past the file's end: SIGBUS on the first touch.
    vm.file.set_len(MEM as u64 - 4096).unwrap();
    frontend.set_mem_table(&[vm.region()]).unwrap();
    pump(&mut port, waiting);
    std::fs::remove_dir_all(dir).unwrap();
}
