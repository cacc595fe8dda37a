//! The attached ports as the datapath holds them: each port with its edge state (transmit
//! counters, link state, egress queue, log rate limits), and stage 7, the send, where a port's
//! send errors become counted drops or the port's removal.

use std::io;
use std::time::Duration;

use log::{debug, warn};

use super::RETRY_FULL;
use super::impair::{ImpairConfig, Impairer};
use super::queue::FrameQueue;
use super::taps::CaptureCounts;
use crate::bridge::{Counters, DropReason, PortId};
use crate::port::Port;
use crate::wire::VNET_HDR_LEN;

/// Shortest interval between two warnings about the same port.
pub(super) const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// One attached port and what the edge keeps about it.
pub(super) struct Slot {
    pub port: Box<dyn Port>,
    /// Frames sent, and frames that could not be.
    pub tx: Counters,
    /// Frames received but dropped before the core saw them (`rx-` impairment).
    pub rx_edge: Counters,
    pub queue: FrameQueue,
    /// `link=down` or `tx-down`: nothing is sent to the port's host (counted `admin_down`).
    pub tx_off: bool,
    /// The port's impairment settings, and each impaired direction at work.
    pub impair: ImpairConfig,
    pub rx_impair: Option<Box<Impairer>>,
    pub tx_impair: Option<Box<Impairer>>,
    /// Received frames the `rx-` impairment holds back.
    pub rx_held: FrameQueue,
    /// The last send found the link down (EIO); cleared by the next successful send.
    pub link_down: bool,
    pub last_warning: Option<Duration>,
    pub guard_reports: Throttle,
    pub alert_reports: Throttle,
    /// What captures of this port did.
    pub capture: CaptureCounts,
}

/// Reports of something that can happen on every frame (ARP guard drops, security alerts):
/// at most one per [`WARN_INTERVAL`], each with the number of times since the last.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Duration>,
    count: u64,
}

impl Throttle {
    /// Counts one more at `now`; if it may be reported now, returns how many there were since
    /// the last report (this one included).
    pub fn hit(&mut self, now: Duration) -> Option<u64> {
        self.count += 1;
        Slot::may_warn(&mut self.last, now).then(|| std::mem::take(&mut self.count))
    }
}

/// What became of a send.
pub(super) enum Sent {
    /// Sent, or dropped and counted.
    Done,
    /// The port is full for now; the frame was neither sent nor counted (asked for with
    /// `keep_if_full`).
    Full,
    /// The port is gone for good (why, for the log); it must be removed.
    Gone(String),
}

impl Slot {
    pub fn new(port: Box<dyn Port>) -> Slot {
        Slot {
            port,
            tx: Counters::default(),
            rx_edge: Counters::default(),
            queue: FrameQueue::default(),
            tx_off: false,
            impair: ImpairConfig::default(),
            rx_impair: None,
            tx_impair: None,
            rx_held: FrameQueue::default(),
            link_down: false,
            last_warning: None,
            guard_reports: Throttle::default(),
            alert_reports: Throttle::default(),
            capture: CaptureCounts::default(),
        }
    }

    /// Whether a warning about this port may be logged at `now` (at most one per
    /// [`WARN_INTERVAL`]); if so, the next one waits.
    pub fn may_warn(last: &mut Option<Duration>, now: Duration) -> bool {
        if last.is_some_and(|t| now.saturating_sub(t) < WARN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Sends the frames of the egress queue due by `due`, in order, at `now`; a port that is
    /// full again keeps the rest for [`RETRY_FULL`] later. Returns why the port is gone, if a
    /// send found it so.
    pub fn send_held(&mut self, due: Duration, now: Duration) -> Option<String> {
        // Out of the slot while it drains, so the slot can send.
        let mut queue = std::mem::take(&mut self.queue);
        let mut gone = None;
        queue.release(due, now + RETRY_FULL, |frame| {
            if gone.is_some() {
                return true;
            }
            match self.transmit(frame, now, true) {
                Sent::Done => true,
                Sent::Full => false,
                Sent::Gone(why) => {
                    gone = Some(why);
                    true
                }
            }
        });
        self.queue = queue;
        gone
    }

    /// Writes one frame (virtio-net header + Ethernet) to the port and counts the outcome. With
    /// `keep_if_full`, a port that is full (EAGAIN, ENOBUFS) says so instead of dropping.
    pub fn transmit(&mut self, frame: &[u8], now: Duration, keep_if_full: bool) -> Sent {
        let bytes = frame.len() - VNET_HDR_LEN;
        let err = match self.port.send(frame) {
            Ok(()) => {
                self.link_down = false;
                self.tx.count(bytes);
                return Sent::Done;
            }
            Err(e) => e,
        };
        let reason = match classify_send_error(&err) {
            SendFailure::Gone => {
                self.tx.count_drop(DropReason::TxError);
                return Sent::Gone(describe_gone(&err));
            }
            SendFailure::Drop(DropReason::TxFull) if keep_if_full => return Sent::Full,
            SendFailure::Drop(reason) => reason,
        };
        self.tx.count_drop(reason);
        if reason == DropReason::LinkDown {
            self.link_down = true;
            // A link that is down (a host that has not brought its side up) is a state, not a
            // fault: counted, logged only when asked for.
            debug!("port {}: link down, frame dropped", self.port.name());
        } else if Slot::may_warn(&mut self.last_warning, now) {
            warn!(
                "port {}: dropping frames ({reason}): {err}",
                self.port.name()
            );
        }
        Sent::Done
    }
}

enum SendFailure {
    /// The port's device or peer is gone for good.
    Gone,
    Drop(DropReason),
}

fn classify_send_error(e: &io::Error) -> SendFailure {
    match e.kind() {
        io::ErrorKind::WouldBlock => return SendFailure::Drop(DropReason::TxFull),
        // A port waiting for its peer (a VM not connected, an interface not there yet).
        io::ErrorKind::NotConnected => return SendFailure::Drop(DropReason::LinkDown),
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::ENOBUFS | libc::ENOMEM) => SendFailure::Drop(DropReason::TxFull),
        Some(libc::EMSGSIZE) => SendFailure::Drop(DropReason::TooBig),
        Some(libc::EIO) => SendFailure::Drop(DropReason::LinkDown),
        Some(libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EPIPE | libc::ECONNRESET) => {
            SendFailure::Gone
        }
        _ => SendFailure::Drop(DropReason::TxError),
    }
}

/// Why a port is gone, for the log.
pub(super) fn describe_gone(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBADFD) => format!("its device was deleted ({e})"),
        _ => e.to_string(),
    }
}

/// The attached ports by number, and which of them have no file descriptor and are polled.
#[derive(Default)]
pub(super) struct PortTable {
    slots: Vec<Option<Slot>>,
    polled: Vec<PortId>,
}

impl PortTable {
    pub fn insert(&mut self, id: PortId, slot: Slot) {
        if self.slots.len() <= id.index() {
            self.slots.resize_with(id.index() + 1, || None);
        }
        if slot.port.caps().polled {
            self.polled.push(id);
        }
        self.slots[id.index()] = Some(slot);
    }

    pub fn remove(&mut self, id: PortId) -> Option<Slot> {
        let slot = self.take(id)?;
        self.polled.retain(|&p| p != id);
        Some(slot)
    }

    /// Takes a port out of its place while its own frames are handled (see [`PortTable::put`]).
    pub fn take(&mut self, id: PortId) -> Option<Slot> {
        self.slots.get_mut(id.index())?.take()
    }

    /// Puts back a port [`PortTable::take`] took.
    pub fn put(&mut self, id: PortId, slot: Slot) {
        self.slots[id.index()] = Some(slot);
    }

    pub fn get(&self, id: PortId) -> Option<&Slot> {
        self.slots.get(id.index())?.as_ref()
    }

    pub fn get_mut(&mut self, id: PortId) -> Option<&mut Slot> {
        self.slots.get_mut(id.index())?.as_mut()
    }

    pub fn polled(&self) -> &[PortId] {
        &self.polled
    }
}
