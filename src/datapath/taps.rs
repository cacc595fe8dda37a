//! Stage 4, taps: copies of frames for whoever watches a port (live capture, mirrors), as they
//! are on that port's wire — received frames as they came in, sent frames after egress shaping
//! (with their VLAN tag, a TSO super-frame as one frame).
//!
//! With no tap attached the datapath pays one branch per frame. A tap must not block or fail
//! the switch: it gets a borrowed frame and copies what it wants into its own bounded buffer.

use std::time::Duration;

use crate::bridge::PortId;

/// Which way a frame crossed the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the port's host.
    Rx,
    /// Sent towards the port's host.
    Tx,
}

/// Something watching frames.
pub trait Tap: Send {
    /// Whether it wants the frames of `port` in `direction`, classified into `vlan` (`None`:
    /// dropped before the switch classified it).
    fn wants(&self, port: PortId, direction: Direction, vlan: Option<u16>) -> bool;

    /// One frame: the virtio-net header, then the Ethernet frame, at `now` (time since the
    /// switch started).
    fn frame(&mut self, port: PortId, direction: Direction, frame: &[u8], now: Duration);
}

/// What live captures did with one port's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    /// Frames written to a capture's stream.
    pub captured: u64,
    /// Frames a capture lost because its reader fell behind (the switch forwarded them).
    pub dropped: u64,
}

/// A tap's number, to detach it with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TapId(u32);

/// The taps attached to the switch.
#[derive(Default)]
pub struct Taps {
    taps: Vec<(TapId, Box<dyn Tap>)>,
    next: u32,
}

impl Taps {
    /// No tap is attached: the datapath skips this stage.
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    pub fn attach(&mut self, tap: Box<dyn Tap>) -> TapId {
        let id = TapId(self.next);
        self.next = self.next.wrapping_add(1);
        self.taps.push((id, tap));
        id
    }

    pub fn detach(&mut self, id: TapId) -> Option<Box<dyn Tap>> {
        let at = self.taps.iter().position(|(t, _)| *t == id)?;
        Some(self.taps.swap_remove(at).1)
    }

    /// Shows `frame`, classified into `vlan`, to every tap that wants it.
    pub fn copy(
        &mut self,
        port: PortId,
        direction: Direction,
        vlan: Option<u16>,
        frame: &[u8],
        now: Duration,
    ) {
        for (_, tap) in &mut self.taps {
            if tap.wants(port, direction, vlan) {
                tap.frame(port, direction, frame, now);
            }
        }
    }
}
