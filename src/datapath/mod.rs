//! One frame's path through the switch, stage by stage, without the event loop: the reactor
//! says which port is ready and what time it is, the datapath does the rest. Testable with
//! in-memory ports, without a mio loop or root.
//!
//! | stage | where |
//! |---|---|
//! | 1. receive | [`Datapath::service`]: `Port::recv` into the one [`frame::FrameBuf`] |
//! | 2. ingress admission | [`crate::bridge::admission`] (malformed, VLAN classification) |
//! | 3. decision | [`crate::bridge::Bridge::ingress`]: learn, look up, [`Verdict`] |
//! | 4. taps | [`taps`]: copies for capture and mirrors, rx here and tx after shaping |
//! | 5. egress shaping | [`egress`]: VLAN tag, software checksum and segmentation |
//! | 6. egress queue | [`queue`]: per port, bounded, released by the loop's timer |
//! | 7. send | [`ports`]: `Port::send`, tx counters, errors to drops or removal |
//!
//! A frame dropped at stages 2-3 is counted on its ingress port by the core, at stages 5-7 on
//! its egress port here.

mod egress;
mod frame;
pub mod impair;
pub mod mirror;
mod ports;
pub mod queue;
pub mod taps;

use std::io;
use std::time::Duration;

use log::warn;

use crate::bridge::{
    Alert, Bridge, BridgeConfig, Change, DropReason, Egress, FdbChange, GuardEvent, LinkState,
    MacKey, Mark, PortConfig, PortId, PortStats, TooManyPorts, Verdict,
};
use crate::monitor::{Events, What};
use crate::port::Port;
use crate::wire::{ETHERNET_HEADER_LEN, VNET_HDR_LEN, VnetHeader, offload};
use egress::{InFlight, hold_copy};
use impair::{ImpairConfig, ImpairCounts, Impairer, port_seed};
use mirror::{Mirror, MirrorCounts, MirrorSpec};
use ports::{PortTable, Sent, Slot, describe_gone};
use taps::{CaptureCounts, Direction, Taps};

/// How long a port that was full when its held frames were due waits before they are tried
/// again.
pub const RETRY_FULL: Duration = Duration::from_millis(1);

/// What a turn of one port did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serviced {
    /// Frames read.
    pub frames: usize,
    /// The port may have more: it used its whole budget.
    pub more: bool,
}

/// The switch's frame path: the forwarding core, the ports, and the frame in flight.
pub struct Datapath {
    bridge: Bridge,
    ports: PortTable,
    out: InFlight,
    /// Scratch list of flood targets, kept to avoid allocating per frame.
    targets: Vec<(PortId, Egress)>,
    /// Port mirrors (their taps are in `out.taps`).
    mirrors: Vec<Mirror>,
    /// Events for monitors, while some watch.
    events: Events,
    /// Scratch list of MAC table changes, kept to avoid allocating per turn.
    changes: Vec<FdbChange>,
    /// Each port's state as monitors last heard it (by port number).
    states: Vec<Option<&'static str>>,
}

impl Datapath {
    pub fn new(config: BridgeConfig) -> Datapath {
        Datapath {
            bridge: Bridge::new(config),
            ports: PortTable::default(),
            out: InFlight::new(),
            targets: Vec::new(),
            mirrors: Vec::new(),
            events: Events::default(),
            changes: Vec::new(),
            states: Vec::new(),
        }
    }

    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    pub fn bridge_mut(&mut self) -> &mut Bridge {
        &mut self.bridge
    }

    /// Capture and mirror taps.
    pub fn taps_mut(&mut self) -> &mut Taps {
        &mut self.out.taps
    }

    /// Attaches a port with `config`; it forwards from its next frame. (The [`Switch`] also
    /// registers it with the loop: attach ports through it.)
    ///
    /// [`Switch`]: crate::switch::Switch
    pub(crate) fn add_port(
        &mut self,
        port: Box<dyn Port>,
        config: PortConfig,
    ) -> Result<PortId, TooManyPorts> {
        let id = self.bridge.attach(config)?;
        self.ports.insert(id, Slot::new(port));
        Ok(id)
    }

    /// Detaches a port: its MAC entries and held frames are forgotten, and the port is returned
    /// (dropping it closes it).
    pub(crate) fn remove_port(&mut self, id: PortId) -> Option<Box<dyn Port>> {
        self.collect_events();
        if let Some(seen) = self.states.get_mut(id.index()) {
            *seen = None;
        }
        let slot = self.ports.remove(id)?;
        let gone: Vec<String> = self
            .mirrors
            .iter()
            .filter(|m| m.spec.to == id || m.spec.from == [id])
            .map(|m| m.spec.name.clone())
            .collect();
        for name in gone {
            self.remove_mirror(&name);
        }
        for m in &mut self.mirrors {
            m.spec.from.retain(|&p| p != id);
        }
        self.bridge.remove_port(id);
        self.out.after.held.retain(|&p| p != id);
        self.out.after.rx_held.retain(|&p| p != id);
        self.out.after.dead.retain(|&(p, _)| p != id);
        Some(slot.port)
    }

    /// Attached ports in increasing order.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.bridge.ports()
    }

    pub fn port(&self, id: PortId) -> Option<&dyn Port> {
        self.ports.get(id).map(|s| &*s.port)
    }

    pub fn port_mut(&mut self, id: PortId) -> Option<&mut dyn Port> {
        Some(&mut *self.ports.get_mut(id)?.port)
    }

    /// The number of the attached port called `name`.
    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports()
            .find(|&id| self.port(id).is_some_and(|p| p.name() == name))
    }

    /// The port's name, or its number if it is gone.
    pub fn port_name(&self, id: PortId) -> String {
        self.port(id)
            .map_or_else(|| id.to_string(), |p| p.name().to_owned())
    }

    /// The port's state: `up`; `admin-down`, `rx-down` or `tx-down` as its `link` setting
    /// says; `link-down` (its last send found the link down), or the port's own word when it
    /// waits for a peer (`down`, `waiting`).
    pub fn port_state(&self, id: PortId) -> &'static str {
        let link = self.bridge.port_config(id).map(|c| c.link);
        match self.ports.get(id) {
            Some(_) if link == Some(LinkState::Down) => "admin-down",
            Some(_) if link == Some(LinkState::RxDown) => "rx-down",
            Some(_) if link == Some(LinkState::TxDown) => "tx-down",
            Some(slot) if slot.port.state() != "up" => slot.port.state(),
            Some(slot) if slot.link_down => "link-down",
            Some(_) => "up",
            None => "gone",
        }
    }

    /// The port's counters, both directions.
    pub fn port_stats(&self, id: PortId) -> Option<PortStats> {
        let rx = self.bridge.counters(id)?;
        let slot = self.ports.get(id)?;
        let mut stats = PortStats::new(rx, &slot.tx);
        stats.add_drops(&slot.rx_edge);
        Some(stats)
    }

    /// What live captures did with the port's frames.
    pub fn capture_counts(&self, id: PortId) -> Option<CaptureCounts> {
        Some(self.ports.get(id)?.capture)
    }

    /// Adds what a capture did with the port's frames since it last said.
    pub fn count_capture(&mut self, id: PortId, captured: u64, dropped: u64) {
        if let Some(slot) = self.ports.get_mut(id) {
            slot.capture.captured += captured;
            slot.capture.dropped += dropped;
        }
    }

    /// Applies the edge's share of a port's settings: whether frames may be sent to its host
    /// (`tx_on`), and its impairment, seeded by its own seed, else `seed`, else at random. An
    /// impairment that did not change keeps its state (rate clock, random sequence, counts);
    /// frames already held keep their times. Returns whether the port exists.
    pub fn set_edge(
        &mut self,
        id: PortId,
        tx_on: bool,
        impair: ImpairConfig,
        seed: Option<u64>,
    ) -> bool {
        let Some(slot) = self.ports.get_mut(id) else {
            return false;
        };
        slot.tx_off = !tx_on;
        if slot.impair != impair {
            let seed = impair.seed.or(seed);
            let name = slot.port.name().to_owned();
            let make = |config: impair::Impair, direction: &str| {
                config.is_active().then(|| {
                    let seed = seed.map(|s| port_seed(s, &name, direction));
                    Box::new(Impairer::new(config, seed))
                })
            };
            slot.rx_impair = make(impair.rx, "rx");
            slot.tx_impair = make(impair.tx, "tx");
            slot.impair = impair;
        }
        true
    }

    /// The port's impairment settings and what each direction did (`rx`, `tx`).
    pub fn impairment(&self, id: PortId) -> Option<(ImpairConfig, ImpairCounts, ImpairCounts)> {
        let slot = self.ports.get(id)?;
        let counts = |i: &Option<Box<Impairer>>| i.as_ref().map(|i| i.counts).unwrap_or_default();
        Some((
            slot.impair,
            counts(&slot.rx_impair),
            counts(&slot.tx_impair),
        ))
    }

    /// Stages 1 to 7 for up to `budget` frames from port `id` at `now` (time since the switch
    /// started). A port whose receive fails for good is put on [`Datapath::take_dead`].
    pub fn service(&mut self, id: PortId, budget: usize, now: Duration) -> Serviced {
        // The port is out of its slot while its frames are handled, so the others can be
        // borrowed; a frame goes back out of the port it came in on only as a reply or in
        // hairpin mode, through the slot in hand.
        let Some(mut slot) = self.ports.take(id) else {
            return Serviced {
                frames: 0,
                more: false,
            };
        };
        if slot.tx_impair.is_none() && !slot.queue.is_empty() {
            self.retry_held(id, &mut slot, now);
        }
        let mut done = Serviced {
            frames: 0,
            more: true,
        };
        for _ in 0..budget {
            match slot.port.recv(self.out.buf.recv_area()) {
                Ok(n) => {
                    self.out.buf.received(n);
                    if slot.rx_impair.is_some() {
                        self.impair_rx(id, &mut slot, now);
                    } else {
                        self.handle_frame(id, &mut slot, now);
                    }
                    done.frames += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    done.more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    slot.rx_edge.count_drop(DropReason::Tunnel);
                }
                Err(e) => {
                    self.out.after.dead.push((id, describe_gone(&e)));
                    done.more = false;
                    break;
                }
            }
        }
        self.ports.put(id, slot);
        if !self.mirrors.is_empty() {
            self.send_mirrored(now);
        }
        done
    }

    /// Adds a mirror: copies of what `spec.from` receive or send go out of `spec.to`, which
    /// becomes output-only. The ports must be attached, the output not a source, and the name
    /// new.
    pub fn add_mirror(&mut self, spec: MirrorSpec) -> Result<(), String> {
        if self.mirrors.iter().any(|m| m.spec.name == spec.name) {
            return Err(format!("a mirror named {:?} exists", spec.name));
        }
        if spec.from.contains(&spec.to) {
            return Err("a mirror's output cannot be one of its sources".to_owned());
        }
        if let Some(m) = self.mirrors.iter().find(|m| m.spec.from.contains(&spec.to)) {
            return Err(format!(
                "that output port is a source of mirror {}",
                m.spec.name
            ));
        }
        if let Some(m) = self.mirrors.iter().find(|m| spec.from.contains(&m.spec.to)) {
            return Err(format!("a source is the output of mirror {}", m.spec.name));
        }
        let Some(mut config) = self.bridge.port_config(spec.to).cloned() else {
            return Err("the output port is not attached".to_owned());
        };
        config.mirror_dest = true;
        self.bridge.set_port_config(spec.to, config);
        let (mut mirror, tap) = Mirror::new(spec);
        mirror.tap = self.out.taps.attach(tap);
        self.mirrors.push(mirror);
        Ok(())
    }

    /// Removes the mirror `name`; its output port takes frames again unless another mirror
    /// still sends there. Returns whether there was one.
    pub fn remove_mirror(&mut self, name: &str) -> bool {
        let Some(at) = self.mirrors.iter().position(|m| m.spec.name == name) else {
            return false;
        };
        let mirror = self.mirrors.swap_remove(at);
        self.out.taps.detach(mirror.tap);
        let to = mirror.spec.to;
        if !self.mirrors.iter().any(|m| m.spec.to == to)
            && let Some(mut config) = self.bridge.port_config(to).cloned()
        {
            config.mirror_dest = false;
            self.bridge.set_port_config(to, config);
        }
        true
    }

    /// The mirrors with what each sent and dropped.
    pub fn mirrors(&self) -> impl Iterator<Item = (&MirrorSpec, MirrorCounts)> + '_ {
        self.mirrors.iter().map(|m| (&m.spec, m.counts()))
    }

    /// Sends the mirrored copies queued while frames were handled (finished in software for
    /// an output port without offloads).
    fn send_mirrored(&mut self, now: Duration) {
        let mut scratch = Vec::new();
        for m in &self.mirrors {
            if !m.has_copies() {
                continue;
            }
            let copies = m.take();
            let Some(slot) = self.ports.get_mut(m.spec.to) else {
                m.count(0, copies.len() as u64);
                continue;
            };
            let offloads = slot.port.caps().offloads;
            let before = (slot.tx.frames, copies.len() as u64);
            let mut gone = None;
            for copy in &copies {
                let mut send = |frame: &[u8]| {
                    if gone.is_none()
                        && let Sent::Gone(why) = slot.transmit(frame, now, false)
                    {
                        gone = Some(why);
                    }
                };
                if offloads || VnetHeader::new_unchecked(&copy[..]).is_complete() {
                    send(copy);
                } else {
                    let _ = offload::finish(copy, &mut scratch, &mut send);
                }
            }
            let sent = slot.tx.frames - before.0;
            m.count(sent, before.1.saturating_sub(sent));
            if let Some(why) = gone {
                self.out.after.dead.push((m.spec.to, why));
            }
        }
    }

    fn handle_frame(&mut self, ingress: PortId, slot: &mut Slot, now: Duration) {
        let verdict = self.bridge.ingress(ingress, self.out.buf.eth(), now);
        if !self.out.taps.is_empty() {
            let vlan = match &verdict {
                Verdict::Forward { vlan, .. }
                | Verdict::Flood { vlan, .. }
                | Verdict::Reply { vlan, .. } => Some(*vlan),
                _ => None,
            };
            self.out
                .taps
                .copy(ingress, Direction::Rx, vlan, self.out.buf.frame(), now);
        }
        match verdict {
            Verdict::Forward { port, vlan, egress } => {
                self.forward(ingress, slot, port, vlan, egress, now)
            }
            Verdict::Flood { vlan, kind } => {
                let mut targets = std::mem::take(&mut self.targets);
                targets.extend(self.bridge.flood(ingress, vlan, kind));
                for &(out, egress) in &targets {
                    self.forward(ingress, slot, out, vlan, egress, now);
                }
                targets.clear();
                self.targets = targets;
            }
            Verdict::Reply { vlan, frame } => {
                if let Some(egress) = self.bridge.egress(ingress, vlan) {
                    self.out.buf.load(frame.as_bytes());
                    self.out.send(slot, ingress, vlan, egress, now);
                }
            }
            Verdict::Guarded(event) => self.log_guard(slot, &event, now),
            Verdict::Alert(alert) => self.log_alert(slot, &alert, now),
            Verdict::Drop(_) => {}
        }
    }

    /// A frame from a port whose `rx-` impairment is on: its fate decided (per segment where
    /// needed) and its copies held in the port's receive queue until their time; the loop's
    /// timer hands them to the core then ([`Datapath::release`]).
    fn impair_rx(&mut self, id: PortId, slot: &mut Slot, now: Duration) {
        let Some(mut imp) = slot.rx_impair.take() else {
            return;
        };
        let mut held = false;
        self.out
            .each_wire_frame(slot, imp.config.per_segment(), |slot, frame| {
                let fate = imp.decide(frame.len().saturating_sub(VNET_HDR_LEN), now);
                if fate.copies == 0 {
                    slot.rx_edge.count_drop(DropReason::ImpairLoss);
                }
                for copy in 0..fate.copies {
                    let corrupt = fate.corrupt && copy == 0;
                    if hold_copy(&mut imp, &mut slot.rx_held, frame, &fate, corrupt) {
                        held = true;
                    } else {
                        slot.rx_edge.count_drop(DropReason::ImpairOverflow);
                    }
                }
            });
        slot.rx_impair = Some(imp);
        if held {
            self.out.after.note_rx_held(id);
        }
    }

    /// Sends the frame in flight to `out`; the ingress port (`slot`, out of the table while
    /// its frames are handled) is an output only in hairpin mode.
    fn forward(
        &mut self,
        ingress: PortId,
        slot: &mut Slot,
        out: PortId,
        vlan: u16,
        egress: Egress,
        now: Duration,
    ) {
        if out == ingress {
            self.out.send(slot, out, vlan, egress, now);
        } else if let Some(other) = self.ports.get_mut(out) {
            self.out.send(other, out, vlan, egress, now);
        }
    }

    /// Logs an ARP the guard dropped, and reports it to monitors, at most once per second per
    /// port.
    fn log_guard(&mut self, slot: &mut Slot, event: &GuardEvent, now: Duration) {
        let Some(count) = slot.guard_reports.hit(now) else {
            return;
        };
        let (mac, port) = event.holder;
        let binding = if event.is_static {
            "is statically bound to"
        } else {
            "belongs to"
        };
        let detail = format!(
            "dropped ARP from {} claiming {}, which {binding} {mac} on {}",
            event.arp.sender_mac,
            event.arp.sender_ip,
            self.port_name(port)
        );
        let name = slot.port.name();
        warn!("port {name}: ARP guard {detail}");
        self.events.push(What::Security {
            port: name.to_owned(),
            alert: "arp-guard".to_owned(),
            detail,
            count,
        });
    }

    /// Logs what port security or loop protection did, and reports it to monitors, at most
    /// once per second per port.
    fn log_alert(&mut self, slot: &mut Slot, alert: &Alert, now: Duration) {
        let Some(count) = slot.alert_reports.hit(now) else {
            return;
        };
        let name = slot.port.name();
        let (what, detail) = match *alert {
            Alert::MacLimit { limit, .. } => {
                let detail = format!(
                    "reached max-macs={limit}; frames from new sources are dropped (mac_limit)"
                );
                warn!("port {name}: {detail}");
                ("mac-limit", detail)
            }
            Alert::Locked { vlan, mac, .. } => {
                let detail = format!(
                    "locked port saw {mac} (VLAN {vlan}): a locked entry waits for \
                     `vswitchctl fdb add {name} {mac} {vlan}`"
                );
                warn!("port {name}: {detail}");
                ("locked", detail)
            }
            Alert::StormBlocked { kind, .. } => {
                let detail = format!(
                    "{} storm past its limit: the port is blocked (link=rx-down) until \
                     `vswitchctl port set {name} link=up`",
                    kind.name()
                );
                warn!("port {name}: {detail}");
                ("storm-blocked", detail)
            }
            Alert::MacFlap {
                vlan, mac, home, ..
            } => {
                let home = self.port_name(home);
                warn!(
                    "possible loop between {home} and {name}: {mac} (VLAN {vlan}) moves between \
                     them; pinned to {home} for a while, frames from it on {name} dropped \
                     (mac_flap)"
                );
                let detail = format!(
                    "possible loop: {mac} (VLAN {vlan}) moves between {home} and this port; \
                     pinned to {home}, frames from it here dropped (mac_flap)"
                );
                ("mac-flap", detail)
            }
        };
        self.events.push(What::Security {
            port: name.to_owned(),
            alert: what.to_owned(),
            detail,
            count,
        });
    }

    /// Reports what changed in the MAC table, and ports whose state changed, to monitors.
    /// Called by the loop once per turn while someone watches, and before a port goes (so its
    /// entries' changes still name it).
    pub fn collect_events(&mut self) {
        if !self.events.is_on() {
            return;
        }
        let mut changes = std::mem::take(&mut self.changes);
        let lost = self.bridge.drain_fdb_journal(|c| changes.push(c));
        self.events.add_lost(lost);
        for change in changes.drain(..) {
            let what = self.describe(change);
            self.events.push(what);
        }
        self.changes = changes;
        for id in self.bridge.ports().collect::<Vec<_>>() {
            let state = self.port_state(id);
            let seen = self.states.get_mut(id.index());
            match seen {
                Some(seen) if *seen != Some(state) => {
                    let known = seen.is_some();
                    *seen = Some(state);
                    if known {
                        let port = self.port_name(id);
                        self.events.push(What::Link {
                            port,
                            state: state.to_owned(),
                        });
                    }
                }
                Some(_) => {}
                None => {
                    self.states.resize(id.index() + 1, None);
                    self.states[id.index()] = Some(state);
                }
            }
        }
    }

    /// A MAC table change as a monitor event.
    fn describe(&self, change: FdbChange) -> What {
        let name = |id: PortId| self.port_name(id);
        let mac = |key: MacKey| (key.vlan, key.mac.to_string());
        match change {
            Change::Learned { key, value, port } => {
                let (vlan, mac) = mac(key);
                What::Learned {
                    port: name(port),
                    vlan,
                    mac,
                    locked: value == Mark::Locked,
                }
            }
            Change::Moved { key, from, to } => {
                let (vlan, mac) = mac(key);
                What::Moved {
                    vlan,
                    mac,
                    from: name(from),
                    to: name(to),
                }
            }
            Change::Aged { key, port } => {
                let (vlan, mac) = mac(key);
                What::Aged {
                    port: name(port),
                    vlan,
                    mac,
                }
            }
            Change::Evicted { key, port } => {
                let (vlan, mac) = mac(key);
                What::Evicted {
                    port: name(port),
                    vlan,
                    mac,
                }
            }
            Change::Added { key, value, port } => {
                let (vlan, mac) = mac(key);
                What::Added {
                    port: name(port),
                    vlan,
                    mac,
                    sticky: value == Mark::Sticky,
                }
            }
            Change::Deleted { key, port } => {
                let (vlan, mac) = mac(key);
                What::Deleted {
                    port: name(port),
                    vlan,
                    mac,
                }
            }
            Change::Flushed { port, entries } => What::Flushed {
                port: port.map(name),
                entries,
            },
        }
    }

    /// Events for `vswitchctl monitor`.
    pub fn events_mut(&mut self) -> &mut Events {
        &mut self.events
    }

    /// Starts or stops recording events (and the MAC table's journal) for monitors.
    pub fn set_monitoring(&mut self, on: bool) {
        self.events.set_on(on);
        self.bridge.set_fdb_journal(on);
        self.states.clear();
        if on {
            self.collect_events();
        }
    }

    /// Holds `frame` (virtio-net header + Ethernet, as it goes on `out`'s wire) in `out`'s
    /// egress queue until `release`; the loop sends it then ([`Datapath::release`]). A full
    /// queue drops it (counted `queue_full`). Returns whether it was held: not when the port is
    /// not attached (or is the one whose frames are being handled), nor when the frame is
    /// shorter than its headers.
    pub fn hold(&mut self, out: PortId, frame: &[u8], release: Duration) -> bool {
        if frame.len() < VNET_HDR_LEN + ETHERNET_HEADER_LEN {
            return false;
        }
        let Some(slot) = self.ports.get_mut(out) else {
            return false;
        };
        if slot.queue.push(frame, release).is_err() {
            slot.tx.count_drop(DropReason::QueueFull);
            return false;
        }
        self.out.after.note_held(out);
        true
    }

    /// When the next held frame is due, if any is held.
    pub fn next_release(&self) -> Option<Duration> {
        let after = &self.out.after;
        let tx = after
            .held
            .iter()
            .filter_map(|&id| self.ports.get(id)?.queue.next_release());
        let rx = after
            .rx_held
            .iter()
            .filter_map(|&id| self.ports.get(id)?.rx_held.next_release());
        tx.chain(rx).min()
    }

    /// Sends the held frames due at `now`, and hands the received frames an `rx-` impairment
    /// held to the core. A port that is full keeps its frame at the head of its queue and is
    /// tried again [`RETRY_FULL`] later.
    pub fn release(&mut self, now: Duration) {
        if !self.out.after.rx_held.is_empty() {
            self.release_received(now);
            if !self.mirrors.is_empty() {
                self.send_mirrored(now);
            }
        }
        let mut held = std::mem::take(&mut self.out.after.held);
        let dead = &mut self.out.after.dead;
        held.retain(|&id| {
            let Some(slot) = self.ports.get_mut(id) else {
                return false;
            };
            if let Some(why) = slot.send_held(now, now) {
                dead.push((id, why));
            }
            !slot.queue.is_empty()
        });
        self.out.after.held = held;
    }

    /// Sends what a ring port held when it was full, at once: the port is ready, so its host
    /// may have made room (a VM's kick when it adds receive buffers is the port's readiness).
    /// Only a port without `tx-` impairment: there, every held frame waits for room alone,
    /// none for its time.
    fn retry_held(&mut self, id: PortId, slot: &mut Slot, now: Duration) {
        if let Some(why) = slot.send_held(now + RETRY_FULL, now) {
            self.out.after.dead.push((id, why));
        }
    }

    /// Stages 2 to 7 for the received frames held by `rx-` impairment that are due at `now`.
    fn release_received(&mut self, now: Duration) {
        let ports = std::mem::take(&mut self.out.after.rx_held);
        let mut still = Vec::new();
        for id in ports {
            let Some(mut slot) = self.ports.take(id) else {
                continue;
            };
            let mut queue = std::mem::take(&mut slot.rx_held);
            queue.release(now, now, |frame| {
                self.out.buf.reload(frame);
                self.handle_frame(id, &mut slot, now);
                true
            });
            slot.rx_held = queue;
            if !slot.rx_held.is_empty() {
                still.push(id);
            }
            self.ports.put(id, slot);
        }
        for id in still {
            self.out.after.note_rx_held(id);
        }
    }

    /// The ports found gone since the last call, with why: the owner removes them.
    pub fn take_dead(&mut self) -> Option<(PortId, String)> {
        self.out.after.dead.pop()
    }

    /// Lets the ports without a file descriptor work at `now`; those with frames to deliver
    /// are added to `ready`. Returns when one wants to be ticked again, at the latest.
    pub fn tick_polled(&mut self, now: Duration, ready: &mut Vec<PortId>) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        for i in 0..self.ports.polled().len() {
            let id = self.ports.polled()[i];
            let Some(slot) = self.ports.get_mut(id) else {
                continue;
            };
            let tick = slot.port.tick(now);
            if tick.ready {
                ready.push(id);
            }
            next = match (next, tick.next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next.map(|d| now + d)
    }

    /// Whether any port has no file descriptor and must be ticked.
    pub fn has_polled(&self) -> bool {
        !self.ports.polled().is_empty()
    }

    /// Periodic housekeeping at `now`: expires MAC entries and ARP bindings. Returns how many
    /// MAC entries went.
    pub fn expire(&mut self, now: Duration) -> usize {
        self.bridge.tick(now)
    }
}

#[cfg(test)]
mod tests;
