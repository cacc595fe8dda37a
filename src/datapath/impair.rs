//! Built-in link impairment, netem's vocabulary per port and direction: delay with jitter,
//! loss (optionally correlated), duplication, corruption, reordering and a rate limit. An
//! [`Impairer`] decides each frame's [`Fate`]; the datapath carries it out with the port's
//! queues and the loop's timers, so a delayed frame is held, never slept on, and other ports
//! are not affected.

use std::fmt;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// A probability in millionths (so that settings compare exactly): `Chance::from_pct(30.0)`
/// is 30 %.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Chance(u32);

impl Chance {
    pub const NEVER: Chance = Chance(0);
    const ONE: u32 = 1_000_000;

    /// `pct` percent, if it is between 0 and 100.
    pub fn from_pct(pct: f64) -> Option<Chance> {
        (0.0..=100.0)
            .contains(&pct)
            .then(|| Chance((pct * 10_000.0).round() as u32))
    }

    fn probability(self) -> f64 {
        f64::from(self.0) / f64::from(Chance::ONE)
    }

    pub fn is_never(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Chance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", f64::from(self.0) / 10_000.0)
    }
}

/// How jitter spreads the delay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DelayDist {
    /// Evenly within delay ± jitter.
    #[default]
    Uniform,
    /// Normally around delay, jitter the standard deviation.
    Normal,
}

impl DelayDist {
    pub fn name(self) -> &'static str {
        match self {
            DelayDist::Uniform => "uniform",
            DelayDist::Normal => "normal",
        }
    }
}

/// Frames an impaired direction holds at most by default (netem's `limit`).
pub const DEFAULT_LIMIT: usize = 1000;

/// One direction's impairment settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Impair {
    pub delay: Duration,
    pub jitter: Duration,
    pub dist: DelayDist,
    pub loss: Chance,
    /// The chance a frame shares the last one's loss decision (bursts of loss).
    pub loss_corr: Chance,
    pub duplicate: Chance,
    /// A bit of the payload (past the Ethernet header and tags) flipped.
    pub corrupt: Chance,
    /// Sent at once, ahead of the frames held by the delay.
    pub reorder: Chance,
    /// Bits per second; the frames queue behind each other at that rate.
    pub rate: Option<u64>,
    /// Most frames held in this direction; more are dropped (`impair_overflow`).
    pub limit: usize,
}

impl Default for Impair {
    fn default() -> Self {
        Impair {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            dist: DelayDist::Uniform,
            loss: Chance::NEVER,
            loss_corr: Chance::NEVER,
            duplicate: Chance::NEVER,
            corrupt: Chance::NEVER,
            reorder: Chance::NEVER,
            rate: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Impair {
    /// Whether anything is impaired (the defaults, a different limit aside, are a clean wire).
    pub fn is_active(&self) -> bool {
        Impair {
            limit: DEFAULT_LIMIT,
            ..*self
        } != Impair::default()
    }

    /// Whether frames must be judged one wire frame at a time: a TSO super-frame is cut into
    /// its segments first, so that 64 KiB are not lost, duplicated or rated as one unit.
    pub fn per_segment(&self) -> bool {
        !(self.loss.is_never()
            && self.duplicate.is_never()
            && self.corrupt.is_never()
            && self.reorder.is_never())
            || self.rate.is_some()
    }
}

/// A port's impairment: both directions (`rx` from its host, `tx` towards it) and the seed of
/// its random choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairConfig {
    pub rx: Impair,
    pub tx: Impair,
    /// Seeds the random choices, so a lab's losses are the same on every run; `None` takes
    /// the switch-wide `--seed`, or a random seed.
    pub seed: Option<u64>,
}

/// What becomes of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    /// 0 (lost), 1, or 2 (duplicated).
    pub copies: u8,
    /// When the copies may leave.
    pub release: Duration,
    /// Flip a bit of the first copy's payload.
    pub corrupt: bool,
    /// Send ahead of the frames held.
    pub reorder: bool,
}

/// What an impaired direction did, for `port show`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImpairCounts {
    pub delayed: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    pub overflowed: u64,
}

/// One direction's impairment at work: its settings, random state and rate clock.
pub struct Impairer {
    pub config: Impair,
    rng: SmallRng,
    /// The last frame's loss, for correlated loss.
    last_lost: bool,
    /// When the rate limiter's wire is free again.
    free_at: Duration,
    pub counts: ImpairCounts,
}

impl Impairer {
    /// An impairer for `config`, its random choices seeded by `seed` (random if `None`).
    pub fn new(config: Impair, seed: Option<u64>) -> Impairer {
        let rng = match seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_os_rng(),
        };
        Impairer {
            config,
            rng,
            last_lost: false,
            free_at: Duration::ZERO,
            counts: ImpairCounts::default(),
        }
    }

    fn chance(&mut self, c: Chance) -> bool {
        !c.is_never() && self.rng.random::<f64>() < c.probability()
    }

    /// Correlated loss: with the correlation's chance a frame shares the last frame's fate,
    /// otherwise it is drawn afresh. Losses then come in bursts while the long-run rate stays
    /// the loss setting (netem's own correlation lowers it).
    fn lost(&mut self) -> bool {
        if self.config.loss.is_never() {
            return false;
        }
        let corr = self.config.loss_corr;
        if !(corr.is_never() || self.rng.random::<f64>() >= corr.probability()) {
            return self.last_lost;
        }
        self.last_lost = self.rng.random::<f64>() < self.config.loss.probability();
        self.last_lost
    }

    fn delay(&mut self) -> Duration {
        let c = &self.config;
        if c.jitter.is_zero() {
            return c.delay;
        }
        let (delay, jitter) = (c.delay.as_secs_f64(), c.jitter.as_secs_f64());
        let secs = match c.dist {
            DelayDist::Uniform => delay + self.rng.random_range(-jitter..=jitter),
            DelayDist::Normal => {
                Normal::new(delay, jitter).map_or(delay, |n| n.sample(&mut self.rng))
            }
        };
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The fate of a frame of `len` bytes (Ethernet) arriving at `now`, counted.
    pub fn decide(&mut self, len: usize, now: Duration) -> Fate {
        if self.lost() {
            self.counts.lost += 1;
            return Fate {
                copies: 0,
                release: now,
                corrupt: false,
                reorder: false,
            };
        }
        let copies = if self.chance(self.config.duplicate) {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        let corrupt = self.chance(self.config.corrupt);
        if corrupt {
            self.counts.corrupted += 1;
        }
        let reorder = !self.config.delay.is_zero() && self.chance(self.config.reorder);
        let mut release = if reorder {
            self.counts.reordered += 1;
            now
        } else {
            now + self.delay()
        };
        if let Some(rate) = self.config.rate {
            let wire = Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            release = release.max(self.free_at) + wire;
            self.free_at = release;
        }
        if release > now {
            self.counts.delayed += 1;
        }
        Fate {
            copies,
            release,
            corrupt,
            reorder,
        }
    }

    /// Flips one random bit of `frame` from byte `from` on (the payload); nothing if there is
    /// none.
    pub fn corrupt(&mut self, frame: &mut [u8], from: usize) {
        if frame.len() > from {
            let i = self.rng.random_range(from..frame.len());
            frame[i] ^= 1 << self.rng.random_range(0..8);
        }
    }
}

/// The seed of one port's direction: the lab's seed mixed with the port's name and direction,
/// so that ports draw differently but each the same on every run.
pub fn port_seed(seed: u64, port: &str, direction: &str) -> u64 {
    // FNV-1a: stable across runs and Rust versions, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in port.bytes().chain([0]).chain(direction.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn impairer(config: Impair) -> Impairer {
        Impairer::new(config, Some(1))
    }

    #[test]
    fn a_clean_wire_is_not_active_and_passes_frames_at_once() {
        assert!(!Impair::default().is_active());
        let limit_only = Impair {
            limit: 10,
            ..Impair::default()
        };
        assert!(!limit_only.is_active());
        let mut i = impairer(Impair::default());
        let fate = i.decide(1500, ms(5));
        assert_eq!((fate.copies, fate.release), (1, ms(5)));
    }

    #[test]
    fn delay_and_jitter_stay_in_their_range() {
        let mut i = impairer(Impair {
            delay: ms(50),
            jitter: ms(10),
            ..Impair::default()
        });
        let releases: Vec<Duration> = (0..1000).map(|_| i.decide(100, ms(0)).release).collect();
        assert!(releases.iter().all(|r| (ms(40)..=ms(60)).contains(r)));
        let (lo, hi) = (
            releases.iter().min().unwrap(),
            releases.iter().max().unwrap(),
        );
        assert!(*hi - *lo > ms(15), "jitter spreads: {lo:?}..{hi:?}");
        let mut n = impairer(Impair {
            delay: ms(5),
            jitter: ms(50),
            dist: DelayDist::Normal,
            ..Impair::default()
        });
        assert!(
            (0..1000).all(|_| n.decide(100, ms(10)).release >= ms(10)),
            "never before now"
        );
    }

    #[test]
    fn loss_takes_its_share_and_a_seed_repeats_it() {
        let config = Impair {
            loss: Chance::from_pct(30.0).unwrap(),
            ..Impair::default()
        };
        let run = || {
            let mut i = impairer(config);
            (0..10_000)
                .map(|_| i.decide(60, ms(0)).copies == 0)
                .collect::<Vec<_>>()
        };
        let lost = run();
        let n = lost.iter().filter(|&&l| l).count();
        assert!((2_700..3_300).contains(&n), "{n} of 10000 lost");
        assert_eq!(lost, run(), "same seed, same losses");
        let all = Impair {
            loss: Chance::from_pct(100.0).unwrap(),
            ..Impair::default()
        };
        let mut i = impairer(all);
        assert!((0..1000).all(|_| i.decide(60, ms(0)).copies == 0));
        assert_eq!(i.counts.lost, 1000);
    }

    #[test]
    fn correlated_loss_comes_in_bursts() {
        let bursts = |corr: f64| {
            let mut i = impairer(Impair {
                loss: Chance::from_pct(20.0).unwrap(),
                loss_corr: Chance::from_pct(corr).unwrap(),
                ..Impair::default()
            });
            let lost: Vec<bool> = (0..20_000)
                .map(|_| i.decide(60, ms(0)).copies == 0)
                .collect();
            // How often a loss follows a loss.
            let pairs = lost.windows(2).filter(|w| w[0] && w[1]).count();
            pairs as f64 / lost.iter().filter(|&&l| l).count().max(1) as f64
        };
        // Alone, a loss follows a loss at the loss rate; correlated, far more often.
        let (plain, bursty) = (bursts(0.0), bursts(75.0));
        assert!((0.15..0.25).contains(&plain), "{plain}");
        assert!(bursty > 0.7, "{bursty}");
    }

    #[test]
    fn the_rate_spaces_frames_by_their_wire_time() {
        let mut i = impairer(Impair {
            rate: Some(8_000_000), // 1 byte per microsecond
            ..Impair::default()
        });
        let a = i.decide(1000, ms(0)).release;
        let b = i.decide(1000, ms(0)).release;
        assert_eq!((a, b), (ms(1), ms(2)));
        // An idle wire starts afresh.
        assert_eq!(
            i.decide(500, ms(10)).release,
            ms(10) + Duration::from_micros(500)
        );
    }

    #[test]
    fn duplicate_corrupt_and_reorder_are_counted() {
        let always = Chance::from_pct(100.0).unwrap();
        let mut i = impairer(Impair {
            delay: ms(20),
            duplicate: always,
            corrupt: always,
            reorder: always,
            ..Impair::default()
        });
        let fate = i.decide(60, ms(3));
        assert_eq!(
            fate,
            Fate {
                copies: 2,
                release: ms(3),
                corrupt: true,
                reorder: true
            }
        );
        let c = i.counts;
        assert_eq!((c.duplicated, c.corrupted, c.reordered), (1, 1, 1));
        let mut frame = [0u8; 64];
        i.corrupt(&mut frame, 14);
        assert_eq!(frame[..14], [0; 14], "the header is left alone");
        assert_eq!(frame.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
    }

    #[test]
    fn chances_read_as_percent() {
        assert_eq!(Chance::from_pct(30.0).unwrap().to_string(), "30%");
        assert_eq!(Chance::from_pct(0.5).unwrap().to_string(), "0.5%");
        assert!(Chance::from_pct(100.5).is_none() && Chance::from_pct(-1.0).is_none());
        assert_ne!(port_seed(1, "a", "tx"), port_seed(1, "a", "rx"));
        assert_ne!(port_seed(1, "a", "tx"), port_seed(1, "b", "tx"));
        assert_eq!(port_seed(7, "a", "tx"), port_seed(7, "a", "tx"));
    }
}
