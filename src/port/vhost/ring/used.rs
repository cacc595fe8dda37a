//! Publishing a receive queue's used buffers. virtio-queue's `add_used` makes each entry
//! visible to the driver as it is added, which is wrong for a frame spread over mergeable
//! buffers: a Linux guest that sees the first buffer (whose header counts them all) before the
//! others drops the frame ("rx error: N buffers out of M missing"). Here all of a frame's
//! entries are written first and the used index moves once; whether the driver wants an
//! interrupt is then decided as `vring_need_event` does (EVENT_IDX) or from the available
//! ring's NO_INTERRUPT flag.

use std::sync::atomic::{Ordering, fence};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::{Memory, RingError};

/// The available ring's flag asking for no interrupts (without EVENT_IDX).
const NO_INTERRUPT: u16 = 1;

fn at(base: u64, offset: u64) -> Result<GuestAddress, RingError> {
    base.checked_add(offset)
        .map(GuestAddress)
        .ok_or(RingError::Queue(virtio_queue::Error::AddressOverflow))
}

fn memory(head: u16, addr: GuestAddress, len: usize) -> RingError {
    RingError::Memory {
        head,
        addr: addr.0,
        len,
    }
}

/// Puts `used` (each chain's head and the bytes written into it) on `queue`'s used ring and
/// then moves its index past them; returns whether the driver wants an interrupt.
pub fn publish(queue: &mut Queue, mem: &Memory, used: &[(u16, u32)]) -> Result<bool, RingError> {
    let (ring, size) = (queue.used_ring(), queue.size());
    let old = queue.next_used();
    for (i, &(head, len)) in used.iter().enumerate() {
        let slot = old.wrapping_add(i as u16) % size;
        let entry = at(ring, 4 + 8 * u64::from(slot))?;
        mem.write_obj([u32::from(head).to_le(), len.to_le()], entry)
            .map_err(|_| memory(head, entry, 8))?;
    }
    let new = old.wrapping_add(used.len() as u16);
    let idx = at(ring, 2)?;
    mem.store(new.to_le(), idx, Ordering::Release)
        .map_err(|_| memory(used[0].0, idx, 2))?;
    queue.set_next_used(new);
    // The index is written before the driver's wish is read.
    fence(Ordering::SeqCst);
    let avail = queue.avail_ring();
    if queue.event_idx_enabled() {
        let event = at(avail, 4 + 2 * u64::from(size))?;
        let used_event = u16::from_le(
            mem.load(event, Ordering::Acquire)
                .map_err(|_| memory(used[0].0, event, 2))?,
        );
        return Ok(new.wrapping_sub(used_event).wrapping_sub(1) < new.wrapping_sub(old));
    }
    let flags = at(avail, 0)?;
    let flags = u16::from_le(
        mem.load(flags, Ordering::Acquire)
            .map_err(|_| memory(used[0].0, flags, 2))?,
    );
    Ok(flags & NO_INTERRUPT == 0)
}
