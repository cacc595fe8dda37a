//! The virtio-net device a vhost-user port plays for its VM: the state its requests build
//! (features, the memory table, the two rings and their eventfds; answered in [`requests`]),
//! and the frame moves the port makes on the rings once they run.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use vhost::vhost_user::{Error, Result, VhostUserVirtioFeatures};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{Queue, QueueT};

use super::ring::{self, Memory, Put, RingError, RxLayout, RxScratch, Taken};

mod requests;

/// The receive queue (switch to VM) and the transmit queue (VM to switch).
pub const RX: usize = 0;
pub const TX: usize = 1;

/// The largest ring a VM may ask for (QEMU's `rx_queue_size`/`tx_queue_size` go to 1024).
const QUEUE_MAX: u16 = 1024;

/// The features offered, with the names `port show` gives them.
const FEATURES: [(u32, &str); 13] = [
    (VIRTIO_F_VERSION_1, "version_1"),
    (VIRTIO_NET_F_CSUM, "csum"),
    (VIRTIO_NET_F_GUEST_CSUM, "guest_csum"),
    (VIRTIO_NET_F_GUEST_TSO4, "guest_tso4"),
    (VIRTIO_NET_F_GUEST_TSO6, "guest_tso6"),
    (VIRTIO_NET_F_GUEST_ECN, "guest_ecn"),
    (VIRTIO_NET_F_HOST_TSO4, "host_tso4"),
    (VIRTIO_NET_F_HOST_TSO6, "host_tso6"),
    (VIRTIO_NET_F_HOST_ECN, "host_ecn"),
    (VIRTIO_NET_F_MRG_RXBUF, "mrg_rxbuf"),
    (VIRTIO_RING_F_EVENT_IDX, "event_idx"),
    (VIRTIO_RING_F_INDIRECT_DESC, "indirect_desc"),
    // QEMU 7.2 will not start a vhost-user net backend without it. Rings then start disabled
    // and SET_VRING_ENABLE turns them on.
    (PROTOCOL_FEATURES, "protocol_features"),
];

/// vhost-user's own feature bit: the frontend may negotiate protocol features.
pub const PROTOCOL_FEATURES: u32 = VhostUserVirtioFeatures::PROTOCOL_FEATURES
    .bits()
    .trailing_zeros();

fn bit(b: u32) -> u64 {
    1 << b
}

/// What the VM must have negotiated for the switch to hand it super-frames and frames with a
/// partial checksum: everything a TAP's offloads can produce (TSO with ECN included).
const RX_OFFLOADS: [u32; 4] = [
    VIRTIO_NET_F_GUEST_CSUM,
    VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_GUEST_ECN,
];

/// One virtqueue and its eventfds.
struct Vring {
    queue: Queue,
    /// The VM's doorbell: readable when it made buffers available.
    kick: Option<File>,
    /// Where the switch rings the VM's interrupt.
    call: Option<File>,
    /// SET_VRING_ENABLE's word (on from the start without the protocol features).
    enabled: bool,
}

impl Vring {
    fn new() -> Vring {
        Vring {
            // QUEUE_MAX is a power of two, which is all `Queue::new` checks.
            queue: Queue::new(QUEUE_MAX).unwrap_or_else(|_| unreachable!()),
            kick: None,
            call: None,
            enabled: false,
        }
    }
}

/// Where a region of the VM's memory is in the frontend's address space, which ring
/// addresses are given in.
struct Mapping {
    frontend: u64,
    size: u64,
    guest: u64,
}

/// The device state one connection builds; [`Device::reset`] forgets it when the VM goes.
pub struct Device {
    /// Features the VM acknowledged.
    acked: u64,
    mem: Option<Memory>,
    mappings: Vec<Mapping>,
    rings: [Vring; 2],
    /// The registry and token the kick eventfds are watched with.
    watch: Option<(Registry, Token)>,
    rx_scratch: RxScratch,
}

impl Device {
    pub fn new() -> Device {
        Device {
            acked: 0,
            mem: None,
            mappings: Vec::new(),
            rings: [Vring::new(), Vring::new()],
            watch: None,
            rx_scratch: RxScratch::default(),
        }
    }

    /// Watches the kick eventfds (those given later too) with `token`, or stops watching them.
    pub fn watch(&mut self, watch: Option<(Registry, Token)>) {
        for ring in &self.rings {
            if let Some(kick) = &ring.kick {
                toggle(self.watch.as_ref(), kick, false);
                toggle(watch.as_ref(), kick, true);
            }
        }
        self.watch = watch;
    }

    /// Forgets the connection's state: memory unmapped, rings stopped, eventfds closed.
    pub fn reset(&mut self) {
        for ring in &mut self.rings {
            if let Some(kick) = ring.kick.take() {
                toggle(self.watch.as_ref(), &kick, false);
            }
            *ring = Vring::new();
        }
        self.mem = None;
        self.mappings.clear();
        self.acked = 0;
    }

    /// Whether the VM takes partial checksums and super-frames.
    pub fn offloads(&self) -> bool {
        RX_OFFLOADS.iter().all(|&f| self.acked(f))
    }

    /// The virtio-net header's length on the rings: 12 bytes with VERSION_1 or mergeable
    /// buffers, 10 for a legacy driver without them.
    fn hdr_len(&self) -> usize {
        if self.acked(VIRTIO_F_VERSION_1) || self.acked(VIRTIO_NET_F_MRG_RXBUF) {
            12
        } else {
            10
        }
    }

    /// Whether ring `i` runs: memory mapped, ring set up and started by its kick, and
    /// enabled.
    fn running(&self, i: usize) -> bool {
        let ring = &self.rings[i];
        self.mem.is_some() && ring.queue.ready() && ring.enabled
    }

    /// Whether the VM acknowledged `feature` (a bit number).
    pub fn acked(&self, feature: u32) -> bool {
        self.acked & bit(feature) != 0
    }

    /// The negotiated features by name, for `port show`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = FEATURES
            .iter()
            .filter(|(b, _)| self.acked(*b))
            .map(|(_, name)| *name)
            .collect();
        let rings = if self.running(RX) && self.running(TX) {
            "rings running"
        } else {
            "rings stopped"
        };
        format!("{rings}, features {}", names.join(" "))
    }

    /// Takes the next frame the VM sent into `buf`; `Ok(None)` when none is queued or the
    /// transmit ring does not run.
    pub fn take_frame(&mut self, buf: &mut [u8]) -> std::result::Result<Option<Taken>, RingError> {
        if !self.running(TX) {
            return Ok(None);
        }
        let hdr_len = self.hdr_len();
        let (Some(mem), ring) = (&self.mem, &mut self.rings[TX]) else {
            return Ok(None);
        };
        let taken = ring::take_frame(&mut ring.queue, mem, hdr_len, buf)?;
        if taken.is_some() {
            notify(ring, mem)?;
        }
        Ok(taken)
    }

    /// Hands `frame` to the VM; `Ok(None)` when the receive ring does not run.
    pub fn put_frame(&mut self, frame: &[u8]) -> std::result::Result<Option<Put>, RingError> {
        if !self.running(RX) {
            return Ok(None);
        }
        let layout = RxLayout {
            hdr_len: self.hdr_len(),
            offloads: self.offloads(),
            mergeable: self.acked(VIRTIO_NET_F_MRG_RXBUF),
        };
        let (Some(mem), ring) = (&self.mem, &mut self.rings[RX]) else {
            return Ok(None);
        };
        let put = ring::put_frame(&mut ring.queue, mem, layout, frame, &mut self.rx_scratch)?;
        if put == (Put::Done { notify: true }) {
            interrupt(ring);
        }
        Ok(Some(put))
    }

    /// Clears the kick eventfds and asks the VM to kick again when it queues frames to send;
    /// returns whether frames came meanwhile.
    pub fn rearm(&mut self) -> std::result::Result<bool, RingError> {
        for ring in &self.rings {
            if let Some(mut kick) = ring.kick.as_ref() {
                // An eventfd read returns its count or EAGAIN: nothing else to learn here.
                let _ = kick.read(&mut [0u8; 8]);
            }
        }
        if !self.running(TX) {
            return Ok(false);
        }
        let (Some(mem), ring) = (&self.mem, &mut self.rings[TX]) else {
            return Ok(false);
        };
        Ok(ring.queue.enable_notification(mem)?)
    }

    /// Tells the VM not to kick for frames it sends while the switch is reading them anyway.
    pub fn quiet(&mut self) -> std::result::Result<(), RingError> {
        let (Some(mem), ring) = (&self.mem, &mut self.rings[TX]) else {
            return Ok(());
        };
        Ok(ring.queue.disable_notification(mem)?)
    }

    fn ring(&mut self, index: u32) -> Result<&mut Vring> {
        let i = ring_index(index)?;
        Ok(&mut self.rings[i])
    }

    /// The guest address of a frontend address inside the memory table.
    fn guest_addr(&self, frontend: u64) -> Result<u64> {
        self.mappings
            .iter()
            .find(|m| frontend >= m.frontend && frontend - m.frontend < m.size)
            .map(|m| frontend - m.frontend + m.guest)
            .ok_or(Error::InvalidParam)
    }
}

/// Rings the VM's interrupt for `ring` if the driver wants one now.
fn notify(ring: &mut Vring, mem: &Memory) -> std::result::Result<(), RingError> {
    if ring.queue.needs_notification(mem)? {
        interrupt(ring);
    }
    Ok(())
}

fn interrupt(ring: &Vring) {
    if let Some(mut call) = ring.call.as_ref() {
        // A full eventfd counter (EAGAIN) has the interrupt pending already.
        let _ = call.write(&1u64.to_ne_bytes());
    }
}

/// Watches or stops watching a kick eventfd. Registering a fresh eventfd does not fail short
/// of running out of memory; if it did, the ring would be served only when the port's other
/// events wake it.
fn toggle(watch: Option<&(Registry, Token)>, kick: &File, on: bool) {
    let Some((registry, token)) = watch else {
        return;
    };
    let fd = kick.as_raw_fd();
    let _ = if on {
        registry.register(&mut SourceFd(&fd), *token, Interest::READABLE)
    } else {
        registry.deregister(&mut SourceFd(&fd))
    };
}

/// The ring a frontend's index names.
fn ring_index(index: u32) -> Result<usize> {
    match index as usize {
        i @ (RX | TX) => Ok(i),
        _ => Err(Error::InvalidOperation("only one pair of queues")),
    }
}
