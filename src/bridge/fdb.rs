//! The forwarding database: which port each (VLAN, MAC) was last seen on.
//!
//! Entries live in a slab and are threaded on one least-recently-seen list per port. That list
//! gives the three operations their cost: ageing walks each list from its old end and stops at
//! the first live entry; removing a port walks only that port's list; and when the table is full,
//! the entry evicted is the oldest of the port holding the most entries (Open vSwitch's fair
//! eviction), so a port spraying random source MACs evicts its own entries, not its neighbours'.
//!
//! Time is whole seconds since the switch started, passed in by the caller. An entry is moved to
//! its list's tail only when its second changes, so refreshing a busy MAC costs one compare.
//!
//! Static entries (added by an operator) are on no list: they never age, are never evicted or
//! flushed, and learning does not move them. Only deleting them, or their port, removes them.

use std::time::Duration;

use hashbrown::HashMap;

use super::PortId;
use crate::wire::MacAddr;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key {
    vlan: u16,
    mac: MacAddr,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    port: PortId,
    is_static: bool,
    /// Second (since start) the MAC was last seen as a source.
    seen: u32,
    prev: u32,
    /// Next on the port's list, or next free slot while the entry is free.
    next: u32,
}

/// One port's least-recently-seen list of learned entries, and its count of static ones.
#[derive(Clone, Copy, Debug)]
struct Lru {
    head: u32,
    tail: u32,
    len: u32,
    statics: u32,
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            head: NIL,
            tail: NIL,
            len: 0,
            statics: 0,
        }
    }
}

/// What learning a source address did to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new entry (possibly after evicting another).
    New,
    /// The MAC was already known on this port.
    Refreshed,
    /// The MAC was known on another port and now lives here.
    Moved { from: PortId },
    /// The MAC has a static entry, which learning leaves alone.
    Static,
    /// The table is full of static entries; nothing could be evicted to make room.
    TableFull,
}

/// A static entry could not be added: the table is full and holds no learned entry to evict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the MAC table is full of static entries")]
pub struct TableFull;

/// Lifetime counters of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbCounters {
    pub learned: u64,
    pub moved: u64,
    pub expired: u64,
    pub evicted: u64,
}

/// One row of the table as shown to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: PortId,
    /// Seconds since the MAC was last seen; `None` for a static entry.
    pub age: Option<u32>,
}

/// The MAC learning table. See the module documentation for its structure.
#[derive(Debug)]
pub struct Fdb {
    map: HashMap<Key, u32>,
    entries: Vec<Entry>,
    free: u32,
    lru: Vec<Lru>,
    capacity: usize,
    ageing: u32,
    counters: FdbCounters,
}

/// Slab indices are u32 with `NIL` reserved.
fn clamp_capacity(capacity: usize) -> usize {
    capacity.clamp(1, NIL as usize - 1)
}

/// Whole seconds of a timestamp, saturating (136 years of uptime fit).
pub(crate) fn secs(now: Duration) -> u32 {
    u32::try_from(now.as_secs()).unwrap_or(u32::MAX)
}

impl Fdb {
    /// A table holding at most `capacity` entries (1 to `u32::MAX - 1`) that expire after
    /// `ageing` seconds without being seen.
    pub fn new(capacity: usize, ageing: u32) -> Fdb {
        let capacity = clamp_capacity(capacity);
        Fdb {
            map: HashMap::with_capacity(capacity.min(1024)),
            entries: Vec::with_capacity(capacity.min(1024)),
            free: NIL,
            lru: Vec::new(),
            capacity,
            ageing,
            counters: FdbCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn ageing(&self) -> u32 {
        self.ageing
    }

    pub fn counters(&self) -> FdbCounters {
        self.counters
    }

    /// Static entries in the table.
    pub fn static_len(&self) -> usize {
        self.lru.iter().map(|l| l.statics as usize).sum()
    }

    /// Entries (learned and static) held for `port`.
    pub fn port_len(&self, port: PortId) -> usize {
        self.lru
            .get(port.index())
            .map_or(0, |l| (l.len + l.statics) as usize)
    }

    /// Changes the ageing time; entries older than it go at the next [`Fdb::expire`].
    pub fn set_ageing(&mut self, ageing: u32) {
        self.ageing = ageing;
    }

    /// Changes the capacity (at least 1), evicting learned entries fairly if the table is now
    /// over it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = clamp_capacity(capacity);
        while self.map.len() > self.capacity && self.evict_one() {}
    }

    /// The port `mac` was last seen on in `vlan`. Looking up does not refresh the entry: only
    /// traffic from the MAC keeps it alive.
    pub fn lookup(&self, vlan: u16, mac: MacAddr) -> Option<PortId> {
        let idx = *self.map.get(&Key { vlan, mac })?;
        Some(self.entries[idx as usize].port)
    }

    /// Records that `mac` was seen as a source on `port` at `now`. The caller has checked that
    /// the address is learnable (unicast, not zero).
    pub fn learn(&mut self, vlan: u16, mac: MacAddr, port: PortId, now: Duration) -> Learned {
        let now = secs(now);
        let key = Key { vlan, mac };
        if let Some(&idx) = self.map.get(&key) {
            let entry = self.entries[idx as usize];
            if entry.is_static {
                return Learned::Static;
            }
            if entry.port == port {
                if entry.seen != now {
                    self.unlink(idx);
                    self.entries[idx as usize].seen = now;
                    self.push_tail(idx);
                }
                return Learned::Refreshed;
            }
            self.unlink(idx);
            let moved = &mut self.entries[idx as usize];
            moved.port = port;
            moved.seen = now;
            self.push_tail(idx);
            self.counters.moved += 1;
            return Learned::Moved { from: entry.port };
        }
        if !self.make_room() {
            return Learned::TableFull;
        }
        let idx = self.alloc(Entry {
            key,
            port,
            is_static: false,
            seen: now,
            prev: NIL,
            next: NIL,
        });
        self.map.insert(key, idx);
        self.push_tail(idx);
        self.counters.learned += 1;
        Learned::New
    }

    /// Removes every entry not seen for more than the ageing time; returns how many went. With
    /// time kept in whole seconds, an entry lives at least `ageing` and under `ageing + 1`
    /// seconds after its MAC was last seen.
    pub fn expire(&mut self, now: Duration) -> usize {
        let now = secs(now);
        let mut removed = 0;
        for port in 0..self.lru.len() {
            loop {
                let idx = self.lru[port].head;
                if idx == NIL || now.saturating_sub(self.entries[idx as usize].seen) <= self.ageing
                {
                    break;
                }
                self.remove(idx);
                removed += 1;
            }
        }
        self.counters.expired += removed as u64;
        removed
    }

    /// Makes `mac` in `vlan` a static entry on `port`, replacing whatever entry it had.
    pub fn add_static(&mut self, vlan: u16, mac: MacAddr, port: PortId) -> Result<(), TableFull> {
        let key = Key { vlan, mac };
        if let Some(&idx) = self.map.get(&key) {
            self.remove(idx);
        } else if !self.make_room() {
            return Err(TableFull);
        }
        let idx = self.alloc(Entry {
            key,
            port,
            is_static: true,
            seen: 0,
            prev: NIL,
            next: NIL,
        });
        self.map.insert(key, idx);
        self.lru_mut(port).statics += 1;
        Ok(())
    }

    /// Removes the learned entries of `port`, or of every port; static entries stay. Returns how
    /// many went.
    pub fn flush(&mut self, port: Option<PortId>) -> usize {
        let ports = match port {
            Some(p) => p.index()..p.index() + 1,
            None => 0..self.lru.len(),
        };
        let mut removed = 0;
        for p in ports {
            while let Some(idx) = self.lru.get(p).map(|l| l.head).filter(|&i| i != NIL) {
                self.remove(idx);
                removed += 1;
            }
        }
        removed
    }

    /// Removes every entry of `port`, static ones included (it left the switch); returns how
    /// many went.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let mut removed = self.flush(Some(port));
        if self.lru.get(port.index()).is_some_and(|l| l.statics > 0) {
            let statics: Vec<u32> = self
                .map
                .values()
                .copied()
                .filter(|&i| {
                    let e = &self.entries[i as usize];
                    e.is_static && e.port == port
                })
                .collect();
            for idx in statics {
                self.remove(idx);
                removed += 1;
            }
        }
        removed
    }

    /// Removes the entry for `mac` in `vlan`; returns whether there was one.
    pub fn remove_mac(&mut self, vlan: u16, mac: MacAddr) -> bool {
        match self.map.get(&Key { vlan, mac }) {
            Some(&idx) => {
                self.remove(idx);
                true
            }
            None => false,
        }
    }

    /// Every entry, in no particular order, with its age at `now`.
    pub fn entries(&self, now: Duration) -> impl Iterator<Item = FdbEntry> + '_ {
        let now = secs(now);
        self.map.values().map(move |&idx| {
            let e = &self.entries[idx as usize];
            FdbEntry {
                vlan: e.key.vlan,
                mac: e.key.mac,
                port: e.port,
                age: (!e.is_static).then(|| now.saturating_sub(e.seen)),
            }
        })
    }

    /// Evicts if the table is full; returns whether there is room for one more entry.
    fn make_room(&mut self) -> bool {
        self.map.len() < self.capacity || self.evict_one()
    }

    /// Evicts the oldest learned entry of the port with the most learned entries; returns
    /// whether there was one.
    fn evict_one(&mut self) -> bool {
        let Some(port) =
            (0..self.lru.len()).max_by_key(|&p| (self.lru[p].len, std::cmp::Reverse(p)))
        else {
            return false;
        };
        let idx = self.lru[port].head;
        if idx == NIL {
            return false;
        }
        self.remove(idx);
        self.counters.evicted += 1;
        true
    }

    fn lru_mut(&mut self, port: PortId) -> &mut Lru {
        if self.lru.len() <= port.index() {
            self.lru.resize(port.index() + 1, Lru::default());
        }
        &mut self.lru[port.index()]
    }

    fn alloc(&mut self, entry: Entry) -> u32 {
        if self.free != NIL {
            let idx = self.free;
            self.free = self.entries[idx as usize].next;
            self.entries[idx as usize] = entry;
            idx
        } else {
            self.entries.push(entry);
            (self.entries.len() - 1) as u32
        }
    }

    fn remove(&mut self, idx: u32) {
        let entry = self.entries[idx as usize];
        if entry.is_static {
            self.lru[entry.port.index()].statics -= 1;
        } else {
            self.unlink(idx);
        }
        self.map.remove(&entry.key);
        self.entries[idx as usize].next = self.free;
        self.free = idx;
    }

    fn push_tail(&mut self, idx: u32) {
        let port = self.entries[idx as usize].port;
        let lru = self.lru_mut(port);
        let old_tail = lru.tail;
        lru.tail = idx;
        if old_tail == NIL {
            lru.head = idx;
        }
        lru.len += 1;
        if old_tail != NIL {
            self.entries[old_tail as usize].next = idx;
        }
        let entry = &mut self.entries[idx as usize];
        entry.prev = old_tail;
        entry.next = NIL;
    }

    fn unlink(&mut self, idx: u32) {
        let Entry {
            prev, next, port, ..
        } = self.entries[idx as usize];
        let lru = &mut self.lru[port.index()];
        if prev == NIL {
            lru.head = next;
        }
        if next == NIL {
            lru.tail = prev;
        }
        lru.len -= 1;
        if prev != NIL {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, 0, b[0], b[1], b[2], b[3]])
    }

    fn t(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    const P0: PortId = PortId(0);
    const P1: PortId = PortId(1);
    const P2: PortId = PortId(2);

    #[test]
    fn learns_refreshes_and_moves() {
        let mut fdb = Fdb::new(16, 300);
        assert_eq!(fdb.learn(0, mac(1), P0, t(0)), Learned::New);
        assert_eq!(fdb.learn(0, mac(1), P0, t(1)), Learned::Refreshed);
        assert_eq!(fdb.lookup(0, mac(1)), Some(P0));
        assert_eq!(fdb.learn(0, mac(1), P1, t(2)), Learned::Moved { from: P0 });
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1));
        assert_eq!((fdb.port_len(P0), fdb.port_len(P1)), (0, 1));
        let c = fdb.counters();
        assert_eq!((c.learned, c.moved, c.expired, c.evicted), (1, 1, 0, 0));
    }

    #[test]
    fn vlans_are_separate_keys() {
        let mut fdb = Fdb::new(16, 300);
        fdb.learn(10, mac(1), P0, t(0));
        fdb.learn(20, mac(1), P1, t(0));
        assert_eq!(fdb.lookup(10, mac(1)), Some(P0));
        assert_eq!(fdb.lookup(20, mac(1)), Some(P1));
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.counters().moved, 0);
    }

    #[test]
    fn ages_out_after_the_ageing_time_without_traffic() {
        let mut fdb = Fdb::new(16, 10);
        fdb.learn(0, mac(1), P0, t(0));
        fdb.learn(0, mac(2), P0, t(5));
        // Seen in second 0, it lives through second 10 (at least 10 s whatever the fraction).
        assert_eq!(fdb.expire(t(10)), 0);
        assert_eq!(fdb.expire(t(11)), 1);
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.lookup(0, mac(2)), Some(P0));
        // Traffic keeps an entry alive, and a refresh moves it behind younger ones.
        fdb.learn(0, mac(3), P0, t(12));
        fdb.learn(0, mac(2), P0, t(14));
        assert_eq!(fdb.expire(t(23)), 1);
        assert_eq!(fdb.lookup(0, mac(3)), None);
        assert_eq!(fdb.lookup(0, mac(2)), Some(P0));
        assert_eq!(fdb.expire(t(25)), 1);
        assert!(fdb.is_empty());
        assert_eq!(fdb.counters().expired, 3);
    }

    #[test]
    fn lookup_does_not_refresh() {
        let mut fdb = Fdb::new(16, 10);
        fdb.learn(0, mac(1), P0, t(0));
        for s in 1..=10 {
            assert_eq!(fdb.lookup(0, mac(1)), Some(P0), "at {s}");
            assert_eq!(fdb.expire(t(s)), 0);
        }
        assert_eq!(fdb.expire(t(11)), 1);
    }

    #[test]
    fn full_table_evicts_oldest_entry_of_the_biggest_port() {
        let mut fdb = Fdb::new(4, 300);
        fdb.learn(0, mac(100), P0, t(0));
        fdb.learn(0, mac(200), P1, t(1));
        fdb.learn(0, mac(1), P2, t(2));
        fdb.learn(0, mac(2), P2, t(3));
        // Full. P2 holds the most: its oldest (mac 1) goes, though P0's entry is older.
        fdb.learn(0, mac(3), P2, t(4));
        assert_eq!(fdb.len(), 4);
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.lookup(0, mac(100)), Some(P0));
        assert_eq!(fdb.counters().evicted, 1);
        // A newcomer on another port also evicts from the biggest port.
        fdb.learn(0, mac(300), P1, t(5));
        assert_eq!(fdb.lookup(0, mac(2)), None);
        assert_eq!(
            (fdb.port_len(P0), fdb.port_len(P1), fdb.port_len(P2)),
            (1, 2, 1)
        );
    }

    #[test]
    fn random_mac_flood_from_one_port_cannot_push_out_the_others() {
        let mut fdb = Fdb::new(1000, 300);
        for i in 0..10 {
            fdb.learn(0, mac(1_000_000 + i), P0, t(0));
            fdb.learn(0, mac(2_000_000 + i), P1, t(0));
        }
        let mut x: u32 = 0x9e37_79b9;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            fdb.learn(0, mac(x), P2, t(1 + step / 1000));
        }
        for i in 0..10 {
            assert_eq!(fdb.lookup(0, mac(1_000_000 + i)), Some(P0));
            assert_eq!(fdb.lookup(0, mac(2_000_000 + i)), Some(P1));
        }
        assert_eq!(fdb.len(), 1000);
        assert_eq!(fdb.port_len(P2), 980);
        assert!(fdb.counters().evicted >= 99_000);
    }

    #[test]
    fn capacity_one_replaces_the_single_entry() {
        let mut fdb = Fdb::new(1, 300);
        fdb.learn(0, mac(1), P0, t(0));
        fdb.learn(0, mac(2), P1, t(0));
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb.lookup(0, mac(2)), Some(P1));
        assert_eq!(fdb.lookup(0, mac(1)), None);
    }

    #[test]
    fn remove_port_takes_only_its_entries() {
        let mut fdb = Fdb::new(16, 300);
        for i in 0..5 {
            fdb.learn(0, mac(i), P0, t(0));
            fdb.learn(0, mac(100 + i), P1, t(0));
        }
        assert_eq!(fdb.remove_port(P0), 5);
        assert_eq!(fdb.remove_port(P2), 0);
        assert_eq!(fdb.len(), 5);
        assert!((0..5).all(|i| fdb.lookup(0, mac(i)).is_none()));
        assert!((0..5).all(|i| fdb.lookup(0, mac(100 + i)) == Some(P1)));
        // Freed slots are reused rather than growing the slab.
        for i in 0..5 {
            fdb.learn(0, mac(200 + i), P2, t(1));
        }
        assert_eq!(fdb.entries.len(), 10);
    }

    #[test]
    fn remove_mac_and_entries_report_ages() {
        let mut fdb = Fdb::new(16, 300);
        fdb.learn(7, mac(1), P0, t(3));
        fdb.learn(0, mac(2), P1, t(5));
        let mut rows: Vec<_> = fdb.entries(t(10)).collect();
        rows.sort_by_key(|e| e.mac);
        assert_eq!(
            rows,
            vec![
                FdbEntry {
                    vlan: 7,
                    mac: mac(1),
                    port: P0,
                    age: Some(7)
                },
                FdbEntry {
                    vlan: 0,
                    mac: mac(2),
                    port: P1,
                    age: Some(5)
                },
            ]
        );
        assert!(fdb.remove_mac(7, mac(1)));
        assert!(!fdb.remove_mac(7, mac(1)));
        assert_eq!(fdb.len(), 1);
    }

    #[test]
    fn static_entries_never_age_move_flush_or_get_evicted() {
        let mut fdb = Fdb::new(3, 10);
        fdb.learn(0, mac(1), P0, t(0));
        fdb.add_static(0, mac(1), P1).unwrap();
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1));
        assert_eq!(fdb.learn(0, mac(1), P2, t(1)), Learned::Static);
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1));
        assert_eq!(fdb.expire(t(1000)), 0);
        assert_eq!(fdb.flush(None), 0);
        fdb.learn(0, mac(2), P1, t(1000));
        fdb.learn(0, mac(3), P1, t(1000));
        // Full: a newcomer evicts a learned entry, never the static one.
        fdb.learn(0, mac(4), P2, t(1000));
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1));
        assert_eq!(fdb.lookup(0, mac(2)), None);
        assert_eq!((fdb.static_len(), fdb.port_len(P1)), (1, 2));
        let rows: Vec<_> = fdb.entries(t(1000)).filter(|e| e.age.is_none()).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].mac, mac(1));
        assert!(fdb.remove_mac(0, mac(1)));
        assert_eq!(fdb.static_len(), 0);
    }

    #[test]
    fn a_table_full_of_static_entries_refuses_more() {
        let mut fdb = Fdb::new(2, 300);
        fdb.add_static(0, mac(1), P0).unwrap();
        fdb.add_static(0, mac(2), P1).unwrap();
        assert_eq!(fdb.add_static(0, mac(3), P1), Err(TableFull));
        assert_eq!(fdb.learn(0, mac(4), P2, t(0)), Learned::TableFull);
        // Replacing an existing entry needs no room.
        fdb.add_static(0, mac(2), P0).unwrap();
        assert_eq!(fdb.lookup(0, mac(2)), Some(P0));
        assert_eq!(fdb.len(), 2);
    }

    #[test]
    fn flush_takes_learned_entries_of_one_port_or_all() {
        let mut fdb = Fdb::new(16, 300);
        for i in 0..3 {
            fdb.learn(0, mac(i), P0, t(0));
            fdb.learn(0, mac(10 + i), P1, t(0));
        }
        fdb.add_static(0, mac(20), P0).unwrap();
        assert_eq!(fdb.flush(Some(P0)), 3);
        assert_eq!(fdb.port_len(P0), 1);
        assert_eq!(fdb.port_len(P1), 3);
        assert_eq!(fdb.flush(None), 3);
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb.remove_port(P0), 1);
        assert!(fdb.is_empty());
    }

    #[test]
    fn shrinking_the_capacity_evicts_fairly_and_ageing_can_change() {
        let mut fdb = Fdb::new(10, 300);
        for i in 0..6 {
            fdb.learn(0, mac(i), P0, t(0));
        }
        for i in 0..4 {
            fdb.learn(0, mac(10 + i), P1, t(0));
        }
        fdb.set_capacity(6);
        assert_eq!((fdb.port_len(P0), fdb.port_len(P1)), (3, 3));
        fdb.set_ageing(10);
        assert_eq!(fdb.expire(t(11)), 6);
    }

    /// Random operations against a plain map as the model; checks the lists stay consistent.
    #[test]
    fn matches_a_simple_model_under_random_operations() {
        use std::collections::HashMap as Model;
        let ageing = 20;
        let mut fdb = Fdb::new(64, ageing);
        let mut model: Model<MacAddr, (PortId, u32)> = Model::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut now = 0u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = mac((x % 80) as u32);
            let port = PortId(((x >> 8) % 4) as u16);
            match (x >> 16) % 10 {
                0 => now += (x >> 24) % 4,
                1 => {
                    fdb.expire(t(now));
                    model.retain(|_, &mut (_, seen)| (now as u32) - seen <= ageing);
                }
                2 => {
                    fdb.remove_port(port);
                    model.retain(|_, &mut (p, _)| p != port);
                }
                _ => {
                    if !model.contains_key(&m) && model.len() == 64 {
                        // The model does not know which entry fair eviction picks; accept the
                        // table's choice after checking it came from the biggest port.
                        let before: Vec<_> = (0..4).map(|p| fdb.port_len(PortId(p))).collect();
                        fdb.learn(0, m, port, t(now));
                        let max = *before.iter().max().unwrap();
                        let gone: Vec<_> = model
                            .keys()
                            .copied()
                            .filter(|k| fdb.lookup(0, *k).is_none())
                            .collect();
                        assert_eq!(gone.len(), 1);
                        assert_eq!(before[model[&gone[0]].0.index()], max);
                        model.remove(&gone[0]);
                    } else {
                        fdb.learn(0, m, port, t(now));
                    }
                    model.insert(m, (port, now as u32));
                }
            }
            assert_eq!(fdb.len(), model.len());
            for p in 0..4 {
                let want = model.values().filter(|(mp, _)| mp.0 == p).count();
                assert_eq!(fdb.port_len(PortId(p)), want);
            }
        }
        for (m, (p, _)) in &model {
            assert_eq!(fdb.lookup(0, *m), Some(*p));
        }
    }
}
