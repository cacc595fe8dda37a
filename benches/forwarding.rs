//! Criterion benches of the forwarding core, `Bridge::ingress`: the decision the reactor asks for
//! on every frame. Pure CPU work, no I/O and no root; run with
//!
//! ```sh
//! cargo bench --bench forwarding              # everything (a few minutes on 2 cores)
//! cargo bench --bench forwarding -- unicast   # one group
//! ```
//!
//! Groups (throughput is in frames, so criterion prints frames/s as `elem/s`):
//! - `unicast`: known unicast between learned hosts, the common case (issue 7: >= 20 M frames/s
//!   on one core);
//! - `lookup_hot/N`, `lookup_spread/N`: known unicast in a table of N = 1k..1M entries, to a few
//!   hot destinations and to destinations spread over the whole table (the cost should not grow
//!   with N except where the table leaves the CPU caches);
//! - `flood`: broadcast and unknown unicast decisions, and collecting the flood targets;
//! - `learn`: new source MACs into a growing table, and into a full table that evicts.
//!
//! Before the benches it prints the heap bytes per MAC entry at 1,000,000 entries, measured with
//! a counting global allocator (issue 7: <= 64 bytes per entry).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use vswitch::bridge::{Bridge, BridgeConfig, PortId, Verdict};

/// The system allocator, counting the bytes currently allocated and the peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed unchanged to `System`, which upholds the `GlobalAlloc` contract;
// the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as it is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Ethernet frames are 60 bytes before the FCS: a 64-byte frame on the wire.
const FRAME_LEN: usize = 60;

/// A locally administered unicast MAC numbered `n`.
fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// A minimum-size IPv4 frame from `src` to `dst`.
fn frame(dst: [u8; 6], src: [u8; 6]) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// A small xorshift generator: the benches need spread, not quality, and no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// The time every decision is made at: one fixed second, as within one second of a busy flow.
const NOW: Duration = Duration::from_secs(10);

/// A bridge with `ports` ports and a table of `capacity` entries.
fn bridge(ports: usize, capacity: usize) -> (Bridge, Vec<PortId>) {
    let mut b = Bridge::new(BridgeConfig {
        mac_table_size: capacity,
        mac_ageing: 300,
        ..BridgeConfig::default()
    });
    let ids = (0..ports)
        .map(|_| b.attach(vswitch::bridge::VlanMode::All).unwrap())
        .collect();
    (b, ids)
}

/// Teaches the bridge `n` MACs (numbers `0..n`), spread round-robin over `ports`, by sending one
/// frame from each. The destination is broadcast so nothing else is learned.
fn teach(b: &mut Bridge, ports: &[PortId], n: u32) {
    for i in 0..n {
        let f = frame([0xff; 6], mac(i));
        b.ingress(ports[i as usize % ports.len()], &f, NOW);
    }
    assert_eq!(b.fdb().len(), n as usize, "every MAC learned");
}

/// A batch of frames with the ingress port of each.
struct Batch {
    frames: Vec<(PortId, [u8; FRAME_LEN])>,
}

impl Batch {
    fn len(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Runs every frame of the batch through `ingress`; returns a digest so nothing is elided.
    fn run(&self, b: &mut Bridge) -> u32 {
        let mut digest = 0u32;
        for (port, f) in &self.frames {
            digest = digest.wrapping_add(match b.ingress(*port, black_box(f), NOW) {
                Verdict::Forward { port, .. } => u32::from(port.0) + 1,
                Verdict::Flood { .. } => 1 << 16,
                _ => 1 << 20,
            });
        }
        digest
    }
}

/// Known unicast among `macs` learned hosts, `frames` frames picked at random: each frame's
/// source is learned on its ingress port and its destination on another.
fn unicast_batch(ports: &[PortId], macs: u32, hot: u32, frames: usize, rng: &mut Rng) -> Batch {
    let pick = |rng: &mut Rng| {
        if hot < macs {
            rng.below(hot)
        } else {
            rng.below(macs)
        }
    };
    let frames = (0..frames)
        .map(|_| {
            let src = pick(rng);
            let mut dst = pick(rng);
            // Same port gives a SamePort drop: keep destinations on another port.
            while dst as usize % ports.len() == src as usize % ports.len() {
                dst = pick(rng);
            }
            (ports[src as usize % ports.len()], frame(mac(dst), mac(src)))
        })
        .collect();
    Batch { frames }
}

fn bench_unicast(c: &mut Criterion) {
    let mut g = c.benchmark_group("unicast");
    // One flow, h1 -> h2: the best case (everything in L1).
    {
        let (mut b, ports) = bridge(2, 8192);
        teach(&mut b, &ports, 2);
        let batch = Batch {
            frames: vec![(ports[0], frame(mac(1), mac(0))); 1024],
        };
        assert!(matches!(
            b.ingress(ports[0], &batch.frames[0].1, NOW),
            Verdict::Forward { port, .. } if port == ports[1]
        ));
        g.throughput(Throughput::Elements(batch.len()));
        g.bench_function("one_flow", |bench| bench.iter(|| batch.run(&mut b)));
    }
    // 8 ports, 256 hosts, random pairs: a small LAN.
    {
        let (mut b, ports) = bridge(8, 8192);
        teach(&mut b, &ports, 256);
        let batch = unicast_batch(&ports, 256, 256, 1024, &mut Rng(0x2545_f491_4f6c_dd1d));
        g.throughput(Throughput::Elements(batch.len()));
        g.bench_function("8_ports_256_hosts", |bench| {
            bench.iter(|| batch.run(&mut b))
        });
    }
    g.finish();
}

/// Table sizes for the lookup benches.
const SIZES: [(u32, &str); 4] = [
    (1_000, "1k"),
    (10_000, "10k"),
    (100_000, "100k"),
    (1_000_000, "1M"),
];

fn bench_lookup(c: &mut Criterion) {
    for (group, hot) in [("lookup_hot", 64), ("lookup_spread", u32::MAX)] {
        let mut g = c.benchmark_group(group);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        for (n, label) in SIZES {
            let (mut b, ports) = bridge(8, n as usize);
            teach(&mut b, &ports, n);
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(n));
            let batch = unicast_batch(&ports, n, hot, 4096, &mut rng);
            g.throughput(Throughput::Elements(batch.len()));
            g.bench_with_input(
                BenchmarkId::from_parameter(label),
                &batch,
                |bench, batch| bench.iter(|| batch.run(&mut b)),
            );
        }
        g.finish();
    }
}

fn bench_flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("flood");
    let (mut b, ports) = bridge(8, 8192);
    teach(&mut b, &ports, 256);
    let mut rng = Rng(7);
    let broadcast = Batch {
        frames: (0..1024)
            .map(|_| {
                let src = rng.below(256);
                (ports[src as usize % 8], frame([0xff; 6], mac(src)))
            })
            .collect(),
    };
    let unknown = Batch {
        frames: (0..1024)
            .map(|_| {
                let src = rng.below(256);
                let dst = 1_000_000 + rng.below(1_000_000);
                (ports[src as usize % 8], frame(mac(dst), mac(src)))
            })
            .collect(),
    };
    g.throughput(Throughput::Elements(1024));
    g.bench_function("broadcast", |bench| bench.iter(|| broadcast.run(&mut b)));
    g.bench_function("unknown_unicast", |bench| {
        bench.iter(|| unknown.run(&mut b))
    });
    // What the reactor does with a Flood verdict before sending: list the other 7 ports.
    let mut targets = Vec::with_capacity(8);
    g.bench_function("broadcast_with_targets_8_ports", |bench| {
        bench.iter(|| {
            let mut sent = 0usize;
            for (port, f) in &broadcast.frames {
                if let Verdict::Flood { vlan, kind } = b.ingress(*port, black_box(f), NOW) {
                    targets.extend(b.flood_targets(*port, vlan, kind));
                    sent += targets.len();
                    targets.clear();
                }
            }
            sent
        })
    });
    g.finish();
}

fn bench_learn(c: &mut Criterion) {
    let mut g = c.benchmark_group("learn");
    g.throughput(Throughput::Elements(1));
    // New MACs into a growing table (rehashes included), in tables of up to 64k entries; the
    // bridge is built and dropped outside the timed part.
    g.bench_function("new_mac_growing_table", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = (iters - done).min(65_536) as u32;
                let (mut b, ports) = bridge(8, 1 << 20);
                let frames: Vec<_> = (0..n).map(|i| frame([0xff; 6], mac(i))).collect();
                let start = Instant::now();
                for (i, f) in frames.iter().enumerate() {
                    black_box(b.ingress(ports[i % 8], black_box(f), NOW));
                }
                total += start.elapsed();
                done += u64::from(n);
            }
            total
        })
    });
    // New MACs into a full table of 8192 (the default size): every frame evicts one entry.
    {
        let (mut b, ports) = bridge(8, 8192);
        teach(&mut b, &ports, 8192);
        let mut next = 8192u32;
        g.bench_function("new_mac_full_table_evicts", |bench| {
            bench.iter(|| {
                let f = frame([0xff; 6], mac(next));
                next = next.wrapping_add(1);
                b.ingress(ports[next as usize % 8], black_box(&f), NOW)
            })
        });
        assert_eq!(b.fdb().len(), 8192);
    }
    g.finish();
}

/// Heap bytes the bridge holds per MAC entry with `n` entries learned.
fn bytes_per_entry(n: u32) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    let (mut b, ports) = bridge(8, n as usize);
    teach(&mut b, &ports, n);
    let took = start.elapsed();
    let held = CURRENT.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "memory: {n} MAC entries hold {held} heap bytes: {:.1} bytes per entry \
         (peak while growing {:.1} bytes per entry; learned in {:.0} ms, {:.1} M new MACs/s)",
        held as f64 / f64::from(n),
        peak as f64 / f64::from(n),
        took.as_secs_f64() * 1e3,
        f64::from(n) / took.as_secs_f64() / 1e6,
    );
    drop(b);
}

fn main() {
    bytes_per_entry(1_000_000);
    let mut c = Criterion::default().configure_from_args();
    bench_unicast(&mut c);
    bench_lookup(&mut c);
    bench_flood(&mut c);
    bench_learn(&mut c);
    c.final_summary();
}
