//! Frames between the switch's buffer layout and a VM's split virtqueues. virtio-queue walks
//! the rings and descriptor chains (bounded by the queue size, indirect tables checked);
//! vm-memory checks every access against the VM's memory regions. What is left here is what
//! virtio-net puts on top: the header's length, which queue is read and which written, and
//! what counts as a broken chain.

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::wire::{ETHERNET_HEADER_LEN, VNET_HDR_LEN};

mod used;

/// The VM's memory as the switch maps it.
pub type Memory = GuestMemoryMmap<()>;

/// Bytes of the virtio-net header's `num_buffers` field, which only receive queues fill.
const NUM_BUFFERS: std::ops::Range<usize> = 10..12;

/// Something the VM put in its rings that a correct driver never does: the connection is
/// reset.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{0}")]
    Queue(#[from] virtio_queue::Error),
    #[error("descriptor chain {head} {why}")]
    Chain { head: u16, why: &'static str },
    #[error("descriptor chain {head} points outside the VM's memory ({len} bytes at {addr:#x})")]
    Memory { head: u16, addr: u64, len: usize },
}

/// What [`take_frame`] found on a transmit queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// A frame of this many bytes (header and Ethernet frame) is in the buffer.
    Frame(usize),
    /// A chain that holds no acceptable frame; it was consumed.
    Refused(&'static str),
}

/// What [`put_frame`] did with a frame for a receive queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    /// Written; `notify`: the driver wants an interrupt now.
    Done { notify: bool },
    /// No buffer is free: the frame must wait.
    Full,
    /// The next buffer (without mergeable buffers), or the whole ring, is too small for the
    /// frame; the buffers stay for the next frame.
    TooBig,
}

/// The next chain the driver made available, if any.
fn next_chain<'m>(
    queue: &mut Queue,
    mem: &'m Memory,
) -> Result<Option<DescriptorChain<&'m Memory>>, RingError> {
    Ok(queue.iter(mem)?.next())
}

/// Fails unless `last`, the last descriptor a chain's walk yielded, really ends the chain:
/// virtio-queue stops walking a chain that loops, outgrows the queue or leads to an
/// unreadable or invalid descriptor, and such a chain must not be taken for a short one.
fn check_end(head: u16, last: Option<Descriptor>) -> Result<(), RingError> {
    match last {
        Some(desc) if !desc.has_next() => Ok(()),
        Some(_) => Err(RingError::Chain {
            head,
            why: "loops, is longer than the queue, or leads to an invalid descriptor",
        }),
        None => Err(RingError::Chain {
            head,
            why: "has no readable descriptor",
        }),
    }
}

/// Takes the next frame the VM queued on a transmit `queue` into `buf`, in the switch's
/// layout: the VM's `hdr_len`-byte virtio-net header (10 or 12 bytes) becomes the
/// [`VNET_HDR_LEN`]-byte one, then the Ethernet frame. `Ok(None)` when nothing is queued.
pub fn take_frame(
    queue: &mut Queue,
    mem: &Memory,
    hdr_len: usize,
    buf: &mut [u8],
) -> Result<Option<Taken>, RingError> {
    let Some(chain) = next_chain(queue, mem)? else {
        return Ok(None);
    };
    let head = chain.head_index();
    // Read so that the frame lands where the switch wants it; a short header is moved after.
    let start = VNET_HDR_LEN - hdr_len;
    let (mut len, mut too_big, mut last) = (0usize, false, None);
    for desc in chain {
        if desc.is_write_only() {
            return Err(RingError::Chain {
                head,
                why: "has a device-writable buffer on a transmit queue",
            });
        }
        let n = desc.len() as usize;
        let at = start + len;
        match buf.get_mut(at..at + n) {
            Some(into) if !too_big => {
                mem.read_slice(into, desc.addr())
                    .map_err(|_| RingError::Memory {
                        head,
                        addr: desc.addr().0,
                        len: n,
                    })?;
            }
            _ => too_big = true,
        }
        len += n;
        last = Some(desc);
    }
    check_end(head, last)?;
    queue.add_used(mem, head, 0)?;
    if too_big {
        return Ok(Some(Taken::Refused("frame larger than the switch takes")));
    }
    if len < hdr_len + ETHERNET_HEADER_LEN {
        return Ok(Some(Taken::Refused("frame shorter than its headers")));
    }
    if start > 0 {
        buf.copy_within(start..start + hdr_len, 0);
    }
    buf[NUM_BUFFERS].fill(0);
    Ok(Some(Taken::Frame(VNET_HDR_LEN + len - hdr_len)))
}

/// How frames are laid out on a VM's receive queue, as its features say.
#[derive(Clone, Copy, Debug)]
pub struct RxLayout {
    /// The virtio-net header's length: 12 bytes, or 10 for a legacy driver.
    pub hdr_len: usize,
    /// The VM takes partial checksums and super-frames: the header's offload fields are kept.
    pub offloads: bool,
    /// MRG_RXBUF: a frame may span several buffers, which the header counts.
    pub mergeable: bool,
}

/// The buffers taken for one frame, kept to avoid allocating per frame.
#[derive(Default)]
pub struct RxScratch {
    /// Each chain's head and the bytes written into it.
    chains: Vec<(u16, u32)>,
    /// The chains' buffers in order: address, length, and which chain.
    bufs: Vec<(GuestAddress, usize, usize)>,
}

/// Writes `frame` (the switch's layout) into the buffers the VM made available on a receive
/// `queue`: one chain, or with mergeable buffers as many as the frame needs (all of them
/// published at once, so the driver never sees part of a frame). Buffers taken for a frame
/// that cannot be written stay available.
pub fn put_frame(
    queue: &mut Queue,
    mem: &Memory,
    layout: RxLayout,
    frame: &[u8],
    scratch: &mut RxScratch,
) -> Result<Put, RingError> {
    let (hdr, eth) = frame.split_at(VNET_HDR_LEN.min(frame.len()));
    let total = layout.hdr_len + eth.len();
    let start = queue.next_avail();
    scratch.chains.clear();
    scratch.bufs.clear();
    let mut room = 0usize;
    while room < total {
        if scratch.chains.len() == usize::from(queue.size()) {
            // Every buffer of the ring would not hold it.
            queue.set_next_avail(start);
            return Ok(Put::TooBig);
        }
        let Some(chain) = next_chain(queue, mem)? else {
            queue.set_next_avail(start);
            return Ok(Put::Full);
        };
        let head = chain.head_index();
        let mut last = None;
        for desc in chain {
            if !desc.is_write_only() {
                return Err(RingError::Chain {
                    head,
                    why: "has a device-readable buffer on a receive queue",
                });
            }
            let len = desc.len() as usize;
            scratch.bufs.push((desc.addr(), len, scratch.chains.len()));
            room += len;
            last = Some(desc);
        }
        check_end(head, last)?;
        scratch.chains.push((head, 0));
        if !layout.mergeable && room < total {
            queue.set_next_avail(start);
            return Ok(Put::TooBig);
        }
    }
    let mut header = [0u8; VNET_HDR_LEN];
    if layout.offloads {
        header[..NUM_BUFFERS.start].copy_from_slice(&hdr[..NUM_BUFFERS.start]);
    }
    let buffers = scratch.chains.len() as u16;
    header[NUM_BUFFERS].copy_from_slice(&buffers.to_le_bytes());
    let header = &header[..layout.hdr_len];
    let mut written = 0usize;
    for &(addr, len, chain) in &scratch.bufs {
        let n = len.min(total - written);
        if n == 0 {
            break;
        }
        write_span(mem, addr, header, eth, written, n).map_err(|_| RingError::Memory {
            head: scratch.chains[chain].0,
            addr: addr.0,
            len: n,
        })?;
        scratch.chains[chain].1 += n as u32;
        written += n;
    }
    let notify = used::publish(queue, mem, &scratch.chains)?;
    Ok(Put::Done { notify })
}

/// Writes bytes `from..from + n` of `header` followed by `eth` at `addr`.
fn write_span(
    mem: &Memory,
    addr: GuestAddress,
    header: &[u8],
    eth: &[u8],
    from: usize,
    n: usize,
) -> Result<(), vm_memory::GuestMemoryError> {
    let end = from + n;
    let mut addr = addr;
    if from < header.len() {
        let part = &header[from..end.min(header.len())];
        mem.write_slice(part, addr)?;
        addr = GuestAddress(addr.0 + part.len() as u64);
    }
    let from = from.max(header.len()) - header.len();
    let to = end.saturating_sub(header.len());
    if to > from {
        mem.write_slice(&eth[from..to], addr)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
