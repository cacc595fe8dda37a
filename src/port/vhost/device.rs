//! The virtio-net device a vhost-user port plays for its VM: what the vhost crate's
//! [`BackendReqHandler`](vhost::vhost_user::BackendReqHandler) asks of it, message by message
//! (features, the memory table, the two rings and their eventfds), and the frame moves the
//! port makes on the rings once they run.
//!
//! Everything the frontend says is checked before it is used: ring sizes and indices, ring
//! addresses that must fall in the memory it shared, eventfds that must be given. A request the
//! device cannot honour is refused, and the port drops the connection.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserShMemConfig, VhostUserSharedMsg,
    VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{
    Error, GpuBackend, Result, VhostUserBackendReqHandlerMut, VhostUserProtocolFeatures,
    VhostUserVirtioFeatures,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap};

use super::ring::{self, Memory, Put, RingError, RxLayout, RxScratch, Taken};

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

    fn has(&self, feature: u32) -> bool {
        self.acked & bit(feature) != 0
    }

    /// Whether the VM takes partial checksums and super-frames.
    pub fn offloads(&self) -> bool {
        RX_OFFLOADS.iter().all(|&f| self.has(f))
    }

    /// The virtio-net header's length on the rings: 12 bytes with VERSION_1 or mergeable
    /// buffers, 10 for a legacy driver without them.
    fn hdr_len(&self) -> usize {
        if self.has(VIRTIO_F_VERSION_1) || self.has(VIRTIO_NET_F_MRG_RXBUF) {
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
        self.has(feature)
    }

    /// The negotiated features by name, for `port show`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = FEATURES
            .iter()
            .filter(|(b, _)| self.has(*b))
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
            mergeable: self.has(VIRTIO_NET_F_MRG_RXBUF),
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

fn halves(addr: u64) -> (Option<u32>, Option<u32>) {
    (Some(addr as u32), Some((addr >> 32) as u32))
}

impl VhostUserBackendReqHandlerMut for Device {
    fn set_owner(&mut self) -> Result<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(FEATURES.iter().fold(0, |all, (b, _)| all | bit(*b)))
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        let offered = self.get_features()?;
        if features & !offered != 0 {
            return Err(Error::InvalidParam);
        }
        self.acked = features;
        let event_idx = self.has(VIRTIO_RING_F_EVENT_IDX);
        let enabled = !self.has(PROTOCOL_FEATURES);
        for ring in &mut self.rings {
            ring.queue.set_event_idx(event_idx);
            ring.enabled |= enabled;
        }
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        regions: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy: Option<bool>,
    ) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        let mut mapped = Vec::with_capacity(regions.len());
        let mut mappings = Vec::with_capacity(regions.len());
        for (region, file) in regions.iter().zip(files) {
            let mapping = region.mmap_region::<()>(file)?;
            let guest = GuestRegionMmap::new(mapping, GuestAddress(region.guest_phys_addr))
                .ok_or(Error::InvalidParam)?;
            mapped.push(guest);
            mappings.push(Mapping {
                frontend: region.user_addr,
                size: region.memory_size,
                guest: region.guest_phys_addr,
            });
        }
        // Overlapping or unordered regions are refused here.
        let mem = GuestMemoryMmap::from_regions(mapped).map_err(|_| Error::InvalidParam)?;
        self.mem = Some(mem);
        self.mappings = mappings;
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        let size = u16::try_from(num).map_err(|_| Error::InvalidParam)?;
        if size == 0 || size > QUEUE_MAX || !size.is_power_of_two() {
            return Err(Error::InvalidParam);
        }
        self.ring(index)?.queue.set_size(size);
        Ok(())
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        let (desc, used, avail) = (
            self.guest_addr(descriptor)?,
            self.guest_addr(used)?,
            self.guest_addr(available)?,
        );
        let queue = &mut self.ring(index)?.queue;
        let (lo, hi) = halves(desc);
        queue.set_desc_table_address(lo, hi);
        let (lo, hi) = halves(used);
        queue.set_used_ring_address(lo, hi);
        let (lo, hi) = halves(avail);
        queue.set_avail_ring_address(lo, hi);
        Ok(())
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let base = u16::try_from(base).map_err(|_| Error::InvalidParam)?;
        let queue = &mut self.ring(index)?.queue;
        queue.set_next_avail(base);
        queue.set_next_used(base);
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        let ring = &mut self.rings[ring_index(index)?];
        // The ring stops: the frontend takes it back.
        ring.queue.set_ready(false);
        if let Some(kick) = ring.kick.take() {
            toggle(self.watch.as_ref(), &kick, false);
        }
        Ok(VhostUserVringState::new(
            index,
            u32::from(ring.queue.next_avail()),
        ))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        let Some(kick) = fd else {
            return Err(Error::InvalidOperation("rings without a kick eventfd"));
        };
        nix::fcntl::fcntl(
            &kick,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| Error::ReqHandlerError(e.into()))?;
        let i = ring_index(u32::from(index))?;
        let Some(mem) = &self.mem else {
            return Err(Error::InvalidOperation(
                "a ring started before the memory table",
            ));
        };
        let ring = &mut self.rings[i];
        if let Some(old) = ring.kick.take() {
            toggle(self.watch.as_ref(), &old, false);
        }
        ring.queue.set_ready(true);
        if !ring.queue.is_valid(mem) {
            ring.queue.set_ready(false);
            return Err(Error::InvalidParam);
        }
        toggle(self.watch.as_ref(), &kick, true);
        ring.kick = Some(kick);
        if i == RX {
            // Frames that wait for receive buffers are retried on a timer: the VM need not
            // kick when it adds some.
            let _ = ring.queue.disable_notification(mem);
        }
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        self.ring(u32::from(index))?.call = fd;
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        self.ring(u32::from(index)).map(|_| ())
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        // The vhost crate adds REPLY_ACK, which it implements itself.
        Ok(VhostUserProtocolFeatures::empty())
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        if features & !VhostUserProtocolFeatures::REPLY_ACK.bits() != 0 {
            return Err(Error::InvalidParam);
        }
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(self.rings.len() as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        self.ring(index)?.enabled = enable;
        Ok(())
    }

    fn get_config(&mut self, _: u32, _: u32, _: VhostUserConfigFlags) -> Result<Vec<u8>> {
        Err(Error::InvalidOperation("no device configuration space"))
    }

    fn set_config(&mut self, _: u32, _: &[u8], _: VhostUserConfigFlags) -> Result<()> {
        Err(Error::InvalidOperation("no device configuration space"))
    }

    fn set_gpu_socket(&mut self, _: GpuBackend) -> Result<()> {
        Err(Error::InvalidOperation("not a GPU"))
    }

    fn get_shared_object(&mut self, _: VhostUserSharedMsg) -> Result<File> {
        Err(Error::InvalidOperation("no shared objects"))
    }

    fn get_inflight_fd(&mut self, _: &VhostUserInflight) -> Result<(VhostUserInflight, File)> {
        Err(Error::InvalidOperation("no inflight tracking"))
    }

    fn set_inflight_fd(&mut self, _: &VhostUserInflight, _: File) -> Result<()> {
        Err(Error::InvalidOperation("no inflight tracking"))
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        Err(Error::InvalidOperation("no memory slots"))
    }

    fn add_mem_region(
        &mut self,
        _: &VhostUserSingleMemoryRegion,
        _: File,
        _: Option<bool>,
    ) -> Result<Option<VhostUserMemoryRegionBase>> {
        Err(Error::InvalidOperation("no memory slots"))
    }

    fn remove_mem_region(&mut self, _: &VhostUserSingleMemoryRegion) -> Result<()> {
        Err(Error::InvalidOperation("no memory slots"))
    }

    fn set_device_state_fd(
        &mut self,
        _: VhostTransferStateDirection,
        _: VhostTransferStatePhase,
        _: File,
    ) -> Result<Option<File>> {
        Err(Error::InvalidOperation("no migration"))
    }

    fn check_device_state(&mut self) -> Result<()> {
        Err(Error::InvalidOperation("no migration"))
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        Err(Error::InvalidOperation("no shared memory regions"))
    }

    fn set_log_base(&mut self, _: &VhostUserLog, _: File) -> Result<()> {
        Err(Error::InvalidOperation("no dirty page logging"))
    }
}
