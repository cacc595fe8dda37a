//! Stage 5, egress shaping, and the hand-over to stages 6 and 7: the frame in flight made right
//! for one output port — its 802.1Q tag as the port's VLAN mode wants it, and for a port
//! without offloads the checksum completed or the super-frame cut into segments in software —
//! then queued behind held frames or sent.

use std::time::Duration;

use log::debug;

use super::frame::FrameBuf;
use super::ports::{Sent, Slot};
use super::taps::{Direction, Taps};
use crate::bridge::{DropReason, Egress, PortId};
use crate::wire::{FRAME_BUF_LEN, VnetHeader, offload};

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
        self.buf.shape(egress, vlan);
        let frame = self.buf.frame();
        if !self.taps.is_empty() {
            self.taps.copy(out, Direction::Tx, frame, now);
        }
        if !slot.port.caps().offloads && !VnetHeader::new_unchecked(frame).is_complete() {
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
}

/// Stage 6 to 7: a frame joins the port's queue while frames are held there (so the order
/// holds), and is sent at once otherwise.
fn deliver(slot: &mut Slot, out: PortId, frame: &[u8], now: Duration, after: &mut Aftermath) {
    if !slot.queue.is_empty() {
        match slot.queue.push(frame, now) {
            Ok(()) => after.note_held(out),
            Err(_) => slot.tx.count_drop(DropReason::QueueFull),
        }
        return;
    }
    if let Sent::Gone(why) = slot.transmit(frame, now, false) {
        after.dead.push((out, why));
    }
}
