//! QEMU's socket backends without QEMU and without root: the real reactor with real `stream:`
//! and `dgram:` ports, the test playing the VM on the other end of the Unix socket, with QEMU's
//! framing (a 4-byte big-endian length before each frame on the stream).

mod fake;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fake::{BCAST, Host, Switch, eth, mac, pair};
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Packet, TcpPacket};
use vswitch::bridge::{BridgeConfig, DropReason, PortConfig, PortId};
use vswitch::port::{DgramPort, Port, StreamPort};
use vswitch::wire::VNET_HDR_LEN;

static N: AtomicU32 = AtomicU32::new(0);

struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("vswitch-sock-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A switch with one offload-capable fake host port (p0) and the given socket port (p1).
fn switch_with(port: Box<dyn Port>) -> (Switch, Host) {
    let (p0, h0) = pair("p0", true);
    let sw = Switch::start_custom(
        vec![(p0, PortConfig::default())],
        BridgeConfig::default(),
        move |reactor| {
            reactor.add_port(port).unwrap();
        },
    );
    (sw, h0)
}

/// A switch with a fake host port and a stream port `vm` listening at `DIR/vm.sock`.
fn stream_switch() -> (Dir, PathBuf, Switch, Host) {
    let dir = Dir::new();
    let path = dir.path("vm.sock");
    let (sw, h0) = switch_with(Box::new(StreamPort::open("vm", &path).unwrap()));
    (dir, path, sw, h0)
}

/// The VM's side of a stream port.
struct StreamVm {
    stream: UnixStream,
}

impl StreamVm {
    /// Connects, retrying for a while (the switch may still be starting).
    fn connect(path: &Path) -> StreamVm {
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "connect {}: {e}", path.display());
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        StreamVm { stream }
    }

    fn send(&mut self, frame: &[u8]) {
        self.stream
            .write_all(&(frame.len() as u32).to_be_bytes())
            .unwrap();
        self.stream.write_all(frame).unwrap();
    }

    fn recv(&mut self) -> Vec<u8> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .expect("a frame from the switch");
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        frame
    }

    fn expect_silence(&mut self) {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("unexpected data from the switch: {other:?}"),
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
}

fn with_header(frame: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend_from_slice(frame);
    f
}

#[test]
fn a_stream_port_speaks_qemus_framing() {
    let (_dir, path, sw, mut h0) = stream_switch();
    let mut vm = StreamVm::connect(&path);

    let from_vm = eth(BCAST, mac(2), 60);
    vm.send(&from_vm);
    h0.expect(&with_header(&from_vm));
    let to_vm = eth(mac(2), mac(1), 1514);
    h0.send(&with_header(&to_vm));
    assert_eq!(vm.recv(), to_vm);

    // A frame split across writes (even inside its length) is put back together.
    let f = eth(mac(1), mac(2), 900);
    let mut bytes = (f.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&f);
    for part in [&bytes[..2], &bytes[2..7], &bytes[7..]] {
        vm.stream.write_all(part).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    h0.expect(&with_header(&f));
    drop(sw);
    assert!(!path.exists(), "the port removes its socket");
}

#[test]
fn a_vm_that_reconnects_gets_its_port_back() {
    let (_dir, path, sw, mut h0) = stream_switch();
    let mut vm = StreamVm::connect(&path);
    vm.send(&eth(BCAST, mac(2), 60));
    h0.recv(Duration::from_secs(5)).unwrap();
    drop(vm);
    // While no VM is connected, frames for it are dropped as link_down.
    std::thread::sleep(Duration::from_millis(100));
    h0.send(&with_header(&eth(BCAST, mac(1), 60)));
    std::thread::sleep(Duration::from_millis(100));
    let mut vm = StreamVm::connect(&path);
    let f = eth(mac(1), mac(2), 100);
    vm.send(&f);
    h0.expect(&with_header(&f));
    let g = eth(BCAST, mac(1), 70);
    h0.send(&with_header(&g));
    assert_eq!(vm.recv(), g);
    // A length no Ethernet frame has ends the connection; the next VM is served again.
    vm.stream.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        vm.stream.read(&mut b).unwrap_or(0),
        0,
        "the switch hangs up"
    );
    let mut vm = StreamVm::connect(&path);
    vm.send(&f);
    h0.expect(&with_header(&f));
    let reactor = sw.finish();
    let stats = reactor.port_stats(PortId(1)).unwrap();
    assert!(stats.drops(DropReason::LinkDown) >= 1, "{stats:?}");
}

#[test]
fn a_second_vm_is_refused_and_the_first_keeps_its_port() {
    let (_dir, path, sw, mut h0) = stream_switch();
    let mut first = StreamVm::connect(&path);
    let f = eth(BCAST, mac(2), 60);
    first.send(&f);
    h0.expect(&with_header(&f));

    // The intruder is hung up on at once, even while the first VM is silent.
    let mut second = StreamVm::connect(&path);
    let mut b = [0u8; 1];
    assert_eq!(
        second.stream.read(&mut b).expect("hang-up, not a timeout"),
        0
    );
    second.stream.write_all(&[0, 0, 0, 60]).ok();

    let g = eth(mac(2), mac(1), 80);
    h0.send(&with_header(&g));
    assert_eq!(first.recv(), g);
    let f = eth(mac(1), mac(2), 90);
    first.send(&f);
    h0.expect(&with_header(&f));

    // A VM that breaks the framing is disconnected; the next one is served at once.
    first.stream.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    assert_eq!(first.stream.read(&mut b).unwrap_or(0), 0);
    let mut third = StreamVm::connect(&path);
    third.send(&f);
    h0.expect(&with_header(&f));
    drop(sw);
}

/// A TCP/IPv4 super-frame (virtio-net header with TSO and a partial checksum) of `len` bytes
/// of payload, as a TAP with offloads hands it over.
fn tso_frame(len: usize) -> Vec<u8> {
    let mut e = mac(2).to_vec();
    e.extend_from_slice(&mac(1));
    e.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    e.extend_from_slice(&((40 + len) as u16).to_be_bytes());
    e.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    e.extend_from_slice(&[
        0x1f, 0x90, 0xc3, 0x50, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 1, 0,
    ]);
    e.extend_from_slice(&[0, 0, 0, 0]);
    e.extend((0..len).map(|i| i as u8));
    let mut f = vec![1u8, 1]; // NEEDS_CSUM, GSO TCPv4
    f.extend_from_slice(&54u16.to_ne_bytes()); // hdr_len
    f.extend_from_slice(&1000u16.to_ne_bytes()); // gso_size
    f.extend_from_slice(&34u16.to_ne_bytes()); // csum_start
    f.extend_from_slice(&16u16.to_ne_bytes()); // csum_offset
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&e);
    f
}

#[test]
fn super_frames_reach_a_stream_port_as_valid_segments() {
    let (_dir, path, sw, mut h0) = stream_switch();
    let mut vm = StreamVm::connect(&path);
    vm.send(&eth(BCAST, mac(2), 60)); // the VM's MAC is learned on the stream port
    h0.recv(Duration::from_secs(5)).unwrap();
    h0.send(&tso_frame(2500));
    let mut payload = Vec::new();
    for _ in 0..3 {
        let seg = vm.recv();
        let ip = Ipv4Packet::new_checked(&seg[14..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let (src, dst) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
        assert!(tcp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)));
        payload.extend_from_slice(tcp.payload());
    }
    assert_eq!(payload, (0..2500).map(|i| i as u8).collect::<Vec<_>>());
    vm.expect_silence();
    drop(sw);
}

#[test]
fn a_dgram_port_learns_the_vm_and_follows_it() {
    let dir = Dir::new();
    let path = dir.path("sw.sock");
    let port = DgramPort::open("vm", &path, None).unwrap();
    let (sw, mut h0) = switch_with(Box::new(port));

    // Before the VM has spoken, there is nowhere to send.
    h0.send(&with_header(&eth(BCAST, mac(1), 60)));
    std::thread::sleep(Duration::from_millis(100));

    let vm = UnixDatagram::bind(dir.path("vm-a.sock")).unwrap();
    vm.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let f = eth(BCAST, mac(2), 60);
    vm.send_to(&f, &path).unwrap();
    h0.expect(&with_header(&f));
    let g = eth(mac(2), mac(1), 1514);
    h0.send(&with_header(&g));
    let mut buf = vec![0u8; 2048];
    let n = vm.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &g[..]);

    // The VM restarts on another socket: the first datagram from it redirects the port.
    drop(vm);
    std::fs::remove_file(dir.path("vm-a.sock")).unwrap();
    h0.send(&with_header(&g)); // to the old socket: gone, dropped
    std::thread::sleep(Duration::from_millis(100));
    let vm = UnixDatagram::bind(dir.path("vm-b.sock")).unwrap();
    vm.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    vm.send_to(&f, &path).unwrap();
    h0.expect(&with_header(&f));
    h0.send(&with_header(&g));
    let n = vm.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &g[..]);
    let reactor = sw.finish();
    let stats = reactor.port_stats(PortId(1)).unwrap();
    assert_eq!(stats.drops(DropReason::LinkDown), 2, "{stats:?}");
}

#[test]
fn a_dgram_port_with_a_peer_sends_before_hearing_from_it() {
    let dir = Dir::new();
    let path = dir.path("sw.sock");
    let vm = UnixDatagram::bind(dir.path("vm.sock")).unwrap();
    vm.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = DgramPort::open("vm", &path, Some(&dir.path("vm.sock"))).unwrap();
    let (sw, mut h0) = switch_with(Box::new(port));
    let g = eth(BCAST, mac(1), 60);
    h0.send(&with_header(&g));
    let mut buf = vec![0u8; 2048];
    let n = vm.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &g[..]);
    drop(sw);
}

#[test]
fn a_dgram_port_with_a_peer_ignores_other_senders() {
    let dir = Dir::new();
    let path = dir.path("sw.sock");
    let vm = UnixDatagram::bind(dir.path("vm.sock")).unwrap();
    vm.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = DgramPort::open("vm", &path, Some(&dir.path("vm.sock"))).unwrap();
    let (sw, mut h0) = switch_with(Box::new(port));

    // Another local process, named or not, cannot inject frames or take the port over.
    let intruder = UnixDatagram::bind(dir.path("intruder.sock")).unwrap();
    let unnamed = UnixDatagram::unbound().unwrap();
    for _ in 0..3 {
        intruder.send_to(&eth(BCAST, mac(9), 60), &path).unwrap();
    }
    unnamed.send_to(&eth(BCAST, mac(8), 60), &path).unwrap();
    let f = eth(BCAST, mac(2), 60);
    vm.send_to(&f, &path).unwrap();
    h0.expect(&with_header(&f));
    let g = eth(mac(2), mac(1), 60);
    h0.send(&with_header(&g));
    let mut buf = vec![0u8; 2048];
    let n = vm.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &g[..]);
    intruder
        .set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    assert!(
        intruder.recv(&mut buf).is_err(),
        "nothing goes to the intruder"
    );

    let reactor = sw.finish();
    let detail = reactor.port(PortId(1)).unwrap().detail();
    assert!(
        detail.contains("VM at") && detail.contains("vm.sock") && detail.contains("4 datagrams"),
        "{detail}"
    );
    let stats = reactor.port_stats(PortId(1)).unwrap();
    assert_eq!(stats.rx_frames, 1, "{stats:?}");
}

#[test]
fn socket_paths_in_use_are_refused() {
    let dir = Dir::new();
    let path = dir.path("busy.sock");
    let _first = StreamPort::open("a", &path).unwrap();
    let e = StreamPort::open("b", &path).err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    let dpath = dir.path("busy-d.sock");
    let _d = DgramPort::open("c", &dpath, None).unwrap();
    assert!(DgramPort::open("d", &dpath, None).is_err());
}
