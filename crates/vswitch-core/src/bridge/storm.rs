//! Storm control: a token bucket per port and kind of flooded traffic, refilled by the time
//! passed in, so a host flooding broadcast at full speed gets only its share through.

use std::time::Duration;

use super::port::{FloodKind, StormLimits};

/// One kind's bucket: tokens are frames, refilled at `rate` per second up to a tenth of a
/// second's worth (so a quiet port may burst a little, never a second's worth at once).
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

impl Bucket {
    fn take(&mut self, rate: u32, now: Duration) -> bool {
        let rate = f64::from(rate);
        let burst = (rate / 10.0).max(1.0);
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A port's three buckets.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Storm {
    broadcast: Bucket,
    multicast: Bucket,
    unknown: Bucket,
}

impl Storm {
    /// Whether a frame of `kind` arriving at `now` is within `limits` (and takes its token).
    pub fn admit(&mut self, limits: &StormLimits, kind: FloodKind, now: Duration) -> bool {
        let (bucket, limit) = match kind {
            FloodKind::Broadcast => (&mut self.broadcast, limits.broadcast),
            FloodKind::Multicast | FloodKind::LinkLocal(_) => {
                (&mut self.multicast, limits.multicast)
            }
            FloodKind::Unknown => (&mut self.unknown, limits.unknown),
        };
        limit.is_none_or(|rate| bucket.take(rate, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_rate_through_and_no_more() {
        let limits = StormLimits {
            broadcast: Some(1000),
            ..StormLimits::default()
        };
        let mut storm = Storm::default();
        // 10 s of a frame every 10 µs (100 000/s): about 1000/s pass.
        let passed = (0..1_000_000u64)
            .filter(|&i| storm.admit(&limits, FloodKind::Broadcast, Duration::from_micros(i * 10)))
            .count();
        assert!((9_900..=10_200).contains(&passed), "{passed}");
        // Other kinds have no limit.
        assert!((0..10_000).all(|_| storm.admit(&limits, FloodKind::Unknown, Duration::ZERO)));
    }

    #[test]
    fn a_quiet_port_bursts_a_tenth_of_a_second() {
        let limits = StormLimits {
            multicast: Some(500),
            ..StormLimits::default()
        };
        let mut storm = Storm::default();
        let at = Duration::from_secs(60);
        let burst = (0..1000)
            .filter(|_| storm.admit(&limits, FloodKind::Multicast, at))
            .count();
        assert_eq!(burst, 50);
    }
}
