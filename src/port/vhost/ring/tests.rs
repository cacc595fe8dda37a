//! The rings as a misbehaving or a correct driver fills them, in memory the test owns.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::*;

const SIZE: u16 = 16;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
/// Where the test's buffers live.
const BUFS: u64 = 0x10000;
const NEXT: u16 = 1;
const WRITE: u16 = 2;

/// The driver's side of one queue.
struct Driver {
    mem: Memory,
    queue: Queue,
    avail: u16,
}

impl Driver {
    fn new() -> Driver {
        let mem = Memory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let mut queue = Queue::new(SIZE).unwrap();
        queue.set_desc_table_address(Some(DESC as u32), Some(0));
        queue.set_avail_ring_address(Some(AVAIL as u32), Some(0));
        queue.set_used_ring_address(Some(USED as u32), Some(0));
        queue.set_ready(true);
        assert!(queue.is_valid(&mem));
        Driver {
            mem,
            queue,
            avail: 0,
        }
    }

    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(DESC + 16 * u64::from(i));
        self.mem.write_obj(addr.to_le(), at).unwrap();
        self.mem
            .write_obj(len.to_le(), GuestAddress(at.0 + 8))
            .unwrap();
        self.mem
            .write_obj(flags.to_le(), GuestAddress(at.0 + 12))
            .unwrap();
        self.mem
            .write_obj(next.to_le(), GuestAddress(at.0 + 14))
            .unwrap();
    }

    /// Makes the chain at `head` available.
    fn offer(&mut self, head: u16) {
        let slot = AVAIL + 4 + 2 * u64::from(self.avail % SIZE);
        self.mem
            .write_obj(head.to_le(), GuestAddress(slot))
            .unwrap();
        self.avail = self.avail.wrapping_add(1);
        self.set_avail_idx(self.avail);
    }

    fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx.to_le(), GuestAddress(AVAIL + 2))
            .unwrap();
    }

    /// The used ring's index and its entry `n` (id, len).
    fn used(&self, n: u64) -> (u16, (u32, u32)) {
        let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let id: u32 = self.mem.read_obj(GuestAddress(USED + 4 + 8 * n)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(USED + 8 + 8 * n)).unwrap();
        (idx, (id, len))
    }

    fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

/// A 12-byte virtio-net header asking for a checksum at 34+16, with `num_buffers` set to junk.
fn header() -> [u8; 12] {
    [1, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0xaa, 0xbb]
}

fn ethernet(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

#[test]
fn a_frame_split_over_descriptors_is_taken_with_its_header() {
    let mut d = Driver::new();
    let eth = ethernet(60);
    d.mem.write_slice(&header(), GuestAddress(BUFS)).unwrap();
    d.mem.write_slice(&eth, GuestAddress(BUFS + 0x100)).unwrap();
    d.desc(3, BUFS, 12, NEXT, 7);
    d.desc(7, BUFS + 0x100, 60, 0, 0);
    d.offer(3);
    let mut buf = vec![0; 2048];
    let taken = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap();
    assert_eq!(taken, Some(Taken::Frame(72)));
    assert_eq!(buf[..10], header()[..10]);
    assert_eq!(
        buf[10..12],
        [0, 0],
        "num_buffers is not the switch's business"
    );
    assert_eq!(buf[12..72], eth[..]);
    assert_eq!(d.used(0), (1, (3, 0)), "the chain went back");
    assert_eq!(
        take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap(),
        None
    );
}

#[test]
fn a_legacy_10_byte_header_becomes_the_switchs_12_byte_one() {
    let mut d = Driver::new();
    let mut msg = header()[..10].to_vec();
    msg.extend(ethernet(60));
    d.mem.write_slice(&msg, GuestAddress(BUFS)).unwrap();
    d.desc(0, BUFS, 70, 0, 0);
    d.offer(0);
    let mut buf = vec![0xff; 2048];
    let taken = take_frame(&mut d.queue, &d.mem, 10, &mut buf).unwrap();
    assert_eq!(taken, Some(Taken::Frame(72)));
    assert_eq!(buf[..10], header()[..10]);
    assert_eq!(buf[10..12], [0, 0]);
    assert_eq!(buf[12..72], ethernet(60)[..]);
}

#[test]
fn frames_the_switch_cannot_take_are_consumed_and_refused() {
    let mut d = Driver::new();
    d.desc(0, BUFS, 12 + 10, 0, 0);
    d.desc(1, BUFS, 4000, 0, 0);
    d.offer(0);
    d.offer(1);
    let mut buf = vec![0; 2048];
    let short = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap();
    assert!(matches!(short, Some(Taken::Refused(_))), "{short:?}");
    let big = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap();
    assert!(matches!(big, Some(Taken::Refused(_))), "{big:?}");
    assert_eq!(d.used(1).0, 2, "both chains went back");
}

#[test]
fn chains_that_loop_or_leave_memory_or_the_table_are_errors() {
    let mut buf = vec![0; 70_000];
    // A loop: 0 -> 1 -> 0 ...
    let mut d = Driver::new();
    d.desc(0, BUFS, 20, NEXT, 1);
    d.desc(1, BUFS, 20, NEXT, 0);
    d.offer(0);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Chain { head: 0, .. }), "{e}");
    // A next index past the table.
    let mut d = Driver::new();
    d.desc(0, BUFS, 20, NEXT, SIZE + 3);
    d.offer(0);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Chain { .. }), "{e}");
    // A buffer outside the VM's memory.
    let mut d = Driver::new();
    d.desc(0, 0x4000_0000, 64, 0, 0);
    d.offer(0);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Memory { .. }), "{e}");
    // A buffer that runs off the end of the memory.
    let mut d = Driver::new();
    d.desc(0, (1 << 20) - 16, 64, 0, 0);
    d.offer(0);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Memory { .. }), "{e}");
    // A head index past the table.
    let mut d = Driver::new();
    d.offer(SIZE + 1);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Chain { .. }), "{e}");
    // A writable buffer on the transmit queue.
    let mut d = Driver::new();
    d.desc(0, BUFS, 64, WRITE, 0);
    d.offer(0);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Chain { .. }), "{e}");
    // An available index more than a queue ahead.
    let mut d = Driver::new();
    d.set_avail_idx(SIZE + 1);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Queue(_)), "{e}");
}

/// Puts `frame` on the driver's queue with a header of `hdr_len`, `offloads` and `mergeable`.
fn put(
    d: &mut Driver,
    hdr_len: usize,
    offloads: bool,
    mergeable: bool,
    frame: &[u8],
) -> Result<Put, RingError> {
    let layout = RxLayout {
        hdr_len,
        offloads,
        mergeable,
    };
    put_frame(
        &mut d.queue,
        &d.mem,
        layout,
        frame,
        &mut RxScratch::default(),
    )
}

/// A frame in the switch's layout: `header()` then `len` bytes of Ethernet.
fn switch_frame(len: usize) -> Vec<u8> {
    let mut f = header().to_vec();
    f.extend(ethernet(len));
    f
}

#[test]
fn a_frame_for_the_vm_fills_one_buffer_with_header_and_num_buffers() {
    let mut d = Driver::new();
    // The header in a descriptor of its own, the frame in the next.
    d.desc(2, BUFS, 12, WRITE | NEXT, 5);
    d.desc(5, BUFS + 0x100, 2048, WRITE, 0);
    d.offer(2);
    d.desc(0, BUFS + 0x1000, 2048, WRITE, 0);
    d.offer(0);
    let frame = switch_frame(100);
    assert_eq!(
        put(&mut d, 12, true, false, &frame).unwrap(),
        Put::Done { notify: true }
    );
    let mut want = header();
    want[10..12].copy_from_slice(&1u16.to_le_bytes());
    assert_eq!(d.bytes(BUFS, 12), want);
    assert_eq!(d.bytes(BUFS + 0x100, 100), ethernet(100));
    assert_eq!(d.used(0), (1, (2, 112)));
    // Without offloads the VM gets a plain header: only num_buffers.
    assert_eq!(
        put(&mut d, 12, false, false, &frame).unwrap(),
        Put::Done { notify: true }
    );
    assert_eq!(
        d.bytes(BUFS + 0x1000, 12),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    );
    assert_eq!(d.used(1), (2, (0, 112)));
    assert_eq!(put(&mut d, 12, true, false, &frame).unwrap(), Put::Full);
}

#[test]
fn a_buffer_too_small_for_a_frame_stays_for_the_next_one() {
    let mut d = Driver::new();
    d.desc(0, BUFS, 200, WRITE, 0);
    d.offer(0);
    let big = switch_frame(1000);
    assert_eq!(put(&mut d, 12, true, false, &big).unwrap(), Put::TooBig);
    assert_eq!(d.used(0).0, 0, "nothing used");
    let small = switch_frame(60);
    assert_eq!(
        put(&mut d, 10, true, false, &small).unwrap(),
        Put::Done { notify: true }
    );
    assert_eq!(d.used(0), (1, (0, 70)), "a legacy header is 10 bytes");
    assert_eq!(d.bytes(BUFS + 10, 60), ethernet(60));
}

#[test]
fn broken_receive_chains_are_errors() {
    let frame = switch_frame(60);
    let mut d = Driver::new();
    d.desc(0, BUFS, 2048, 0, 0);
    d.offer(0);
    let e = put(&mut d, 12, true, false, &frame).unwrap_err();
    assert!(matches!(e, RingError::Chain { .. }), "readable: {e}");
    let mut d = Driver::new();
    d.desc(0, 0x4000_0000, 2048, WRITE, 0);
    d.offer(0);
    let e = put(&mut d, 12, true, false, &frame).unwrap_err();
    assert!(matches!(e, RingError::Memory { .. }), "{e}");
    let mut d = Driver::new();
    d.desc(0, BUFS, 8, WRITE | NEXT, 0);
    d.offer(0);
    let e = put(&mut d, 12, true, false, &frame).unwrap_err();
    assert!(matches!(e, RingError::Chain { .. }), "loop: {e}");
}

#[test]
fn a_frame_spreads_over_mergeable_buffers_counted_in_its_header() {
    let mut d = Driver::new();
    for i in 0..4u16 {
        d.desc(i, BUFS + 0x1000 * u64::from(i), 512, WRITE, 0);
    }
    d.offer(0);
    d.offer(1);
    // 12 + 1000 bytes: two 512-byte buffers.
    let frame = switch_frame(1000);
    assert_eq!(
        put(&mut d, 12, true, true, &frame).unwrap(),
        Put::Done { notify: true }
    );
    assert_eq!(d.used(0), (2, (0, 512)));
    assert_eq!(d.used(1), (2, (1, 500)));
    let mut want = header();
    want[10..12].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(d.bytes(BUFS, 12), want);
    assert_eq!(d.bytes(BUFS + 12, 500), ethernet(1000)[..500]);
    assert_eq!(d.bytes(BUFS + 0x1000, 500), ethernet(1000)[500..]);
    // Not enough buffers yet: none is taken, and the frame fits once there are.
    d.offer(2);
    assert_eq!(put(&mut d, 12, true, true, &frame).unwrap(), Put::Full);
    assert_eq!(d.used(0).0, 2, "nothing published");
    d.offer(3);
    assert_eq!(
        put(&mut d, 12, true, true, &frame).unwrap(),
        Put::Done { notify: true }
    );
    assert_eq!(d.used(2), (4, (2, 512)));
    assert_eq!(d.used(3), (4, (3, 500)));
}

#[test]
fn a_frame_larger_than_the_whole_ring_is_too_big() {
    let mut d = Driver::new();
    for i in 0..SIZE {
        d.desc(i, BUFS + 0x100 * u64::from(i), 64, WRITE, 0);
        d.offer(i);
    }
    let frame = switch_frame(SIZE as usize * 64);
    assert_eq!(put(&mut d, 12, true, true, &frame).unwrap(), Put::TooBig);
    assert_eq!(d.used(0).0, 0);
    assert_eq!(
        put(&mut d, 12, true, true, &switch_frame(100)).unwrap(),
        Put::Done { notify: true },
        "the buffers stayed"
    );
}

#[test]
fn interrupts_follow_used_event_or_the_no_interrupt_flag() {
    let mut d = Driver::new();
    for i in 0..4u16 {
        d.desc(i, BUFS + 0x1000 * u64::from(i), 2048, WRITE, 0);
        d.offer(i);
    }
    let frame = switch_frame(60);
    // Without EVENT_IDX: unless the driver set NO_INTERRUPT.
    d.mem.write_obj(1u16, GuestAddress(AVAIL)).unwrap();
    assert_eq!(
        put(&mut d, 12, false, false, &frame).unwrap(),
        Put::Done { notify: false }
    );
    // With EVENT_IDX: when the used index passes used_event (here 2: after the 3rd entry).
    d.queue.set_event_idx(true);
    let used_event = GuestAddress(AVAIL + 4 + 2 * u64::from(SIZE));
    d.mem.write_obj(2u16, used_event).unwrap();
    let notified: Vec<Put> = (0..3)
        .map(|_| put(&mut d, 12, false, false, &frame).unwrap())
        .collect();
    assert_eq!(
        notified,
        [
            Put::Done { notify: false },
            Put::Done { notify: true },
            Put::Done { notify: false }
        ]
    );
}

#[test]
fn indirect_tables_are_followed_and_broken_ones_are_errors() {
    const INDIRECT: u16 = 4;
    let table = BUFS + 0x8000;
    let mut d = Driver::new();
    // A frame in two buffers listed in an indirect table.
    let mut frame = header().to_vec();
    frame.extend(ethernet(60));
    d.mem.write_slice(&frame[..12], GuestAddress(BUFS)).unwrap();
    d.mem
        .write_slice(&frame[12..], GuestAddress(BUFS + 0x100))
        .unwrap();
    let entry = |i: u64, addr: u64, len: u32, flags: u16, next: u16| {
        let at = GuestAddress(table + 16 * i);
        d.mem.write_obj(addr, at).unwrap();
        d.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
        d.mem.write_obj(flags, GuestAddress(at.0 + 12)).unwrap();
        d.mem.write_obj(next, GuestAddress(at.0 + 14)).unwrap();
    };
    entry(0, BUFS, 12, NEXT, 1);
    entry(1, BUFS + 0x100, 60, 0, 0);
    d.desc(0, table, 32, INDIRECT, 0);
    d.offer(0);
    let mut buf = vec![0; 2048];
    let taken = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap();
    assert_eq!(taken, Some(Taken::Frame(72)));
    assert_eq!(buf[12..72], ethernet(60)[..]);
    // A table whose length is no multiple of a descriptor's.
    d.desc(1, table, 30, INDIRECT, 0);
    d.offer(1);
    let e = take_frame(&mut d.queue, &d.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Chain { head: 1, .. }), "{e}");
    // A table inside a table.
    let mut d2 = Driver::new();
    let entry2 = |i: u64, addr: u64, len: u32, flags: u16| {
        let at = GuestAddress(table + 16 * i);
        d2.mem.write_obj(addr, at).unwrap();
        d2.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
        d2.mem.write_obj(flags, GuestAddress(at.0 + 12)).unwrap();
    };
    entry2(0, table, 16, INDIRECT);
    d2.desc(0, table, 16, INDIRECT, 0);
    d2.offer(0);
    let e = take_frame(&mut d2.queue, &d2.mem, 12, &mut buf).unwrap_err();
    assert!(matches!(e, RingError::Chain { .. }), "{e}");
}
