//! The vhost-user requests as the device answers them, each checked before it changes
//! anything: ring indices and sizes, ring addresses inside the memory table, a kick eventfd
//! for every ring started. What the device does not do is refused.

use std::fs::File;

use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserShMemConfig, VhostUserSharedMsg,
    VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{
    Error, GpuBackend, Result, VhostUserBackendReqHandlerMut, VhostUserProtocolFeatures,
};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap};

use super::{Device, FEATURES, Mapping, PROTOCOL_FEATURES, QUEUE_MAX, RX, bit, ring_index, toggle};

/// A 64-bit address as the low and high halves virtio-queue takes.
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
        let event_idx = self.acked(VIRTIO_RING_F_EVENT_IDX);
        let enabled = !self.acked(PROTOCOL_FEATURES);
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
            // Touching a mapping past the end of its file is SIGBUS: a region the file does
            // not hold is refused. (A frontend that shrinks the file later can still do it;
            // QEMU's memfd backend seals against that by default.)
            let end = region.mmap_offset.checked_add(region.memory_size);
            if end.is_none_or(|end| file.metadata().map_or(true, |m| m.len() < end)) {
                return Err(Error::InvalidParam);
            }
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
