//! Port mirroring (SPAN): copies of the frames some ports receive or send, sent out of another
//! port. A mirror is a tap (stage 4) that queues its copies, bounded; the datapath sends them
//! once the frame in flight is done. The output port is output-only while it is a mirror's
//! (the core drops what arrives on it, `mirror_port`, and never floods to it), so a mirror can
//! never feed itself or another mirror.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::taps::{Direction, Tap, TapId};
use crate::bridge::PortId;

/// Most copies a mirror holds between two sends, and their bytes.
const QUEUE_FRAMES: usize = 512;
const QUEUE_BYTES: usize = 2 << 20;

/// What a mirror copies and where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorSpec {
    pub name: String,
    pub from: Vec<PortId>,
    /// `None`: both directions.
    pub direction: Option<Direction>,
    /// Only frames the switch classified into this VLAN; `None`: every frame.
    pub vlan: Option<u16>,
    pub to: PortId,
}

/// Frames a mirror sent, and copies it dropped (its queue was full, or the output port could
/// not take them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorCounts {
    pub frames: u64,
    pub dropped: u64,
}

#[derive(Default)]
struct Queue {
    copies: VecDeque<Vec<u8>>,
    bytes: usize,
    counts: MirrorCounts,
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// The tap side of a mirror.
struct MirrorTap {
    from: Vec<PortId>,
    direction: Option<Direction>,
    vlan: Option<u16>,
    queue: Arc<Mutex<Queue>>,
}

impl Tap for MirrorTap {
    fn wants(&self, port: PortId, direction: Direction, vlan: Option<u16>) -> bool {
        self.direction.is_none_or(|d| d == direction)
            && self.vlan.is_none_or(|v| vlan == Some(v))
            && self.from.contains(&port)
    }

    fn frame(&mut self, _: PortId, _: Direction, frame: &[u8], _: Duration) {
        let mut q = lock(&self.queue);
        if q.copies.len() >= QUEUE_FRAMES || q.bytes + frame.len() > QUEUE_BYTES {
            q.counts.dropped += 1;
            return;
        }
        q.bytes += frame.len();
        q.copies.push_back(frame.to_vec());
    }
}

/// A mirror attached to the datapath.
pub struct Mirror {
    pub spec: MirrorSpec,
    pub tap: TapId,
    queue: Arc<Mutex<Queue>>,
}

impl Mirror {
    /// The mirror for `spec` and the tap to attach for it (whose id goes in `tap`).
    pub fn new(spec: MirrorSpec) -> (Mirror, Box<dyn Tap>) {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let tap = MirrorTap {
            from: spec.from.clone(),
            direction: spec.direction,
            vlan: spec.vlan,
            queue: Arc::clone(&queue),
        };
        let mirror = Mirror {
            spec,
            tap: TapId::default(),
            queue,
        };
        (mirror, Box::new(tap))
    }

    /// The copies queued since the last call (virtio-net header + frame, as the source
    /// port's wire had them).
    pub fn take(&self) -> VecDeque<Vec<u8>> {
        let mut q = lock(&self.queue);
        q.bytes = 0;
        std::mem::take(&mut q.copies)
    }

    /// Counts copies sent, or dropped at the output port.
    pub fn count(&self, sent: u64, dropped: u64) {
        let mut q = lock(&self.queue);
        q.counts.frames += sent;
        q.counts.dropped += dropped;
    }

    pub fn counts(&self) -> MirrorCounts {
        lock(&self.queue).counts
    }

    /// Whether copies wait to be sent.
    pub fn has_copies(&self) -> bool {
        !lock(&self.queue).copies.is_empty()
    }
}
