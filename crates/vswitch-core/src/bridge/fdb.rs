//! The forwarding database: which port each (VLAN, MAC) was last seen on, in a
//! [`PortTable`] (per-port LRU lists, ageing, fair eviction, static entries), with the marks
//! port security adds (sticky and locked entries) and MAC-move damping, which pins a MAC that
//! flaps between ports (a loop) to the port it came from.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use hashbrown::HashMap;

use super::PortId;
pub use super::table::{Change, Counters as FdbCounters, JOURNAL_CAP, TableFull};
use super::table::{PortTable, Row};
use crate::wire::MacAddr;

/// An entry's key: a MAC in a VLAN.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MacKey {
    pub vlan: u16,
    pub mac: MacAddr,
}

/// A change to the MAC table, as its journal records it.
pub type FdbChange = Change<MacKey, Mark>;

/// Fed to the hasher as one 64-bit word (the derived impl makes three calls), which is most of
/// a lookup's cost on the known-unicast path.
impl Hash for MacKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f] = self.mac.0;
        let [v0, v1] = self.vlan.to_be_bytes();
        state.write_u64(u64::from_be_bytes([v0, v1, a, b, c, d, e, f]));
    }
}

/// What kind of entry, besides learned or static.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mark {
    #[default]
    Plain,
    /// Learned on a `sticky` port: kept as a static entry.
    Sticky,
    /// An unknown source on a locked port with MAB: shown, aged, never used for forwarding,
    /// until an operator authorises it (a static entry replaces it).
    Locked,
}

/// One row of the table as shown to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: PortId,
    /// Seconds since the MAC was last seen; `None` for a static entry.
    pub age: Option<u32>,
    pub mark: Mark,
}

/// MAC-move damping: a MAC that moves away from its home (the port it was on before the first
/// move) more than `moves` times within `window` seconds is pinned to that home for `hold`
/// seconds. Moves back home do not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoveLimit {
    pub moves: u32,
    pub window: u32,
    pub hold: u32,
}

impl Default for MoveLimit {
    /// A host that really moves (a VM migrating, a bond failing over) moves a few times; a MAC
    /// in a loop moves thousands of times a second.
    fn default() -> Self {
        MoveLimit {
            moves: 10,
            window: 10,
            hold: 15,
        }
    }
}

/// The recent moves of one MAC.
#[derive(Clone, Copy, Debug)]
struct Moves {
    count: u32,
    since: Duration,
    /// Where the MAC was before the first of these moves.
    home: PortId,
    pinned_until: Option<Duration>,
}

/// Most MACs whose moves are tracked at once; past it new movers are not damped.
const MAX_TRACKED: usize = 65_536;

/// What learning a source did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Learned, refreshed or moved.
    Ok,
    /// The MAC is pinned to `home` for flapping: the frame must be dropped.
    Pinned { home: PortId },
    /// The MAC just moved past the limit and is now pinned to `home`; the frame must be dropped.
    Flapping { home: PortId },
}

/// The MAC learning table.
#[derive(Debug)]
pub struct Fdb {
    table: PortTable<MacKey, Mark>,
    move_limit: Option<MoveLimit>,
    moves: HashMap<MacKey, Moves>,
}

impl Fdb {
    /// A table holding at most `capacity` entries (1 to `u32::MAX - 1`) that expire after
    /// `ageing` seconds without traffic from their MAC, with MAC-move damping.
    pub fn new(capacity: usize, ageing: u32) -> Fdb {
        Fdb {
            table: PortTable::new(capacity, ageing),
            move_limit: Some(MoveLimit::default()),
            moves: HashMap::new(),
        }
    }

    /// MAC-move damping's limit; `None` turns it off (and forgets every pin).
    pub fn set_move_limit(&mut self, limit: Option<MoveLimit>) {
        if limit.is_none() {
            self.moves.clear();
        }
        self.move_limit = limit;
    }

    pub fn move_limit(&self) -> Option<MoveLimit> {
        self.move_limit
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    pub fn ageing(&self) -> u32 {
        self.table.ageing()
    }

    pub fn counters(&self) -> FdbCounters {
        self.table.counters()
    }

    /// Turns the journal of changes (learned, moved, aged, evicted, added, deleted, flushed)
    /// on or off: off, recording costs nothing.
    pub fn set_journal(&mut self, on: bool) {
        self.table.set_journal(on);
    }

    /// Hands the changes recorded since the last call to `each`, oldest first; returns how
    /// many were lost to [`JOURNAL_CAP`] since.
    pub fn drain_journal(&mut self, each: impl FnMut(FdbChange)) -> u64 {
        self.table.drain_journal(each)
    }

    /// Static entries in the table.
    pub fn static_len(&self) -> usize {
        self.table.static_len()
    }

    /// Learned (not static) entries held for `port`.
    pub fn port_learned(&self, port: PortId) -> usize {
        self.table.port_learned(port)
    }

    /// Entries (learned and static) held for `port`.
    pub fn port_len(&self, port: PortId) -> usize {
        self.table.port_len(port)
    }

    pub fn set_ageing(&mut self, ageing: u32) {
        self.table.set_ageing(ageing);
    }

    /// Changes the capacity, evicting learned entries fairly if the table is now over it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.table.set_capacity(capacity);
    }

    /// The port `mac` was last seen on in `vlan` (a locked entry does not count). Looking up
    /// does not refresh the entry: only traffic from the MAC keeps it alive.
    pub fn lookup(&self, vlan: u16, mac: MacAddr) -> Option<PortId> {
        match self.table.get(&MacKey { vlan, mac })? {
            (_, Mark::Locked, _) => None,
            (port, _, _) => Some(port),
        }
    }

    /// The entry of `mac` in `vlan`: its port, mark and whether it is static.
    pub fn get(&self, vlan: u16, mac: MacAddr) -> Option<(PortId, Mark, bool)> {
        self.table.get(&MacKey { vlan, mac })
    }

    /// Records that `mac` was seen as a source on `port` at `now`, unless MAC-move damping
    /// holds it to another port. The caller has checked that the address is learnable
    /// (unicast, not zero). `can_hold(home, entries)` says whether a port, now holding
    /// `entries` entries, may take the MAC in `vlan`: damping pins a MAC only to a home that
    /// may (one in the VLAN, learning, not locked, under its `max-macs`).
    pub fn learn(
        &mut self,
        vlan: u16,
        mac: MacAddr,
        port: PortId,
        now: Duration,
        can_hold: impl Fn(PortId, usize) -> bool,
    ) -> Learned {
        let key = MacKey { vlan, mac };
        // A locked entry is not where the MAC lives (it waits for authorisation), so leaving
        // it is no move.
        if let Some(limit) = self.move_limit
            && let Some((from, mark, false)) = self.table.get(&key)
            && from != port
            && mark != Mark::Locked
        {
            let learned = self.damp(key, limit, from, port, now, can_hold);
            if learned != Learned::Ok {
                return learned;
            }
        }
        self.table.learn(key, Mark::Plain, port, now);
        Learned::Ok
    }

    /// Counts a move of `key` from `from` to `to`; pins it to its home when it moves too often.
    /// Only moves away from home count, so the move that crosses the limit never comes from
    /// home, and a frame from home is never dropped.
    fn damp(
        &mut self,
        key: MacKey,
        limit: MoveLimit,
        from: PortId,
        to: PortId,
        now: Duration,
        can_hold: impl Fn(PortId, usize) -> bool,
    ) -> Learned {
        if self.moves.len() >= MAX_TRACKED && !self.moves.contains_key(&key) {
            return Learned::Ok;
        }
        let fresh = Moves {
            count: 0,
            since: now,
            home: from,
            pinned_until: None,
        };
        let track = self.moves.entry(key).or_insert(fresh);
        match track.pinned_until {
            Some(until) if now < until && to != track.home => {
                return Learned::Pinned { home: track.home };
            }
            Some(until) if now < until => return Learned::Ok,
            Some(_) => *track = fresh,
            None if now.saturating_sub(track.since) > Duration::from_secs(limit.window.into()) => {
                *track = fresh
            }
            None => {}
        }
        if to == track.home {
            return Learned::Ok;
        }
        track.count += 1;
        if track.count <= limit.moves {
            return Learned::Ok;
        }
        let home = track.home;
        if !can_hold(home, self.table.port_len(home)) {
            // Home can no longer take the MAC: count again from where it is now.
            *track = Moves { home: to, ..fresh };
            return Learned::Ok;
        }
        track.pinned_until = Some(now + Duration::from_secs(limit.hold.into()));
        self.table.learn(key, Mark::Plain, home, now);
        Learned::Flapping { home }
    }

    /// Forgets the moves of MACs whose home is `port` (its settings changed, so it may no
    /// longer be a place to pin them).
    pub fn forget_moves(&mut self, port: PortId) {
        self.moves.retain(|_, m| m.home != port);
    }

    /// Creates (or refreshes) a locked entry for an unknown source on a locked port with MAB;
    /// returns whether it is new. An entry learned on this port before it was locked becomes
    /// locked too (it waits for authorisation like any other); an entry the MAC has elsewhere
    /// is left alone.
    pub fn lock(&mut self, vlan: u16, mac: MacAddr, port: PortId, now: Duration) -> bool {
        let key = MacKey { vlan, mac };
        match self.table.get(&key) {
            Some((p, Mark::Locked, _)) if p == port => {
                self.table.learn(key, Mark::Locked, port, now);
                false
            }
            Some((p, _, false)) if p == port => {
                self.table.learn(key, Mark::Locked, port, now);
                true
            }
            Some(_) => false,
            None => {
                self.table.learn(key, Mark::Locked, port, now);
                self.table.get(&key).is_some()
            }
        }
    }

    /// Removes every entry not seen for more than the ageing time, and forgets moves past
    /// their window and pins past their hold; returns how many entries went.
    pub fn expire(&mut self, now: Duration) -> usize {
        if let Some(limit) = self.move_limit {
            let window = Duration::from_secs(limit.window.into());
            self.moves.retain(|_, m| match m.pinned_until {
                Some(until) => now < until,
                None => now.saturating_sub(m.since) <= window,
            });
        }
        self.table.expire(now)
    }

    /// Makes `mac` in `vlan` a static entry on `port`, replacing whatever entry it had.
    pub fn add_static(&mut self, vlan: u16, mac: MacAddr, port: PortId) -> Result<(), TableFull> {
        self.table
            .add_static(MacKey { vlan, mac }, Mark::Plain, port)
    }

    /// Makes `mac` in `vlan` a sticky entry on `port`: static, marked as learned on a sticky
    /// port.
    pub fn add_sticky(&mut self, vlan: u16, mac: MacAddr, port: PortId) -> Result<(), TableFull> {
        self.table
            .add_static(MacKey { vlan, mac }, Mark::Sticky, port)
    }

    /// Removes the learned entries of `port`, or of every port; static entries stay.
    pub fn flush(&mut self, port: Option<PortId>) -> usize {
        self.table.flush(port)
    }

    /// Removes every entry of `port`, static ones included, and the pins to it.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        self.forget_moves(port);
        self.table.remove_port(port)
    }

    /// Removes the entry for `mac` in `vlan`; returns whether there was one.
    pub fn remove_mac(&mut self, vlan: u16, mac: MacAddr) -> bool {
        self.table.remove_key(&MacKey { vlan, mac })
    }

    /// Up to `max` entries from `cursor` on, handed to `each`; where to go on from, or `None`
    /// at the end (see [`PortTable::rows_from`]).
    pub fn entries_from(
        &self,
        cursor: usize,
        max: usize,
        now: Duration,
        mut each: impl FnMut(FdbEntry),
    ) -> Option<usize> {
        self.table.rows_from(cursor, max, now, |r| {
            each(FdbEntry {
                vlan: r.key.vlan,
                mac: r.key.mac,
                port: r.port,
                age: r.age,
                mark: r.value,
            })
        })
    }

    /// Every entry, in no particular order, with its age at `now`.
    pub fn entries(&self, now: Duration) -> impl Iterator<Item = FdbEntry> + '_ {
        self.table.rows(now).map(|r: Row<MacKey, Mark>| FdbEntry {
            vlan: r.key.vlan,
            mac: r.key.mac,
            port: r.port,
            age: r.age,
            mark: r.value,
        })
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

    /// Learns with every port able to hold a pinned MAC.
    fn learn(fdb: &mut Fdb, vlan: u16, mac: MacAddr, port: PortId, now: Duration) -> Learned {
        fdb.learn(vlan, mac, port, now, |_, _| true)
    }

    #[test]
    fn learns_refreshes_and_moves() {
        let mut fdb = Fdb::new(16, 300);
        learn(&mut fdb, 0, mac(1), P0, t(0));
        assert_eq!((fdb.len(), fdb.counters().learned), (1, 1), "new");
        learn(&mut fdb, 0, mac(1), P0, t(1));
        assert_eq!(
            fdb.counters(),
            FdbCounters {
                learned: 1,
                ..FdbCounters::default()
            }
        );
        assert_eq!(fdb.entries(t(1)).next().unwrap().age, Some(0), "refreshed");
        assert_eq!(fdb.lookup(0, mac(1)), Some(P0));
        learn(&mut fdb, 0, mac(1), P1, t(2));
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1), "moved");
        assert_eq!((fdb.port_len(P0), fdb.port_len(P1)), (0, 1));
        let c = fdb.counters();
        assert_eq!((c.learned, c.moved, c.expired, c.evicted), (1, 1, 0, 0));
    }

    #[test]
    fn vlans_are_separate_keys() {
        let mut fdb = Fdb::new(16, 300);
        learn(&mut fdb, 10, mac(1), P0, t(0));
        learn(&mut fdb, 20, mac(1), P1, t(0));
        assert_eq!(fdb.lookup(10, mac(1)), Some(P0));
        assert_eq!(fdb.lookup(20, mac(1)), Some(P1));
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.counters().moved, 0);
    }

    #[test]
    fn ages_out_after_the_ageing_time_without_traffic() {
        let mut fdb = Fdb::new(16, 10);
        learn(&mut fdb, 0, mac(1), P0, t(0));
        learn(&mut fdb, 0, mac(2), P0, t(5));
        // Seen in second 0, it lives through second 10 (at least 10 s whatever the fraction).
        assert_eq!(fdb.expire(t(10)), 0);
        assert_eq!(fdb.expire(t(11)), 1);
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.lookup(0, mac(2)), Some(P0));
        // Traffic keeps an entry alive, and a refresh moves it behind younger ones.
        learn(&mut fdb, 0, mac(3), P0, t(12));
        learn(&mut fdb, 0, mac(2), P0, t(14));
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
        learn(&mut fdb, 0, mac(1), P0, t(0));
        for s in 1..=10 {
            assert_eq!(fdb.lookup(0, mac(1)), Some(P0), "at {s}");
            assert_eq!(fdb.expire(t(s)), 0);
        }
        assert_eq!(fdb.expire(t(11)), 1);
    }

    #[test]
    fn full_table_evicts_oldest_entry_of_the_biggest_port() {
        let mut fdb = Fdb::new(4, 300);
        learn(&mut fdb, 0, mac(100), P0, t(0));
        learn(&mut fdb, 0, mac(200), P1, t(1));
        learn(&mut fdb, 0, mac(1), P2, t(2));
        learn(&mut fdb, 0, mac(2), P2, t(3));
        // Full. P2 holds the most: its oldest (mac 1) goes, though P0's entry is older.
        learn(&mut fdb, 0, mac(3), P2, t(4));
        assert_eq!(fdb.len(), 4);
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.lookup(0, mac(100)), Some(P0));
        assert_eq!(fdb.counters().evicted, 1);
        // A newcomer on another port also evicts from the biggest port.
        learn(&mut fdb, 0, mac(300), P1, t(5));
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
            learn(&mut fdb, 0, mac(1_000_000 + i), P0, t(0));
            learn(&mut fdb, 0, mac(2_000_000 + i), P1, t(0));
        }
        let mut x: u32 = 0x9e37_79b9;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            learn(&mut fdb, 0, mac(x), P2, t(1 + step / 1000));
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
        learn(&mut fdb, 0, mac(1), P0, t(0));
        learn(&mut fdb, 0, mac(2), P1, t(0));
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb.lookup(0, mac(2)), Some(P1));
        assert_eq!(fdb.lookup(0, mac(1)), None);
    }

    #[test]
    fn remove_port_takes_only_its_entries() {
        let mut fdb = Fdb::new(16, 300);
        for i in 0..5 {
            learn(&mut fdb, 0, mac(i), P0, t(0));
            learn(&mut fdb, 0, mac(100 + i), P1, t(0));
        }
        assert_eq!(fdb.remove_port(P0), 5);
        assert_eq!(fdb.remove_port(P2), 0);
        assert_eq!(fdb.len(), 5);
        assert!((0..5).all(|i| fdb.lookup(0, mac(i)).is_none()));
        assert!((0..5).all(|i| fdb.lookup(0, mac(100 + i)) == Some(P1)));
        // Freed slots are reused rather than growing the slab.
        for i in 0..5 {
            learn(&mut fdb, 0, mac(200 + i), P2, t(1));
        }
        assert_eq!(fdb.table.slab_len(), 10);
    }

    #[test]
    fn remove_mac_and_entries_report_ages() {
        let mut fdb = Fdb::new(16, 300);
        learn(&mut fdb, 7, mac(1), P0, t(3));
        learn(&mut fdb, 0, mac(2), P1, t(5));
        let mut rows: Vec<_> = fdb.entries(t(10)).collect();
        rows.sort_by_key(|e| e.mac);
        assert_eq!(
            rows,
            vec![
                FdbEntry {
                    vlan: 7,
                    mac: mac(1),
                    port: P0,
                    age: Some(7),
                    mark: Mark::Plain,
                },
                FdbEntry {
                    vlan: 0,
                    mac: mac(2),
                    port: P1,
                    age: Some(5),
                    mark: Mark::Plain,
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
        learn(&mut fdb, 0, mac(1), P0, t(0));
        fdb.add_static(0, mac(1), P1).unwrap();
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1));
        learn(&mut fdb, 0, mac(1), P2, t(1));
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1), "learning leaves it");
        assert_eq!(fdb.counters().moved, 0);
        assert_eq!(fdb.expire(t(1000)), 0);
        assert_eq!(fdb.flush(None), 0);
        learn(&mut fdb, 0, mac(2), P1, t(1000));
        learn(&mut fdb, 0, mac(3), P1, t(1000));
        // Full: a newcomer evicts a learned entry, never the static one.
        learn(&mut fdb, 0, mac(4), P2, t(1000));
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
        learn(&mut fdb, 0, mac(4), P2, t(0));
        assert_eq!(
            (fdb.lookup(0, mac(4)), fdb.len()),
            (None, 2),
            "nothing to evict"
        );
        // Replacing an existing entry needs no room.
        fdb.add_static(0, mac(2), P0).unwrap();
        assert_eq!(fdb.lookup(0, mac(2)), Some(P0));
        assert_eq!(fdb.len(), 2);
    }

    #[test]
    fn flush_takes_learned_entries_of_one_port_or_all() {
        let mut fdb = Fdb::new(16, 300);
        for i in 0..3 {
            learn(&mut fdb, 0, mac(i), P0, t(0));
            learn(&mut fdb, 0, mac(10 + i), P1, t(0));
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
            learn(&mut fdb, 0, mac(i), P0, t(0));
        }
        for i in 0..4 {
            learn(&mut fdb, 0, mac(10 + i), P1, t(0));
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
                        learn(&mut fdb, 0, m, port, t(now));
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
                        learn(&mut fdb, 0, m, port, t(now));
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

    #[test]
    fn a_mac_that_flaps_is_pinned_to_where_it_came_from() {
        let mut fdb = Fdb::new(16, 300);
        fdb.set_move_limit(Some(MoveLimit {
            moves: 3,
            window: 10,
            hold: 5,
        }));
        learn(&mut fdb, 0, mac(1), P0, t(0));
        // A loop: the MAC bounces between the two looped ports.
        let bounces = [P1, P2, P1];
        for p in bounces {
            assert_eq!(learn(&mut fdb, 0, mac(1), p, t(1)), Learned::Ok);
        }
        assert_eq!(
            learn(&mut fdb, 0, mac(1), P2, t(1)),
            Learned::Flapping { home: P0 }
        );
        assert_eq!(fdb.lookup(0, mac(1)), Some(P0), "back home");
        assert_eq!(
            learn(&mut fdb, 0, mac(1), P1, t(2)),
            Learned::Pinned { home: P0 }
        );
        assert_eq!(
            learn(&mut fdb, 0, mac(1), P0, t(2)),
            Learned::Ok,
            "home refreshes"
        );
        // After the hold it may move again.
        fdb.expire(t(7));
        assert_eq!(learn(&mut fdb, 0, mac(1), P1, t(7)), Learned::Ok);
        assert_eq!(fdb.lookup(0, mac(1)), Some(P1));
    }

    #[test]
    fn moves_spread_over_more_than_the_window_are_not_damped() {
        let mut fdb = Fdb::new(16, 300);
        fdb.set_move_limit(Some(MoveLimit {
            moves: 2,
            window: 10,
            hold: 5,
        }));
        for (i, p) in [P0, P1, P0, P1, P0, P1].into_iter().enumerate() {
            assert_eq!(learn(&mut fdb, 0, mac(1), p, t(i as u64 * 6)), Learned::Ok);
        }
        fdb.set_move_limit(None);
        for i in 0..100 {
            let p = if i % 2 == 0 { P0 } else { P1 };
            assert_eq!(learn(&mut fdb, 0, mac(1), p, t(100)), Learned::Ok, "off");
        }
    }

    #[test]
    fn a_frame_from_home_is_never_dropped_for_flapping() {
        let mut fdb = Fdb::new(16, 300);
        fdb.set_move_limit(Some(MoveLimit {
            moves: 1,
            window: 10,
            hold: 5,
        }));
        learn(&mut fdb, 0, mac(1), P0, t(0));
        assert_eq!(learn(&mut fdb, 0, mac(1), P1, t(1)), Learned::Ok);
        // Back home: no move counted, learned there.
        assert_eq!(learn(&mut fdb, 0, mac(1), P0, t(1)), Learned::Ok);
        assert_eq!(
            learn(&mut fdb, 0, mac(1), P1, t(1)),
            Learned::Flapping { home: P0 }
        );
        // Pinned: the entry went while pinned and came back elsewhere; home still passes.
        assert!(fdb.remove_mac(0, mac(1)));
        assert_eq!(learn(&mut fdb, 0, mac(1), P2, t(2)), Learned::Ok);
        assert_eq!(learn(&mut fdb, 0, mac(1), P0, t(2)), Learned::Ok);
        assert_eq!(fdb.lookup(0, mac(1)), Some(P0));
        assert_eq!(
            learn(&mut fdb, 0, mac(1), P1, t(2)),
            Learned::Pinned { home: P0 }
        );
    }

    #[test]
    fn damping_pins_only_to_a_home_that_can_hold_the_mac() {
        let mut fdb = Fdb::new(16, 300);
        fdb.set_move_limit(Some(MoveLimit {
            moves: 1,
            window: 10,
            hold: 5,
        }));
        let not_p0 = |home: PortId, _: usize| home != P0;
        fdb.learn(0, mac(1), P0, t(0), not_p0);
        assert_eq!(fdb.learn(0, mac(1), P1, t(1), not_p0), Learned::Ok);
        // The limit is crossed but home cannot take the MAC: counting starts again from P2.
        assert_eq!(fdb.learn(0, mac(1), P2, t(1), not_p0), Learned::Ok);
        assert_eq!(fdb.lookup(0, mac(1)), Some(P2));
        assert_eq!(fdb.learn(0, mac(1), P1, t(1), not_p0), Learned::Ok);
        assert_eq!(
            fdb.learn(0, mac(1), P0, t(1), not_p0),
            Learned::Flapping { home: P2 }
        );
        // Forgetting a home's moves ends its pins.
        fdb.forget_moves(P2);
        assert_eq!(fdb.learn(0, mac(1), P1, t(2), not_p0), Learned::Ok);
    }

    #[test]
    fn leaving_a_locked_entry_is_no_move() {
        let mut fdb = Fdb::new(16, 300);
        fdb.set_move_limit(Some(MoveLimit {
            moves: 1,
            window: 10,
            hold: 5,
        }));
        for _ in 0..3 {
            fdb.lock(0, mac(1), P0, t(0));
            assert_eq!(learn(&mut fdb, 0, mac(1), P1, t(0)), Learned::Ok);
            assert!(fdb.remove_mac(0, mac(1)));
        }
    }

    #[test]
    fn the_journal_records_every_change_while_it_is_on() {
        let mut fdb = Fdb::new(2, 10);
        learn(&mut fdb, 0, mac(1), P0, t(0));
        let mut seen = Vec::new();
        assert_eq!(fdb.drain_journal(|c| seen.push(c)), 0);
        assert!(seen.is_empty(), "off: nothing recorded");

        fdb.set_journal(true);
        let key = |n| MacKey {
            vlan: 0,
            mac: mac(n),
        };
        learn(&mut fdb, 0, mac(1), P0, t(1)); // a refresh: no change
        learn(&mut fdb, 0, mac(1), P1, t(1));
        learn(&mut fdb, 0, mac(2), P1, t(1));
        learn(&mut fdb, 0, mac(3), P0, t(1)); // full: P1 holds the most, its oldest goes
        learn(&mut fdb, 0, mac(7), P0, t(1)); // full: a tie, the lower port's oldest goes
        fdb.add_static(0, mac(4), P2).unwrap(); // full again: P0 holds the most
        assert!(fdb.remove_mac(0, mac(4)));
        learn(&mut fdb, 0, mac(8), P0, t(1));
        fdb.flush(Some(P1));
        fdb.flush(Some(P0));
        learn(&mut fdb, 0, mac(5), P2, t(2));
        fdb.expire(t(20));
        learn(&mut fdb, 0, mac(6), P2, t(20));
        fdb.remove_port(P2);
        fdb.drain_journal(|c| seen.push(c));
        let learned = |n, port| Change::Learned {
            key: key(n),
            value: Mark::Plain,
            port,
        };
        assert_eq!(
            seen,
            [
                Change::Moved {
                    key: key(1),
                    from: P0,
                    to: P1
                },
                learned(2, P1),
                Change::Evicted {
                    key: key(1),
                    port: P1
                },
                learned(3, P0),
                Change::Evicted {
                    key: key(3),
                    port: P0
                },
                learned(7, P0),
                Change::Evicted {
                    key: key(7),
                    port: P0
                },
                Change::Added {
                    key: key(4),
                    value: Mark::Plain,
                    port: P2
                },
                Change::Deleted {
                    key: key(4),
                    port: P2
                },
                learned(8, P0),
                Change::Flushed {
                    port: Some(P1),
                    entries: 1
                },
                Change::Flushed {
                    port: Some(P0),
                    entries: 1
                },
                learned(5, P2),
                Change::Aged {
                    key: key(5),
                    port: P2
                },
                learned(6, P2),
            ],
            "removing a port is reported by its caller"
        );

        // Past the cap, changes are counted, not kept.
        let mut big = Fdb::new(JOURNAL_CAP + 10, 10);
        big.set_journal(true);
        for n in 0..JOURNAL_CAP as u32 + 10 {
            learn(&mut big, 0, mac(n), P0, t(0));
        }
        let mut kept = 0;
        assert_eq!(big.drain_journal(|_| kept += 1), 10);
        assert_eq!(kept, JOURNAL_CAP);
        assert_eq!(big.drain_journal(|_| kept += 1), 0, "drained");
    }

    #[test]
    fn locked_entries_wait_for_authorisation_and_never_forward() {
        let mut fdb = Fdb::new(16, 10);
        assert!(fdb.lock(0, mac(1), P0, t(0)));
        assert!(!fdb.lock(0, mac(1), P0, t(1)), "refreshed, not new");
        assert_eq!(fdb.lookup(0, mac(1)), None);
        assert_eq!(fdb.get(0, mac(1)), Some((P0, Mark::Locked, false)));
        learn(&mut fdb, 0, mac(2), P1, t(0));
        assert!(
            !fdb.lock(0, mac(2), P0, t(0)),
            "a MAC learned elsewhere stays"
        );
        fdb.add_static(0, mac(1), P0).unwrap();
        assert_eq!(fdb.get(0, mac(1)), Some((P0, Mark::Plain, true)));
        assert!(fdb.lock(0, mac(3), P0, t(0)));
        fdb.expire(t(20));
        assert_eq!(fdb.get(0, mac(3)), None, "locked entries age out");
    }

    #[test]
    fn sticky_entries_are_static_and_marked() {
        let mut fdb = Fdb::new(16, 10);
        fdb.add_sticky(0, mac(1), P0).unwrap();
        assert_eq!(fdb.flush(None), 0);
        fdb.expire(t(100));
        let e = fdb.entries(t(100)).next().unwrap();
        assert_eq!((e.age, e.mark), (None, Mark::Sticky));
        assert_eq!(learn(&mut fdb, 0, mac(1), P1, t(100)), Learned::Ok);
        assert_eq!(fdb.lookup(0, mac(1)), Some(P0), "not moved by learning");
    }

    #[test]
    fn a_dump_in_pieces_lists_every_entry_once() {
        let mut fdb = Fdb::new(1000, 300);
        for n in 0..500 {
            learn(&mut fdb, 0, mac(n), P0, t(0));
        }
        for n in (0..500).step_by(3) {
            fdb.remove_mac(0, mac(n));
        }
        fdb.add_static(5, mac(9999), P1).unwrap();
        let mut seen = Vec::new();
        let mut cursor = Some(0);
        let mut pieces = 0;
        while let Some(at) = cursor {
            cursor = fdb.entries_from(at, 64, t(3), |e| seen.push((e.vlan, e.mac, e.age)));
            pieces += 1;
        }
        assert_eq!(pieces, 6, "333 + 1 entries, 64 at a time");
        seen.sort();
        let mut all: Vec<_> = fdb.entries(t(3)).map(|e| (e.vlan, e.mac, e.age)).collect();
        all.sort();
        assert_eq!(seen, all);
        assert_eq!(seen.len(), 334);
    }
}
