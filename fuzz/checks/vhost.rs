//! A vhost-user port (`vswitch::port::VhostUserPort`) fed by a frontend the bytes control:
//! either raw bytes on its socket as vhost-user messages, or a device set up as QEMU does
//! whose ring memory then holds the bytes (descriptor tables, available rings, buffers, all
//! of it). Whatever they hold, every call returns, the frames the port hands over are in
//! bounds, and nothing panics: a broken frontend costs it its connection only.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::EventFd;
use vswitch::port::{Port, VhostUserPort};
use vswitch::wire::{ETHERNET_HEADER_LEN, FRAME_BUF_LEN, VNET_HDR_LEN};

use super::Input;

const MEM: usize = 64 * 1024;
/// Where the frontend says the memory is in its address space.
const VA: u64 = 0x7f00_0000_0000;
/// Each queue's descriptor table, available ring and used ring.
const RINGS: [(u64, u64, u64); 2] = [(0x0, 0x1000, 0x2000), (0x4000, 0x5000, 0x6000)];
/// Feature bits a frontend may pick: EVENT_IDX, MRG_RXBUF, GUEST_CSUM+TSO4+TSO6+ECN.
const FEATURES: [u64; 4] = [1 << 29, 1 << 15, 0b11_1000_0010, 0];

pub fn vhost_user(data: &[u8]) {
    let mut inp = Input(data);
    let dir = std::env::temp_dir().join(format!("vswitch-fuzz-vhost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("vm.sock");
    let mut port = VhostUserPort::open("vm", &path).expect("a socket in our own directory");
    let mut buf = vec![0u8; FRAME_BUF_LEN];
    if inp.bit() {
        let mut sock = UnixStream::connect(&path).expect("the port listens");
        // Less than a socket buffer: the write does not wait for the port.
        let _ = sock.write_all(inp.take(16 * 1024));
        pump(&mut port, &mut buf);
        drop(sock);
        pump(&mut port, &mut buf);
    } else {
        rings(&mut port, &mut buf, &mut inp, &dir);
    }
    drop(port);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A device set up with features and ring sizes from the bytes, then its memory overwritten
/// with the rest of them, both queues kicked, and frames sent to it.
fn rings(port: &mut VhostUserPort, buf: &mut [u8], inp: &mut Input, dir: &Path) {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("mem"))
        .expect("a memory file");
    file.set_len(MEM as u64).expect("room for the memory");
    let frontend = Frontend::connect(dir.join("vm.sock"), 2).expect("the port listens");
    let features = (1 << 32) | inp.pick(&FEATURES) | inp.pick(&FEATURES);
    let kicks = [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()];
    let calls = [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()];
    // Without REPLY_ACK none of these waits for the port.
    let _ = frontend.set_owner();
    let _ = frontend.set_features(features);
    let _ = frontend.set_mem_table(&[VhostUserMemoryRegionInfo {
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: VA,
        mmap_offset: 0,
        mmap_handle: file.as_raw_fd(),
    }]);
    for (q, (desc, avail, used)) in RINGS.iter().enumerate() {
        let size = 1u16 << inp.below(9);
        let _ = frontend.set_vring_num(q, size);
        let config = VringConfigData {
            queue_max_size: 256,
            queue_size: size,
            flags: 0,
            desc_table_addr: VA + desc,
            used_ring_addr: VA + used,
            avail_ring_addr: VA + avail,
            log_addr: None,
        };
        let _ = frontend.set_vring_addr(q, &config);
        let _ = frontend.set_vring_base(q, inp.u16());
        let _ = frontend.set_vring_call(q, &calls[q]);
        let _ = frontend.set_vring_kick(q, &kicks[q]);
    }
    pump(port, buf);
    let sizes: Vec<usize> = (0..4).map(|_| usize::from(inp.u16()) % 9000).collect();
    let _ = file.write_all_at(inp.rest(), 0);
    for kick in &kicks {
        let _ = kick.write(1);
    }
    pump(port, buf);
    for size in sizes {
        let mut frame = vec![0u8; VNET_HDR_LEN + ETHERNET_HEADER_LEN + size];
        frame[VNET_HDR_LEN..VNET_HDR_LEN + 6].fill(0xff);
        let _ = port.send(&frame);
    }
    pump(port, buf);
    drop(frontend);
    pump(port, buf);
    assert_eq!(port.state(), "waiting", "the frontend left");
}

/// Lets the port handle what waits (at most 256 calls); every frame it hands over is whole.
fn pump(port: &mut VhostUserPort, buf: &mut [u8]) {
    for _ in 0..256 {
        match port.recv(buf) {
            Ok(n) => assert!(
                (VNET_HDR_LEN + ETHERNET_HEADER_LEN..=buf.len()).contains(&n),
                "a {n}-byte frame"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {}
        }
    }
}
