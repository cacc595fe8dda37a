//! Stage 6, the egress queue of one port: frames held until a release time (a delay, a rate
//! limit) or kept while the port is momentarily full, released by the loop's timer. The same
//! queue holds a port's received frames while its `rx-` impairment delays them.
//!
//! Bounded in frames and bytes; a frame past the bound is refused and counted by the caller
//! (`queue_full`). Frames leave in the order they came (a frame due earlier waits behind one
//! held longer, as with netem without reordering). Buffers are reused, so a queue in steady use
//! does not allocate per frame.

use std::collections::VecDeque;
use std::time::Duration;

/// Most frames one port's queue holds.
pub const QUEUE_FRAMES: usize = 4096;
/// Most bytes (virtio-net header and frame) one port's queue holds: a few dozen TSO
/// super-frames, thousands of small ones.
pub const QUEUE_BYTES: usize = 4 << 20;

/// A frame waiting in a queue.
struct Held {
    /// When it may leave (time since the switch started).
    release: Duration,
    frame: Vec<u8>,
}

/// The frame did not fit: the queue is at its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// Frames held in order until their release times.
#[derive(Default)]
pub struct FrameQueue {
    held: VecDeque<Held>,
    /// Bytes of the frames held.
    bytes: usize,
    /// Buffers of frames already sent, for the next ones.
    spare: Vec<Vec<u8>>,
}

impl FrameQueue {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds a copy of `frame` until `release`, behind the frames already held; returns the
    /// copy, which may still be changed.
    pub fn push(&mut self, frame: &[u8], release: Duration) -> Result<&mut [u8], QueueFull> {
        if self.held.len() >= QUEUE_FRAMES || self.bytes + frame.len() > QUEUE_BYTES {
            return Err(QueueFull);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.bytes += buf.len();
        self.held.push_back(Held {
            release,
            frame: buf,
        });
        Ok(self.held.back_mut().map_or(&mut [], |h| &mut h.frame[..]))
    }

    /// Holds a copy of `frame` until `release`, ahead of the frames already held (a reordered
    /// frame); returns the copy.
    pub fn push_ahead(&mut self, frame: &[u8], release: Duration) -> Result<&mut [u8], QueueFull> {
        self.push(frame, release)?;
        let held = self.held.pop_back().ok_or(QueueFull)?;
        self.held.push_front(held);
        Ok(self.held.front_mut().map_or(&mut [], |h| &mut h.frame[..]))
    }

    /// When the frame at the head may leave, if a frame is held.
    pub fn next_release(&self) -> Option<Duration> {
        self.held.front().map(|h| h.release)
    }

    /// Hands every frame due at `now` to `send`, in order; returns how many left. When `send`
    /// says the port is full (returns `false`), that frame stays at the head, due again at
    /// `retry`, and the rest wait behind it.
    pub fn release(
        &mut self,
        now: Duration,
        retry: Duration,
        mut send: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        let mut sent = 0;
        while let Some(head) = self.held.front_mut()
            && head.release <= now
        {
            if !send(&head.frame) {
                head.release = retry;
                break;
            }
            let Some(held) = self.held.pop_front() else {
                break;
            };
            self.bytes -= held.frame.len();
            sent += 1;
            self.spare.push(held.frame);
        }
        // Keep a few buffers, not every one a burst needed.
        self.spare.truncate(64);
        sent
    }

    /// Drops every frame held; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.held.len();
        self.held.clear();
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn frames_leave_at_their_time_in_order() {
        let mut q = FrameQueue::default();
        q.push(b"one", ms(10)).unwrap();
        q.push(b"two", ms(20)).unwrap();
        q.push(b"three", ms(15)).unwrap();
        assert_eq!(q.next_release(), Some(ms(10)));
        let mut out = Vec::new();
        let mut take = |f: &[u8]| {
            out.push(f.to_vec());
            true
        };
        assert_eq!(q.release(ms(9), ms(99), &mut take), 0);
        assert_eq!(q.release(ms(10), ms(99), &mut take), 1);
        assert_eq!(q.next_release(), Some(ms(20)));
        // "three" is due at 15 but waits behind "two".
        assert_eq!(q.release(ms(16), ms(99), &mut take), 0);
        assert_eq!(q.release(ms(20), ms(99), &mut take), 2);
        assert_eq!(out, [&b"one"[..], b"two", b"three"]);
        assert!(q.is_empty());
        assert_eq!(q.next_release(), None);
    }

    #[test]
    fn the_bound_refuses_frames_past_it() {
        let mut q = FrameQueue::default();
        let big = vec![0u8; QUEUE_BYTES / 2];
        q.push(&big, ms(1)).unwrap();
        q.push(&big, ms(1)).unwrap();
        assert_eq!(q.push(b"x", ms(1)).err(), Some(QueueFull), "bytes");
        assert_eq!(q.release(ms(1), ms(9), |_| true), 2);
        for _ in 0..QUEUE_FRAMES {
            q.push(b"x", ms(2)).unwrap();
        }
        assert_eq!(q.push(b"x", ms(2)).err(), Some(QueueFull), "frames");
        assert_eq!(q.clear(), QUEUE_FRAMES);
        assert!(q.push(b"x", ms(2)).is_ok());
    }

    #[test]
    fn a_full_port_keeps_the_head_until_its_retry() {
        let mut q = FrameQueue::default();
        q.push(b"one", ms(10)).unwrap();
        q.push(b"two", ms(10)).unwrap();
        assert_eq!(q.release(ms(10), ms(11), |_| false), 0);
        assert_eq!((q.len(), q.next_release()), (2, Some(ms(11))));
        let mut out = Vec::new();
        assert_eq!(
            q.release(ms(11), ms(12), |f| {
                out.push(f.to_vec());
                true
            }),
            2
        );
        assert_eq!(out, [&b"one"[..], b"two"]);
    }

    #[test]
    fn buffers_are_reused() {
        let mut q = FrameQueue::default();
        q.push(&[1; 1500], ms(0)).unwrap();
        q.release(ms(0), ms(9), |_| true);
        let spare = q.spare[0].as_ptr();
        q.push(&[2; 60], ms(0)).unwrap();
        assert_eq!(q.held[0].frame.as_ptr(), spare);
        assert_eq!(q.held[0].frame, [2; 60]);
    }
}
