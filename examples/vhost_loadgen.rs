//! A load generator for vswitchd's vhost-user ports that plays two VMs, so that what is
//! measured is the switch and not an emulator: frontend A sends frames into one port as fast
//! as the switch takes them, frontend B keeps the other port's receive ring stocked and counts
//! what the switch delivered.
//!
//! ```text
//! cargo run --release --example vhost_loadgen -- --mode small --seconds 5 A.sock B.sock
//! ```
//!
//! Each frontend shares its own memfd-backed memory with the switch and sets up one pair of
//! 256-entry split rings in it, as a virtio-net driver does (VERSION_1 and EVENT_IDX; in `tso`
//! mode the checksum and TCPv4 segmentation offloads both ways, so super-frames cross whole).
//! The generator polls its rings from one thread (it wants no interrupts) and kicks only when
//! the switch asked for a kick. Modes: `small` sends 60-byte Ethernet frames (64 bytes on a
//! wire, with the FCS virtio does not carry), `tso` 65549-byte TCPv4 super-frames (a 65535-byte
//! IP packet) with a partial checksum, as a guest's TCP stack hands them to its NIC.
//!
//! It prints the frames and bytes counted at B (bytes are Ethernet frames, without the virtio
//! header), the rates over the time between B's first and last frame, and how many of the
//! frames the switch took from A never reached B.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use nix::sys::memfd::{MFdFlags, memfd_create};
use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VRING_DESC_F_WRITE};
use vm_memory::{Address, Bytes, FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// Entries in each ring: QEMU's default. (1024, the most vswitchd takes, made super-frames
/// slower here: four times the buffers to keep in cache.)
const SIZE: u16 = 256;
/// The virtio-net header of a VERSION_1 device.
const HDR_LEN: usize = 12;
/// Where the frontend says its memory is in its own address space (ring addresses use it).
const VA: u64 = 0x7f00_0000_0000;
/// Each queue's descriptor table, available ring and used ring, in the shared memory.
const RINGS: [(u64, u64, u64); 2] = [(0x0, 0x1000, 0x2000), (0x4000, 0x5000, 0x6000)];
/// Where the buffers start: each queue has `SIZE` of them.
const BUFS: u64 = 0x10000;
/// virtio-net's queues: the driver receives on 0 and sends on 1.
const RX: usize = 0;
const TX: usize = 1;
/// How long the switch gets to answer a vhost-user request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long frames still in flight at the end get to arrive.
const DRAIN: Duration = Duration::from_millis(300);
const A_MAC: [u8; 6] = [0x02, 0x4c, 0x47, 0, 0, 0x0a];
const B_MAC: [u8; 6] = [0x02, 0x4c, 0x47, 0, 0, 0x0b];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// 60-byte frames (64 on a wire): the switch's per-frame cost.
    Small,
    /// 64 KiB TCPv4 super-frames with a partial checksum: its per-byte cost.
    Tso,
}

/// Measures vswitchd forwarding between two of its vhost-user ports.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The vhost-user socket of the port frames are sent into (frontend A).
    tx: PathBuf,
    /// The vhost-user socket of the port they should come out of (frontend B).
    rx: PathBuf,
    #[arg(long, value_enum, default_value_t = Mode::Small)]
    mode: Mode,
    /// How long to send, in seconds (at most an hour).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

impl Mode {
    /// The Ethernet frame A sends.
    fn frame(self) -> Vec<u8> {
        let payload = match self {
            Mode::Small => 60 - 14 - 20 - 8,
            Mode::Tso => 65535 - 20 - 20,
        };
        let (proto, l4) = match self {
            Mode::Small => (17u8, 8usize),
            Mode::Tso => (6, 20),
        };
        let ip_len = 20 + l4 + payload;
        let mut f = Vec::with_capacity(14 + ip_len);
        f.extend_from_slice(&B_MAC);
        f.extend_from_slice(&A_MAC);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let (src, dst) = ([10, 76, 71, 10], [10, 76, 71, 11]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let sum = !fold(sum16(&ip));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        let ports = [0x9c, 0x40, 0x13, 0x89]; // 40000 -> 5001
        f.extend_from_slice(&ports);
        match self {
            Mode::Small => {
                f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
                f.extend_from_slice(&[0, 0]); // no UDP checksum
            }
            Mode::Tso => {
                let mut tcp = [0u8; 16];
                tcp[3] = 1; // sequence number
                tcp[8] = 5 << 4; // data offset
                tcp[9] = 0x18; // PSH, ACK
                tcp[10..12].copy_from_slice(&0xffffu16.to_be_bytes());
                // A partial checksum: the pseudo-header's sum, which the segmenter completes.
                let mut pseudo = Vec::with_capacity(12);
                pseudo.extend_from_slice(&src);
                pseudo.extend_from_slice(&dst);
                pseudo.extend_from_slice(&[0, proto]);
                pseudo.extend_from_slice(&((l4 + payload) as u16).to_be_bytes());
                let partial = fold(sum16(&pseudo));
                tcp[12..14].copy_from_slice(&partial.to_be_bytes());
                f.extend_from_slice(&tcp);
            }
        }
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    /// The virtio-net header A sends the frame with.
    fn header(self) -> [u8; HDR_LEN] {
        let mut h = [0u8; HDR_LEN];
        if self == Mode::Tso {
            h[0] = 1; // NEEDS_CSUM
            h[1] = 1; // GSO TCPv4
            h[2..4].copy_from_slice(&54u16.to_le_bytes()); // header length
            h[4..6].copy_from_slice(&1448u16.to_le_bytes()); // segment size
            h[6..8].copy_from_slice(&34u16.to_le_bytes()); // checksum start
            h[8..10].copy_from_slice(&16u16.to_le_bytes()); // checksum offset
        }
        h
    }

    /// The features both frontends acknowledge: in `tso` mode the offloads a Linux guest
    /// takes both ways (the switch hands super-frames only to a VM that takes them all).
    fn features(self) -> u64 {
        let mut bits = vec![VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX];
        if self == Mode::Tso {
            bits.extend([
                VIRTIO_NET_F_CSUM,
                VIRTIO_NET_F_HOST_TSO4,
                VIRTIO_NET_F_HOST_TSO6,
                VIRTIO_NET_F_HOST_ECN,
                VIRTIO_NET_F_GUEST_CSUM,
                VIRTIO_NET_F_GUEST_TSO4,
                VIRTIO_NET_F_GUEST_TSO6,
                VIRTIO_NET_F_GUEST_ECN,
            ]);
        }
        bits.into_iter().fold(0, |f, b| f | 1 << b)
    }

    /// Bytes of each buffer: a whole frame with its header, in one descriptor.
    fn buf_len(self) -> u64 {
        match self {
            Mode::Small => 2048,
            Mode::Tso => 0x11000,
        }
    }
}

/// The one's complement sum of `bytes` as 16-bit words, not yet folded.
fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// virtio's `vring_need_event`: whether moving an index from `old` to `new` passes `event`.
fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// One side of a split ring pair as the driver keeps it.
#[derive(Default, Clone, Copy)]
struct Ring {
    /// The next available index the driver publishes.
    avail: u16,
    /// The used index up to which the driver has looked.
    used: u16,
}

/// One VM: its memory, its connection to a port, its rings and eventfds.
struct Vm {
    // Kept for as long as the switch uses the rings: dropping it closes the port's connection.
    _frontend: Frontend,
    mem: GuestMemoryMmap,
    kick: [EventFd; 2],
    // The switch signals these when the used index passes `used_event`, which the generator
    // leaves at 0 (once every 65536 chains): it polls its rings instead.
    _call: [EventFd; 2],
    buf_len: u64,
    rings: [Ring; 2],
}

impl Vm {
    /// Connects to the port at `sock` and sets the device up with `mode`'s features and
    /// memory for its buffers.
    fn attach(sock: &Path, mode: Mode, name: &str) -> Result<Vm> {
        let meta = std::fs::metadata(sock)
            .with_context(|| format!("{}: no vhost-user socket there", sock.display()))?;
        ensure!(
            meta.file_type().is_socket(),
            "{} is not a socket",
            sock.display()
        );
        let stream = UnixStream::connect(sock)
            .with_context(|| format!("cannot connect to {}", sock.display()))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let frontend = Frontend::from_stream(stream, 2);
        let buf_len = mode.buf_len();
        let size = BUFS + 2 * u64::from(SIZE) * buf_len;
        let file = File::from(memfd_create(name, MFdFlags::MFD_CLOEXEC)?);
        file.set_len(size)?;
        let offset = FileOffset::new(file.try_clone()?, 0);
        let mem = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            size as usize,
            Some(offset),
        )])?;

        let switch = |what: &'static str| move |e| anyhow::anyhow!("{what}: {e}");
        frontend.set_owner().map_err(switch("SET_OWNER"))?;
        let offered = frontend.get_features().map_err(switch("GET_FEATURES"))?;
        let wanted = mode.features();
        if offered & wanted != wanted {
            bail!(
                "{}: the port offers features {offered:#x}, without some of {wanted:#x}",
                sock.display()
            );
        }
        frontend
            .set_features(wanted)
            .map_err(switch("SET_FEATURES"))?;
        let region = VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: VA,
            mmap_offset: 0,
            mmap_handle: file.as_raw_fd(),
        };
        frontend
            .set_mem_table(&[region])
            .map_err(switch("SET_MEM_TABLE"))?;
        let kick = [EventFd::new(0)?, EventFd::new(0)?];
        let call = [EventFd::new(0)?, EventFd::new(0)?];
        let mut vm = Vm {
            _frontend: frontend,
            mem,
            kick,
            _call: call,
            buf_len,
            rings: [Ring::default(); 2],
        };
        // The descriptors never change: descriptor i of a queue is its buffer i.
        for q in [RX, TX] {
            let flags = if q == RX {
                VRING_DESC_F_WRITE as u16
            } else {
                0
            };
            for i in 0..SIZE {
                let at = GuestAddress(RINGS[q].0 + 16 * u64::from(i));
                vm.mem.write_obj(vm.buf(q, i), at)?;
                vm.mem.write_obj(buf_len as u32, at.unchecked_add(8))?;
                vm.mem.write_obj(flags, at.unchecked_add(12))?;
            }
        }
        for (q, (desc, avail, used)) in RINGS.iter().enumerate() {
            let frontend = &mut vm._frontend;
            frontend
                .set_vring_num(q, SIZE)
                .map_err(switch("SET_VRING_NUM"))?;
            let config = VringConfigData {
                queue_max_size: SIZE,
                queue_size: SIZE,
                flags: 0,
                desc_table_addr: VA + desc,
                used_ring_addr: VA + used,
                avail_ring_addr: VA + avail,
                log_addr: None,
            };
            frontend
                .set_vring_addr(q, &config)
                .map_err(switch("SET_VRING_ADDR"))?;
            frontend
                .set_vring_base(q, 0)
                .map_err(switch("SET_VRING_BASE"))?;
            frontend
                .set_vring_call(q, &vm._call[q])
                .map_err(switch("SET_VRING_CALL"))?;
            frontend
                .set_vring_kick(q, &vm.kick[q])
                .map_err(switch("SET_VRING_KICK"))?;
        }
        Ok(vm)
    }

    /// The guest address of buffer `i` of queue `q`.
    fn buf(&self, q: usize, i: u16) -> u64 {
        BUFS + (q as u64 * u64::from(SIZE) + u64::from(i)) * self.buf_len
    }

    /// Makes chain `head` available on queue `q` (published by [`Vm::publish`]).
    fn offer(&mut self, q: usize, head: u16) -> Result<()> {
        let ring = &mut self.rings[q];
        let slot = RINGS[q].1 + 4 + 2 * u64::from(ring.avail % SIZE);
        self.mem.write_obj(head, GuestAddress(slot))?;
        ring.avail = ring.avail.wrapping_add(1);
        Ok(())
    }

    /// Publishes the chains offered since `old` and kicks if the switch wants a kick.
    fn publish(&mut self, q: usize, old: u16) -> Result<()> {
        let new = self.rings[q].avail;
        if new == old {
            return Ok(());
        }
        self.mem
            .store(new, GuestAddress(RINGS[q].1 + 2), Ordering::Release)?;
        // The index must be visible before the switch's wish is read (virtio's barrier).
        fence(Ordering::SeqCst);
        // EVENT_IDX: the switch leaves the index it wants a kick at after the used ring.
        let at = RINGS[q].2 + 4 + 8 * u64::from(SIZE);
        let event: u16 = self.mem.load(GuestAddress(at), Ordering::Acquire)?;
        if need_event(event, new, old) {
            self.kick[q].write(1)?;
        }
        Ok(())
    }

    /// Calls `each` with the head and length of every chain the switch used on queue `q`
    /// since the last look, then, if `again`, offers those chains again and publishes them.
    /// Returns how many there were.
    fn recycle(&mut self, q: usize, again: bool, mut each: impl FnMut(u16, u32)) -> Result<u16> {
        let used: u16 = self
            .mem
            .load(GuestAddress(RINGS[q].2 + 2), Ordering::Acquire)?;
        let seen = self.rings[q].used;
        let n = used.wrapping_sub(seen);
        ensure!(
            n <= SIZE,
            "the switch used {n} chains of a {SIZE}-entry ring"
        );
        let old = self.rings[q].avail;
        for k in 0..n {
            let slot = seen.wrapping_add(k) % SIZE;
            let at = GuestAddress(RINGS[q].2 + 4 + 8 * u64::from(slot));
            let id: u32 = self.mem.read_obj(at)?;
            let len: u32 = self.mem.read_obj(at.unchecked_add(4))?;
            let head = u16::try_from(id).ok().filter(|&h| h < SIZE);
            let head = head.with_context(|| format!("the switch used chain {id}"))?;
            each(head, len);
            if again {
                self.offer(q, head)?;
            }
        }
        self.rings[q].used = used;
        self.publish(q, old)?;
        Ok(n)
    }

    /// Writes `header` and `frame` into every transmit buffer and offers them all.
    fn load_tx(&mut self, header: &[u8], frame: &[u8]) -> Result<()> {
        let len = (header.len() + frame.len()) as u32;
        ensure!(
            u64::from(len) <= self.buf_len,
            "the frame outgrows its buffer"
        );
        for i in 0..SIZE {
            let at = GuestAddress(self.buf(TX, i));
            self.mem.write_slice(header, at)?;
            self.mem
                .write_slice(frame, at.unchecked_add(HDR_LEN as u64))?;
            let desc = GuestAddress(RINGS[TX].0 + 16 * u64::from(i) + 8);
            self.mem.write_obj(len, desc)?;
        }
        Ok(())
    }

    /// Offers every buffer of queue `q`.
    fn offer_all(&mut self, q: usize) -> Result<()> {
        let old = self.rings[q].avail;
        for i in 0..SIZE {
            self.offer(q, i)?;
        }
        self.publish(q, old)
    }
}

/// What B counted.
#[derive(Default)]
struct Count {
    frames: u64,
    bytes: u64,
    /// Frames of another length than A sent.
    odd: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Turns of the loop, and those in which neither ring had anything for the generator:
    /// near 100 % idle means the switch, not the generator, set the pace.
    turns: u64,
    idle: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be more than 0 and at most 3600"
    );
    let mut a = Vm::attach(&args.tx, args.mode, "loadgen-a")?;
    let mut b = Vm::attach(&args.rx, args.mode, "loadgen-b")?;
    let frame = args.mode.frame();
    let want_len = (HDR_LEN + frame.len()) as u32;

    // B introduces itself first, so that the switch learns its MAC and forwards A's frames
    // to it alone.
    let mut hello = Mode::Small.frame();
    hello[..6].copy_from_slice(&A_MAC);
    hello[6..12].copy_from_slice(&B_MAC);
    b.load_tx(&[0; HDR_LEN], &hello)?;
    let old = b.rings[TX].avail;
    b.offer(TX, 0)?;
    b.publish(TX, old)?;
    b.offer_all(RX)?;
    let learned = Instant::now() + REPLY_TIMEOUT;
    while b.recycle(TX, false, |_, _| {})? == 0 {
        ensure!(
            Instant::now() < learned,
            "the switch did not take B's first frame within {REPLY_TIMEOUT:?}"
        );
        std::thread::yield_now();
    }

    a.load_tx(&args.mode.header(), &frame)?;
    a.offer_all(TX)?;
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(args.seconds);
    let mut sent = 0u64;
    let mut count = Count::default();
    let mut now = start;
    let mut sending = true;
    let mut quiet_since = None;
    for turn in 0u64.. {
        // Once sending stops, what A offered last and the switch takes still counts.
        let took = a.recycle(TX, sending, |_, _| {})?;
        sent += u64::from(took);
        let got = b.recycle(RX, true, |_, len| {
            count.frames += 1;
            count.bytes += u64::from(len).saturating_sub(HDR_LEN as u64);
            if len != want_len {
                count.odd += 1;
            }
        })?;
        if turn % 64 == 0 || got > 0 {
            now = Instant::now();
        }
        if got > 0 {
            count.first.get_or_insert(now);
            count.last = Some(now);
        }
        if sending {
            count.turns += 1;
            count.idle += u64::from(took == 0 && got == 0);
        }
        if sending && now >= stop {
            sending = false;
        }
        if !sending {
            if got > 0 {
                quiet_since = None;
            }
            let since = *quiet_since.get_or_insert(now);
            if now >= since + DRAIN || now >= stop + 10 * DRAIN {
                break;
            }
        }
        std::hint::spin_loop();
    }
    report(args.mode, sent, &count);
    ensure!(count.frames > 0, "no frame reached B");
    Ok(())
}

fn report(mode: Mode, sent: u64, count: &Count) {
    let secs = match (count.first, count.last) {
        (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    println!(
        "mode {mode:?}: sent {sent} received {} frames {} bytes in {secs:.3} s: \
         {:.3} Mframes/s {:.3} Gbit/s; not delivered {}; other length {}; generator idle {:.0} %",
        count.frames,
        count.bytes,
        per_sec(count.frames) / 1e6,
        per_sec(count.bytes) * 8.0 / 1e9,
        sent.saturating_sub(count.frames),
        count.odd,
        count.idle as f64 * 100.0 / count.turns.max(1) as f64
    );
}
