//! Stage 5, egress shaping, and the hand-over to stages 6 and 7: the frame in flight made right
//! for one output port — its 802.1Q tag as the port's VLAN mode wants it, and for a port
//! without offloads the checksum completed or the super-frame cut into segments in software —
//! then queued behind held frames or sent.

use std::time::Duration;

use log::debug;

use super::RETRY_FULL;
use super::frame::FrameBuf;
use super::impair::{Fate, Impairer};
use super::ports::{Sent, Slot};
use super::queue::FrameQueue;
use super::taps::{Direction, Taps};
use crate::bridge::{DropReason, Egress, PortId};
use crate::wire::vlan as tag;
use crate::wire::{FRAME_BUF_LEN, VNET_HDR_LEN, VnetHeader, offload};

/// The frame in flight and what its sends need besides the port: the taps that watch it, a
/// scratch buffer for software offloads, and what the sends found out.
pub(super) struct InFlight {
    pub buf: FrameBuf,
    /// Where frames finished in software (checksums, segments) are built.
    scratch: Vec<u8>,
    pub taps: Taps,
    pub after: Aftermath,
}

/// Ports the sends left needing attention once the frame is done.
#[derive(Default)]
pub(super) struct Aftermath {
    /// Ports found gone, with why; removed by the owner of the ports.
    pub dead: Vec<(PortId, String)>,
    /// Ports whose egress queue holds frames; each once.
    pub held: Vec<PortId>,
    /// Ports whose `rx-` impairment holds received frames; each once.
    pub rx_held: Vec<PortId>,
}

impl Aftermath {
    pub fn is_dead(&self, id: PortId) -> bool {
        self.dead.iter().any(|(d, _)| *d == id)
    }

    pub fn note_held(&mut self, id: PortId) {
        if !self.held.contains(&id) {
            self.held.push(id);
        }
    }

    pub fn note_rx_held(&mut self, id: PortId) {
        if !self.rx_held.contains(&id) {
            self.rx_held.push(id);
        }
    }
}

impl InFlight {
    pub fn new() -> InFlight {
        InFlight {
            buf: FrameBuf::new(),
            scratch: Vec::with_capacity(FRAME_BUF_LEN),
            taps: Taps::default(),
            after: Aftermath::default(),
        }
    }

    /// Sends the frame in flight to `out` (whose slot is `slot`) as a frame of `vlan`, leaving
    /// as `egress` says (the core's word for that port and VLAN).
    pub fn send(&mut self, slot: &mut Slot, out: PortId, vlan: u16, egress: Egress, now: Duration) {
        if self.after.is_dead(out) {
            return;
        }
        if slot.tx_off {
            slot.tx.count_drop(DropReason::AdminDown);
            return;
        }
        if !self.buf.shape(egress, vlan) {
            slot.tx.count_drop(DropReason::VlanFiltered);
            return;
        }
        let frame = self.buf.frame();
        if !self.taps.is_empty() {
            self.taps.copy(out, Direction::Tx, Some(vlan), frame, now);
        }
        let per_segment = slot
            .tx_impair
            .as_ref()
            .is_some_and(|i| i.config.per_segment());
        if (per_segment || !slot.port.caps().offloads)
            && !VnetHeader::new_unchecked(frame).is_complete()
        {
            let after = &mut self.after;
            let finished = offload::finish(frame, &mut self.scratch, |segment| {
                // A segment can find the port gone that took the ones before it.
                if !after.is_dead(out) {
                    deliver(slot, out, segment, now, after);
                }
            });
            if let Err(e) = finished {
                slot.tx.count_drop(DropReason::NoOffload);
                debug!(
                    "port {}: cannot finish an offloaded frame: {e}",
                    slot.port.name()
                );
            }
            return;
        }
        deliver(slot, out, frame, now, &mut self.after);
    }

    /// Calls `each` with the frame just received, or, when `per_segment` and it is a
    /// super-frame or has a partial checksum, with each complete frame it stands for (a frame
    /// that cannot be finished is counted `no_offload` on the port's receive edge).
    pub fn each_wire_frame(
        &mut self,
        slot: &mut Slot,
        per_segment: bool,
        mut each: impl FnMut(&mut Slot, &[u8]),
    ) {
        let frame = self.buf.frame();
        if !per_segment || VnetHeader::new_unchecked(frame).is_complete() {
            each(slot, frame);
            return;
        }
        if offload::finish(frame, &mut self.scratch, |segment| each(slot, segment)).is_err() {
            slot.rx_edge.count_drop(DropReason::NoOffload);
        }
    }
}

/// Where the payload of `frame` (virtio-net header + Ethernet) starts: past the Ethernet
/// header and its tags, which corruption leaves alone.
pub(super) fn payload_start(frame: &[u8]) -> usize {
    let eth = frame.get(VNET_HDR_LEN..).unwrap_or_default();
    VNET_HDR_LEN + tag::l3(eth).map_or(eth.len(), |(l3, _)| l3)
}

/// Holds one copy of a frame whose fate is `fate` in `queue` (at most the impairer's limit),
/// corrupted if `corrupt`; a reordered copy goes ahead of the frames held. Returns whether it
/// was held; one that did not fit is counted as overflowed.
pub(super) fn hold_copy(
    imp: &mut Impairer,
    queue: &mut FrameQueue,
    frame: &[u8],
    fate: &Fate,
    corrupt: bool,
) -> bool {
    let stored = if queue.len() >= imp.config.limit {
        None
    } else if fate.reorder {
        queue.push_ahead(frame, fate.release).ok()
    } else {
        queue.push(frame, fate.release).ok()
    };
    let Some(stored) = stored else {
        imp.counts.overflowed += 1;
        return false;
    };
    if corrupt {
        let from = payload_start(stored);
        imp.corrupt(stored, from);
    }
    true
}

/// Stage 6 to 7: a frame joins the port's queue while frames are held there (so the order
/// holds) or its `tx-` impairment holds it, and is sent at once otherwise; a port whose ring is
/// full for now ([`crate::port::Port::queues_when_full`]) has it held too.
fn deliver(slot: &mut Slot, out: PortId, frame: &[u8], now: Duration, after: &mut Aftermath) {
    if let Some(mut imp) = slot.tx_impair.take() {
        impair_tx(slot, &mut imp, out, frame, now, after);
        slot.tx_impair = Some(imp);
        return;
    }
    if !slot.queue.is_empty() {
        match slot.queue.push(frame, now) {
            Ok(_) => after.note_held(out),
            Err(_) => slot.tx.count_drop(DropReason::QueueFull),
        }
        return;
    }
    let keep = slot.port.queues_when_full();
    match slot.transmit(frame, now, keep) {
        Sent::Done => {}
        Sent::Full => match slot.queue.push(frame, now + RETRY_FULL) {
            Ok(_) => after.note_held(out),
            Err(_) => slot.tx.count_drop(DropReason::QueueFull),
        },
        Sent::Gone(why) => after.dead.push((out, why)),
    }
}

/// Stage 6 for a port whose `tx-` impairment is on: the frame's fate decided, its copies held
/// until their time (a reordered one ahead of the others), or sent at once when nothing
/// delays them.
fn impair_tx(
    slot: &mut Slot,
    imp: &mut Impairer,
    out: PortId,
    frame: &[u8],
    now: Duration,
    after: &mut Aftermath,
) {
    let fate = imp.decide(frame.len().saturating_sub(VNET_HDR_LEN), now);
    if fate.copies == 0 {
        slot.tx.count_drop(DropReason::ImpairLoss);
        return;
    }
    for copy in 0..fate.copies {
        let corrupt = fate.corrupt && copy == 0;
        if !corrupt && fate.release <= now && slot.queue.is_empty() {
            if let Sent::Gone(why) = slot.transmit(frame, now, false) {
                after.dead.push((out, why));
                return;
            }
        } else if hold_copy(imp, &mut slot.queue, frame, &fate, corrupt) {
            after.note_held(out);
        } else {
            slot.tx.count_drop(DropReason::ImpairOverflow);
        }
    }
}
