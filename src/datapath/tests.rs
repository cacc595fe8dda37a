//! The frame path with in-memory ports: no mio loop, no root, time passed in.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::{Registry, Token};

use super::queue::QUEUE_FRAMES;
use super::taps::{Direction, Tap};
use super::*;
use crate::bridge::VlanMode;
use crate::port::{Caps, PortKind};
use crate::wire::VNET_HDR_LEN;
use impair::{Chance, Impair};

/// What a test sees of a port: frames to deliver to the switch, frames the switch sent, and
/// the error the next sends and receives fail with.
#[derive(Default)]
struct Wire {
    inbound: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    send_error: Option<i32>,
    recv_error: Option<i32>,
    /// The port is a ring its host empties ([`Port::queues_when_full`]).
    ring: bool,
}

struct MemPort {
    name: String,
    wire: Arc<Mutex<Wire>>,
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Dgram
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: true,
            polled: false,
        }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("an in-memory port has no carrier")
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wire = self.wire.lock().unwrap();
        if let Some(errno) = wire.recv_error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let frame = wire.inbound.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        buf[..frame.len()].copy_from_slice(&frame);
        Ok(frame.len())
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut wire = self.wire.lock().unwrap();
        if let Some(errno) = wire.send_error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        wire.sent.push(frame.to_vec());
        Ok(())
    }

    fn queues_when_full(&self) -> bool {
        self.wire.lock().unwrap().ring
    }

    fn register(&mut self, _: &Registry, _: Token) -> io::Result<()> {
        Ok(())
    }

    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}

const BCAST: [u8; 6] = [0xff; 6];

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// A frame as ports carry it: a zeroed virtio-net header, then Ethernet.
fn frame(dst: [u8; 6], src: [u8; 6], fill: u8) -> Vec<u8> {
    let mut f = vec![0; VNET_HDR_LEN];
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(VNET_HDR_LEN + 60, fill);
    f
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Rig {
    dp: Datapath,
    wires: Vec<Arc<Mutex<Wire>>>,
    ids: Vec<PortId>,
}

impl Rig {
    fn new(modes: Vec<VlanMode>) -> Rig {
        let mut dp = Datapath::new(BridgeConfig::default());
        let mut wires = Vec::new();
        let mut ids = Vec::new();
        for (i, mode) in modes.into_iter().enumerate() {
            let wire = Arc::new(Mutex::new(Wire::default()));
            let port = MemPort {
                name: format!("m{i}"),
                wire: Arc::clone(&wire),
            };
            ids.push(dp.add_port(Box::new(port), mode.into()).unwrap());
            wires.push(wire);
        }
        Rig { dp, wires, ids }
    }

    fn plain(n: usize) -> Rig {
        Rig::new(vec![VlanMode::All; n])
    }

    /// Port `i` receives `f`, and the datapath handles it at `now`.
    fn inject(&mut self, i: usize, f: &[u8], now: Duration) -> Serviced {
        self.wires[i].lock().unwrap().inbound.push_back(f.to_vec());
        self.dp.service(self.ids[i], 64, now)
    }

    fn sent(&self, i: usize) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.wires[i].lock().unwrap().sent)
    }

    fn stats(&self, i: usize) -> PortStats {
        self.dp.port_stats(self.ids[i]).unwrap()
    }
}

#[test]
fn floods_then_forwards_and_counts_both_sides() {
    let mut r = Rig::plain(3);
    let hello = frame(BCAST, mac(1), 1);
    let done = r.inject(0, &hello, ms(0));
    assert_eq!(
        done,
        Serviced {
            frames: 1,
            more: false
        }
    );
    assert_eq!(r.sent(1), std::slice::from_ref(&hello));
    assert_eq!(r.sent(2), [hello]);
    assert!(r.sent(0).is_empty(), "never back out of its own port");
    let reply = frame(mac(1), mac(2), 2);
    r.inject(1, &reply, ms(1));
    assert_eq!(r.sent(0), [reply]);
    assert!(r.sent(2).is_empty(), "a learned address is not flooded");
    assert_eq!((r.stats(0).rx_frames, r.stats(0).tx_frames), (1, 1));
    assert_eq!((r.stats(1).rx_frames, r.stats(1).tx_frames), (1, 1));
    assert_eq!((r.stats(2).tx_frames, r.stats(2).tx_bytes), (1, 60));
}

#[test]
fn the_budget_bounds_a_turn() {
    let mut r = Rig::plain(2);
    for i in 0..5 {
        r.wires[0]
            .lock()
            .unwrap()
            .inbound
            .push_back(frame(BCAST, mac(1), i));
    }
    let first = r.dp.service(r.ids[0], 3, ms(0));
    assert_eq!((first.frames, first.more), (3, true));
    let second = r.dp.service(r.ids[0], 3, ms(0));
    assert_eq!((second.frames, second.more), (2, false));
    assert_eq!(r.sent(1).len(), 5);
}

#[test]
fn egress_shaping_tags_for_a_trunk_and_untags_for_an_access_port() {
    let trunk: VlanMode = "trunk=10"
        .parse::<crate::config::PortSpec>()
        .unwrap()
        .settings
        .port
        .vlan;
    let mut r = Rig::new(vec![VlanMode::Access(10), trunk, VlanMode::Access(10)]);
    let hello = frame(BCAST, mac(1), 7);
    r.inject(0, &hello, ms(0));
    let tagged = &r.sent(1)[0];
    assert_eq!(tagged.len(), hello.len() + 4);
    let eth = &tagged[VNET_HDR_LEN..];
    assert_eq!(&eth[12..16], &[0x81, 0x00, 0x00, 10]);
    assert_eq!(&eth[16..], &hello[VNET_HDR_LEN + 12..]);
    assert_eq!(r.sent(2), [hello], "access to access: untouched");
}

#[test]
fn an_arp_reply_goes_back_out_of_the_asking_port() {
    let mut dp = Datapath::new(BridgeConfig {
        arp_suppress: true,
        ..BridgeConfig::default()
    });
    let wires: Vec<_> = (0..2)
        .map(|i| {
            let wire = Arc::new(Mutex::new(Wire::default()));
            let port = MemPort {
                name: format!("m{i}"),
                wire: Arc::clone(&wire),
            };
            dp.add_port(Box::new(port), PortConfig::default()).unwrap();
            wire
        })
        .collect();
    let arp = |dst: [u8; 6], op: u8, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]| {
        let mut f = vec![0; VNET_HDR_LEN];
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    };
    // Port 1's host announces 10.0.0.2; then port 0's host asks for it.
    wires[1]
        .lock()
        .unwrap()
        .inbound
        .push_back(arp(BCAST, 2, mac(2), [10, 0, 0, 2], [10, 0, 0, 9]));
    dp.service(PortId(1), 8, ms(0));
    wires[0].lock().unwrap().sent.clear();
    wires[0]
        .lock()
        .unwrap()
        .inbound
        .push_back(arp(BCAST, 1, mac(1), [10, 0, 0, 1], [10, 0, 0, 2]));
    dp.service(PortId(0), 8, ms(1));
    let answered = std::mem::take(&mut wires[0].lock().unwrap().sent);
    assert_eq!(answered.len(), 1);
    let eth = &answered[0][VNET_HDR_LEN..];
    assert_eq!((&eth[..6], &eth[6..12]), (&mac(1)[..], &mac(2)[..]));
    assert_eq!(eth[21], 2, "an ARP reply");
    assert!(wires[1].lock().unwrap().sent.is_empty(), "not flooded");
    // The announcement, flooded, and the reply.
    assert_eq!(dp.port_stats(PortId(0)).unwrap().tx_frames, 2);
}

#[test]
fn held_frames_leave_at_their_time_and_later_ones_wait_behind() {
    let mut r = Rig::plain(2);
    // Port 0 learns its MAC so unicast to it is forwarded.
    r.inject(0, &frame(BCAST, mac(1), 0), ms(0));
    r.sent(1);
    let held = frame(mac(1), mac(2), 1);
    assert!(r.dp.hold(r.ids[0], &held, ms(50)));
    assert_eq!(r.dp.next_release(), Some(ms(50)));
    // A frame forwarded meanwhile queues behind the held one: order is kept.
    let next = frame(mac(1), mac(2), 2);
    r.inject(1, &next, ms(10));
    assert!(r.sent(0).is_empty());
    r.dp.release(ms(49));
    assert!(r.sent(0).is_empty(), "not due yet");
    r.dp.release(ms(50));
    assert_eq!(r.sent(0), [held, next]);
    assert_eq!(r.dp.next_release(), None);
    assert_eq!(r.stats(0).tx_frames, 2);
    // With the queue empty again, frames go straight out.
    let direct = frame(mac(1), mac(2), 3);
    r.inject(1, &direct, ms(60));
    assert_eq!(r.sent(0), [direct]);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let mut r = Rig::plain(2);
    let f = frame(mac(1), mac(2), 0);
    let mut held = 0;
    while r.dp.hold(r.ids[0], &f, ms(100)) {
        held += 1;
        assert!(held <= queue::QUEUE_FRAMES, "the queue is bounded");
    }
    assert_eq!(held, queue::QUEUE_FRAMES);
    assert_eq!(r.stats(0).drops(DropReason::QueueFull), 1);
    r.dp.release(ms(100));
    assert_eq!(r.sent(0).len(), held);
}

#[test]
fn a_removed_port_takes_its_held_frames_with_it() {
    let mut r = Rig::plain(2);
    assert!(r.dp.hold(r.ids[1], &frame(mac(1), mac(2), 0), ms(5)));
    assert!(r.dp.remove_port(r.ids[1]).is_some());
    assert_eq!(r.dp.next_release(), None);
    r.dp.release(ms(5));
    assert!(r.sent(1).is_empty());
}

/// A frame a tap saw.
type Seen = (PortId, Direction, Vec<u8>);

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    port: Option<PortId>,
}

impl Tap for Recorder {
    fn wants(&self, port: PortId, _: Direction, _: Option<u16>) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    fn frame(&mut self, port: PortId, direction: Direction, frame: &[u8], _: Duration) {
        self.seen
            .lock()
            .unwrap()
            .push((port, direction, frame.to_vec()));
    }
}

#[test]
fn taps_see_frames_as_they_are_on_each_ports_wire() {
    let trunk: VlanMode = "trunk=10"
        .parse::<crate::config::PortSpec>()
        .unwrap()
        .settings
        .port
        .vlan;
    let mut r = Rig::new(vec![VlanMode::Access(10), trunk]);
    let rec = Recorder {
        port: Some(PortId(1)),
        ..Recorder::default()
    };
    let all = Recorder::default();
    let id = r.dp.taps_mut().attach(Box::new(rec.clone()));
    r.dp.taps_mut().attach(Box::new(all.clone()));
    let hello = frame(BCAST, mac(1), 9);
    r.inject(0, &hello, ms(0));
    let on_trunk = r.sent(1);
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen, [(PortId(1), Direction::Tx, on_trunk[0].clone())]);
    let everything = all.seen.lock().unwrap().clone();
    assert_eq!(everything.len(), 2);
    assert_eq!(everything[0], (PortId(0), Direction::Rx, hello.clone()));
    // Detached, it sees nothing more.
    assert!(r.dp.taps_mut().detach(id).is_some());
    r.inject(0, &hello, ms(1));
    assert_eq!(rec.seen.lock().unwrap().len(), 1);
    assert_eq!(all.seen.lock().unwrap().len(), 4);
}

#[test]
fn send_errors_become_counted_drops_or_a_dead_port() {
    let mut r = Rig::plain(3);
    r.wires[1].lock().unwrap().send_error = Some(libc::EAGAIN);
    r.wires[2].lock().unwrap().send_error = Some(libc::EIO);
    r.inject(0, &frame(BCAST, mac(1), 0), ms(0));
    assert_eq!(r.stats(1).drops(DropReason::TxFull), 1);
    assert_eq!(r.stats(2).drops(DropReason::LinkDown), 1);
    assert_eq!(r.dp.port_state(r.ids[2]), "link-down");
    assert_eq!(r.dp.take_dead(), None);
    r.wires[2].lock().unwrap().send_error = Some(libc::EBADFD);
    r.inject(0, &frame(BCAST, mac(1), 1), ms(1));
    let (id, why) = r.dp.take_dead().expect("a dead port");
    assert_eq!(id, r.ids[2]);
    assert!(why.contains("deleted"), "{why}");
    assert_eq!(r.stats(2).drops(DropReason::TxError), 1);
}

#[test]
fn a_port_that_fails_to_receive_is_reported_dead() {
    let mut r = Rig::plain(2);
    r.wires[1].lock().unwrap().recv_error = Some(libc::ENODEV);
    let done = r.dp.service(r.ids[1], 8, ms(0));
    assert!(!done.more);
    assert_eq!(r.dp.take_dead().map(|(id, _)| id), Some(r.ids[1]));
}

#[test]
fn a_full_port_keeps_its_held_frame_and_gets_it_later() {
    let mut r = Rig::plain(2);
    let f = frame(mac(1), mac(2), 4);
    assert!(r.dp.hold(r.ids[0], &f, ms(5)));
    r.wires[0].lock().unwrap().send_error = Some(libc::EAGAIN);
    r.dp.release(ms(5));
    assert!(r.sent(0).is_empty());
    assert_eq!(
        r.dp.next_release(),
        Some(ms(5) + RETRY_FULL),
        "retried later"
    );
    assert_eq!(r.stats(0).drops(DropReason::TxFull), 0, "kept, not dropped");
    r.wires[0].lock().unwrap().send_error = None;
    r.dp.release(ms(5) + RETRY_FULL);
    assert_eq!(r.sent(0), [f]);
    assert_eq!(r.dp.next_release(), None);
}

#[test]
fn a_full_ring_holds_frames_in_the_egress_queue_where_a_full_socket_drops_them() {
    let mut r = Rig::plain(3);
    r.wires[1].lock().unwrap().ring = true;
    for i in [1, 2] {
        r.wires[i].lock().unwrap().send_error = Some(libc::EAGAIN);
    }
    let f = frame(BCAST, mac(1), 7);
    r.inject(0, &f, ms(0));
    assert_eq!(r.stats(2).drops(DropReason::TxFull), 1, "a socket drops");
    assert_eq!(r.stats(1).drops(DropReason::TxFull), 0, "a ring holds");
    assert_eq!(r.dp.next_release(), Some(RETRY_FULL), "retried later");
    // Later frames queue behind it, up to the queue's bound.
    for _ in 1..QUEUE_FRAMES {
        r.inject(0, &f, ms(0));
    }
    assert_eq!(r.stats(1).drops(DropReason::QueueFull), 0);
    r.inject(0, &f, ms(0));
    assert_eq!(
        r.stats(1).drops(DropReason::QueueFull),
        1,
        "overflow counted"
    );
    r.wires[1].lock().unwrap().send_error = None;
    r.dp.release(RETRY_FULL);
    assert_eq!(r.sent(1).len(), QUEUE_FRAMES, "all held frames, in order");
    assert_eq!(r.stats(1).tx_frames, QUEUE_FRAMES as u64);
}

#[test]
fn a_ring_that_gets_room_takes_its_held_frames_when_it_is_ready_not_a_retry_later() {
    let mut r = Rig::plain(2);
    r.wires[1].lock().unwrap().ring = true;
    r.wires[1].lock().unwrap().send_error = Some(libc::EAGAIN);
    r.inject(0, &frame(BCAST, mac(1), 7), ms(0));
    r.inject(0, &frame(BCAST, mac(1), 8), ms(0));
    assert!(r.sent(1).is_empty());
    // Still full when it is ready: held on, no drop.
    r.dp.service(r.ids[1], 64, ms(0));
    assert!(r.sent(1).is_empty());
    // The host made room (a VM's kick makes the port ready): sent at once, in order, well
    // before the retry.
    r.wires[1].lock().unwrap().send_error = None;
    r.dp.service(r.ids[1], 64, ms(0));
    let fills: Vec<u8> = r.sent(1).iter().map(|f| f[VNET_HDR_LEN + 20]).collect();
    assert_eq!(fills, [7, 8]);
    assert_eq!(r.stats(1).drops(DropReason::QueueFull), 0);
}

#[test]
fn frames_too_short_for_their_headers_are_not_held() {
    let mut r = Rig::plain(1);
    assert!(!r.dp.hold(r.ids[0], &[0; VNET_HDR_LEN + 13], ms(1)));
    assert_eq!(r.dp.next_release(), None);
}

/// Impairment settings for one direction.
fn impaired(f: impl FnOnce(&mut Impair)) -> Impair {
    let mut i = Impair::default();
    f(&mut i);
    i
}

#[test]
fn a_tx_delay_holds_frames_until_their_time() {
    let mut r = Rig::plain(2);
    let tx = impaired(|i| i.delay = ms(50));
    let config = ImpairConfig {
        tx,
        ..ImpairConfig::default()
    };
    assert!(r.dp.set_edge(r.ids[1], true, config, Some(1)));
    let hello = frame(BCAST, mac(1), 1);
    r.inject(0, &hello, ms(10));
    assert!(r.sent(1).is_empty(), "held");
    assert_eq!(r.dp.next_release(), Some(ms(60)));
    r.dp.release(ms(59));
    assert!(r.sent(1).is_empty());
    r.dp.release(ms(60));
    assert_eq!(r.sent(1), [hello]);
    assert_eq!(r.dp.next_release(), None);
    let (_, rx, tx) = r.dp.impairment(r.ids[1]).unwrap();
    assert_eq!((rx.delayed, tx.delayed), (0, 1));
}

#[test]
fn tx_loss_drops_and_counts_and_duplicates_double() {
    let mut r = Rig::plain(3);
    let all = Chance::from_pct(100.0).unwrap();
    let lossy = ImpairConfig {
        tx: impaired(|i| i.loss = all),
        ..ImpairConfig::default()
    };
    let twice = ImpairConfig {
        tx: impaired(|i| i.duplicate = all),
        ..ImpairConfig::default()
    };
    r.dp.set_edge(r.ids[1], true, lossy, Some(1));
    r.dp.set_edge(r.ids[2], true, twice, Some(1));
    let hello = frame(BCAST, mac(1), 1);
    r.inject(0, &hello, ms(0));
    assert!(r.sent(1).is_empty());
    assert_eq!(r.stats(1).drops(DropReason::ImpairLoss), 1);
    // Nothing delays the copies: both leave at once.
    assert_eq!(r.sent(2), [hello.clone(), hello]);
}

#[test]
fn an_rx_delay_holds_frames_before_the_core_sees_them() {
    let mut r = Rig::plain(2);
    let config = ImpairConfig {
        rx: impaired(|i| i.delay = ms(20)),
        ..ImpairConfig::default()
    };
    r.dp.set_edge(r.ids[0], true, config, Some(1));
    let hello = frame(BCAST, mac(1), 1);
    r.inject(0, &hello, ms(0));
    assert!(r.sent(1).is_empty());
    assert_eq!(r.dp.bridge().fdb().len(), 0, "not learned yet");
    assert_eq!(r.dp.next_release(), Some(ms(20)));
    r.dp.release(ms(20));
    assert_eq!(r.sent(1), [hello]);
    assert_eq!(r.dp.bridge().fdb().len(), 1);
    assert_eq!(r.stats(0).rx_frames, 1);
}

#[test]
fn a_port_down_for_transmit_sends_nothing_but_still_receives() {
    let mut r = Rig::plain(2);
    r.dp.set_edge(r.ids[1], false, ImpairConfig::default(), None);
    r.inject(0, &frame(BCAST, mac(1), 1), ms(0));
    assert!(r.sent(1).is_empty());
    assert_eq!(r.stats(1).drops(DropReason::AdminDown), 1);
    let back = frame(mac(1), mac(2), 2);
    r.inject(1, &back, ms(1));
    assert_eq!(r.sent(0), [back]);
}

#[test]
fn impairment_overflow_is_bounded_by_the_limit() {
    let mut r = Rig::plain(2);
    let config = ImpairConfig {
        tx: impaired(|i| {
            i.delay = ms(100);
            i.limit = 3;
        }),
        ..ImpairConfig::default()
    };
    r.dp.set_edge(r.ids[1], true, config, Some(1));
    for n in 0..5 {
        r.inject(0, &frame(BCAST, mac(1), n), ms(0));
    }
    assert_eq!(r.stats(1).drops(DropReason::ImpairOverflow), 2);
    r.dp.release(ms(100));
    assert_eq!(r.sent(1).len(), 3);
}

#[test]
fn hairpin_sends_frames_back_out_of_their_own_port() {
    let mut r = Rig::plain(2);
    let hairpin = crate::bridge::PortConfig {
        flags: crate::bridge::PortFlags {
            hairpin: true,
            ..Default::default()
        },
        ..Default::default()
    };
    r.dp.bridge_mut().set_port_config(r.ids[0], hairpin);
    // Two stations behind port 0: a broadcast comes back, unicast between them too.
    let hello = frame(BCAST, mac(1), 1);
    r.inject(0, &hello, ms(0));
    assert_eq!(r.sent(0), std::slice::from_ref(&hello));
    assert_eq!(r.sent(1), [hello]);
    r.inject(0, &frame(BCAST, mac(3), 2), ms(0));
    r.sent(0);
    r.sent(1);
    let unicast = frame(mac(1), mac(3), 3);
    r.inject(0, &unicast, ms(1));
    assert_eq!(r.sent(0), [unicast]);
    assert!(r.sent(1).is_empty());
}

#[test]
fn untagging_never_bares_a_second_tag() {
    let trunk = |native| VlanMode::Trunk {
        vlans: Box::new("10,20".parse().unwrap()),
        native,
    };
    let mut r = Rig::new(vec![
        trunk(None),
        trunk(Some(10)),
        trunk(None),
        VlanMode::Access(10),
    ]);
    // Tagged 10 on a trunk, with a customer tag of VID 20 inside (QinQ).
    let mut f = vec![0; VNET_HDR_LEN];
    f.extend_from_slice(&BCAST);
    f.extend_from_slice(&mac(1));
    f.extend_from_slice(&[0x81, 0x00, 0x00, 10, 0x81, 0x00, 0x00, 20, 0x08, 0x00]);
    f.resize(VNET_HDR_LEN + 64, 0xab);
    r.inject(0, &f, ms(0));
    assert!(
        r.sent(1).is_empty(),
        "native: popping would leave it in VLAN 20"
    );
    assert!(r.sent(3).is_empty(), "access: likewise");
    assert_eq!(r.stats(1).drops(DropReason::VlanFiltered), 1);
    assert_eq!(r.sent(2), [f], "tagged trunk: as it came");
}
