//! A table of entries learned per port, with ageing and fair eviction: the structure under both
//! the MAC table (key: VLAN and MAC) and the ARP table (key: VLAN and IPv4, value: MAC).
//!
//! Entries live in a slab and are threaded on one least-recently-seen list per port. That list
//! gives the three operations their cost: ageing walks each list from its old end and stops at
//! the first live entry; removing a port walks only that port's list; and when the table is full,
//! the entry evicted is the oldest of the port holding the most entries (Open vSwitch's fair
//! eviction), so a port spraying random addresses evicts its own entries, not its neighbours'.
//!
//! Time is whole seconds since the switch started, passed in by the caller. An entry is moved to
//! its list's tail only when its second changes, so refreshing a busy entry costs one compare.
//!
//! Static entries (added by an operator) are on no list: they never age, are never evicted or
//! flushed, and learning does not move them. Only deleting them, or their port, removes them.

use std::hash::Hash;
use std::time::Duration;

use hashbrown::HashMap;

use super::PortId;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry<K, V> {
    key: K,
    value: V,
    port: PortId,
    is_static: bool,
    /// Second (since start) the entry was last learned.
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

/// A static entry could not be added: the table is full and holds no learned entry to evict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the table is full of static entries")]
pub struct TableFull;

/// Lifetime counters of a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub learned: u64,
    pub moved: u64,
    pub expired: u64,
    pub evicted: u64,
}

/// A change to a table, as the journal records it (when it is on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<K, V> {
    /// A new learned entry.
    Learned { key: K, value: V, port: PortId },
    /// A learned entry moved to another port.
    Moved { key: K, from: PortId, to: PortId },
    /// An entry not seen for the ageing time went.
    Aged { key: K, port: PortId },
    /// An entry went to make room in a full table.
    Evicted { key: K, port: PortId },
    /// An operator added a static entry (replacing any entry for the key).
    Added { key: K, value: V, port: PortId },
    /// An operator deleted an entry.
    Deleted { key: K, port: PortId },
    /// The learned entries of a port (or of all) were flushed.
    Flushed {
        port: Option<PortId>,
        entries: usize,
    },
}

/// Most changes the journal holds between two drains; past it they are counted as lost.
pub const JOURNAL_CAP: usize = 65_536;

/// What changed since the journal was last drained.
#[derive(Debug)]
struct Journal<K, V> {
    changes: Vec<Change<K, V>>,
    lost: u64,
}

/// One entry as shown to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<K, V> {
    pub key: K,
    pub value: V,
    pub port: PortId,
    /// Seconds since the entry was last learned; `None` for a static entry.
    pub age: Option<u32>,
}

/// A table of per-port entries. See the module documentation for its structure.
#[derive(Debug)]
pub struct PortTable<K, V> {
    map: HashMap<K, u32>,
    entries: Vec<Entry<K, V>>,
    free: u32,
    lru: Vec<Lru>,
    capacity: usize,
    ageing: u32,
    counters: Counters,
    /// Off (`None`) unless someone watches: then every change is recorded.
    journal: Option<Journal<K, V>>,
}

/// Slab indices are u32 with `NIL` reserved.
fn clamp_capacity(capacity: usize) -> usize {
    capacity.clamp(1, NIL as usize - 1)
}

/// Whole seconds of a timestamp, saturating (136 years of uptime fit).
pub(crate) fn secs(now: Duration) -> u32 {
    u32::try_from(now.as_secs()).unwrap_or(u32::MAX)
}

impl<K: Copy + Eq + Hash, V: Copy + PartialEq> PortTable<K, V> {
    /// A table holding at most `capacity` entries (1 to `u32::MAX - 1`) that expire after
    /// `ageing` seconds without being learned again.
    pub fn new(capacity: usize, ageing: u32) -> Self {
        let capacity = clamp_capacity(capacity);
        PortTable {
            map: HashMap::with_capacity(capacity.min(1024)),
            entries: Vec::with_capacity(capacity.min(1024)),
            free: NIL,
            lru: Vec::new(),
            capacity,
            ageing,
            counters: Counters::default(),
            journal: None,
        }
    }

    /// Turns the journal of changes on or off (off forgets what it held).
    pub fn set_journal(&mut self, on: bool) {
        if on != self.journal.is_some() {
            self.journal = on.then(|| Journal {
                changes: Vec::new(),
                lost: 0,
            });
        }
    }

    /// Hands the changes recorded since the last call to `each`, oldest first; returns how
    /// many were lost to [`JOURNAL_CAP`] since.
    pub fn drain_journal(&mut self, mut each: impl FnMut(Change<K, V>)) -> u64 {
        let Some(journal) = self.journal.as_mut() else {
            return 0;
        };
        journal.changes.drain(..).for_each(&mut each);
        std::mem::take(&mut journal.lost)
    }

    fn record(&mut self, change: Change<K, V>) {
        if let Some(journal) = self.journal.as_mut() {
            if journal.changes.len() < JOURNAL_CAP {
                journal.changes.push(change);
            } else {
                journal.lost += 1;
            }
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

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Static entries in the table.
    pub fn static_len(&self) -> usize {
        self.lru.iter().map(|l| l.statics as usize).sum()
    }

    /// Learned (not static) entries held for `port`.
    pub fn port_learned(&self, port: PortId) -> usize {
        self.lru.get(port.index()).map_or(0, |l| l.len as usize)
    }

    /// Entries (learned and static) held for `port`.
    pub fn port_len(&self, port: PortId) -> usize {
        self.lru
            .get(port.index())
            .map_or(0, |l| (l.len + l.statics) as usize)
    }

    /// Changes the ageing time; entries older than it go at the next [`PortTable::expire`].
    pub fn set_ageing(&mut self, ageing: u32) {
        self.ageing = ageing;
    }

    /// Changes the capacity (at least 1), evicting learned entries fairly if the table is now
    /// over it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = clamp_capacity(capacity);
        while self.map.len() > self.capacity && self.evict_one() {}
    }

    /// The port and value of `key`, and whether the entry is static. Looking up does not refresh
    /// the entry: only learning it again keeps it alive.
    pub fn get(&self, key: &K) -> Option<(PortId, V, bool)> {
        let e = &self.entries[*self.map.get(key)? as usize];
        Some((e.port, e.value, e.is_static))
    }

    /// Records that `key` has `value` behind `port` at `now`: a new entry (evicting one if the
    /// table is full), a refresh, or a move. Static entries stay as they are, and with a table
    /// full of them nothing is learned.
    pub fn learn(&mut self, key: K, value: V, port: PortId, now: Duration) {
        let now = secs(now);
        if let Some(&idx) = self.map.get(&key) {
            let entry = self.entries[idx as usize];
            if entry.is_static {
                return;
            }
            if entry.port == port && entry.value == value {
                if entry.seen != now {
                    self.unlink(idx);
                    self.entries[idx as usize].seen = now;
                    self.push_tail(idx);
                }
                return;
            }
            self.unlink(idx);
            let moved = &mut self.entries[idx as usize];
            moved.port = port;
            moved.value = value;
            moved.seen = now;
            self.push_tail(idx);
            self.counters.moved += 1;
            if entry.port != port {
                self.record(Change::Moved {
                    key,
                    from: entry.port,
                    to: port,
                });
            }
            return;
        }
        if !self.make_room() {
            return;
        }
        let idx = self.alloc(Entry {
            key,
            value,
            port,
            is_static: false,
            seen: now,
            prev: NIL,
            next: NIL,
        });
        self.map.insert(key, idx);
        self.push_tail(idx);
        self.counters.learned += 1;
        self.record(Change::Learned { key, value, port });
    }

    /// Removes every entry not seen for more than the ageing time; returns how many went. With
    /// time kept in whole seconds, an entry lives at least `ageing` and under `ageing + 1`
    /// seconds after it was last learned.
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
                let entry = self.entries[idx as usize];
                self.remove(idx);
                removed += 1;
                self.record(Change::Aged {
                    key: entry.key,
                    port: entry.port,
                });
            }
        }
        self.counters.expired += removed as u64;
        removed
    }

    /// Makes `key` a static entry with `value` on `port`, replacing whatever entry it had.
    pub fn add_static(&mut self, key: K, value: V, port: PortId) -> Result<(), TableFull> {
        if let Some(&idx) = self.map.get(&key) {
            self.remove(idx);
        } else if !self.make_room() {
            return Err(TableFull);
        }
        let idx = self.alloc(Entry {
            key,
            value,
            port,
            is_static: true,
            seen: 0,
            prev: NIL,
            next: NIL,
        });
        self.map.insert(key, idx);
        self.lru_mut(port).statics += 1;
        self.record(Change::Added { key, value, port });
        Ok(())
    }

    /// Removes the learned entries of `port`, or of every port; static entries stay. Returns how
    /// many went.
    pub fn flush(&mut self, port: Option<PortId>) -> usize {
        let entries = self.flush_quietly(port);
        if entries > 0 {
            self.record(Change::Flushed { port, entries });
        }
        entries
    }

    /// [`PortTable::flush`] without a journal record.
    fn flush_quietly(&mut self, port: Option<PortId>) -> usize {
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
    /// many went. The journal records nothing: the caller reports the port's removal.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let mut removed = self.flush_quietly(Some(port));
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

    /// Removes the entry for `key`; returns whether there was one.
    pub fn remove_key(&mut self, key: &K) -> bool {
        match self.map.get(key) {
            Some(&idx) => {
                let port = self.entries[idx as usize].port;
                self.remove(idx);
                self.record(Change::Deleted { key: *key, port });
                true
            }
            None => false,
        }
    }

    /// Every entry, in no particular order, with its age at `now`.
    pub fn rows(&self, now: Duration) -> impl Iterator<Item = Row<K, V>> + '_ {
        let now = secs(now);
        self.map.values().map(move |&idx| {
            let e = &self.entries[idx as usize];
            Row {
                key: e.key,
                value: e.value,
                port: e.port,
                age: (!e.is_static).then(|| now.saturating_sub(e.seen)),
            }
        })
    }

    /// Up to `max` entries from slab position `cursor` on, with their ages at `now`, and the
    /// position to go on from (`None` at the end). A dump in pieces, so a big table is listed
    /// between frames instead of all at once: entries added or removed between two pieces may
    /// be missed or not, every entry present throughout is listed exactly once.
    pub fn rows_from(
        &self,
        cursor: usize,
        max: usize,
        now: Duration,
        mut each: impl FnMut(Row<K, V>),
    ) -> Option<usize> {
        let now = secs(now);
        let mut listed = 0;
        for idx in cursor..self.entries.len() {
            if listed == max {
                return Some(idx);
            }
            let e = &self.entries[idx];
            // A free slot is on the free list, not in the map under its old key.
            if self.map.get(&e.key) != Some(&(idx as u32)) {
                continue;
            }
            each(Row {
                key: e.key,
                value: e.value,
                port: e.port,
                age: (!e.is_static).then(|| now.saturating_sub(e.seen)),
            });
            listed += 1;
        }
        None
    }

    /// Slots in the slab, used or free (to check that freed slots are reused).
    #[cfg(test)]
    pub(crate) fn slab_len(&self) -> usize {
        self.entries.len()
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
        let entry = self.entries[idx as usize];
        self.remove(idx);
        self.counters.evicted += 1;
        self.record(Change::Evicted {
            key: entry.key,
            port: entry.port,
        });
        true
    }

    fn lru_mut(&mut self, port: PortId) -> &mut Lru {
        if self.lru.len() <= port.index() {
            self.lru.resize(port.index() + 1, Lru::default());
        }
        &mut self.lru[port.index()]
    }

    fn alloc(&mut self, entry: Entry<K, V>) -> u32 {
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
