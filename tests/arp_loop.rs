//! ARP handling and the switch's own address through the real reactor, without root: fake
//! socketpair ports, frames compared byte for byte.

mod fake;

use std::time::Duration;

use fake::{BCAST, Host, Switch, mac, pair};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Message, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
};
use vswitch::bridge::{BridgeConfig, DropReason, PortConfig, PortId};
use vswitch::config::OwnAddress;
use vswitch::port::PortKind;
use vswitch::wire::MacAddr;

fn arp(dst: [u8; 6], op: u8, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, op]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f
}

const IP1: [u8; 4] = [10, 0, 0, 1];
const IP2: [u8; 4] = [10, 0, 0, 2];
const OWN_IP: [u8; 4] = [10, 0, 0, 254];
const OWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

fn switch(configs: Vec<PortConfig>, bridge: BridgeConfig, own: bool) -> (Switch, Vec<Host>) {
    let (ports, hosts): (Vec<_>, Vec<_>) = configs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (p, h) = pair(&format!("p{i}"), false);
            ((p, c), h)
        })
        .unzip();
    let sw = Switch::start_custom(ports, bridge, |reactor| {
        if own {
            reactor
                .attach_own_address(&OwnAddress {
                    ips: vec!["10.0.0.254/24".parse().unwrap()],
                    mac: MacAddr(OWN_MAC),
                    vlan: 0,
                })
                .unwrap();
        }
    });
    (sw, hosts)
}

#[test]
fn a_suppressed_request_is_answered_on_the_requesters_port_only() {
    let bridge = BridgeConfig {
        arp_suppress: true,
        ..BridgeConfig::default()
    };
    let (sw, mut h) = switch(vec![PortConfig::default(); 3], bridge, false);
    // h1 answers someone: the switch learns 10.0.0.2 is at mac 2 behind p1.
    let teach = arp(mac(9), 2, mac(2), IP2, mac(9), [10, 0, 0, 9]);
    h[1].send(&teach);
    h[0].expect(&teach);
    h[2].expect(&teach);
    // h0 asks for 10.0.0.2: the switch answers as the Linux bridge would; nobody else hears.
    h[0].send(&arp(BCAST, 1, mac(1), IP1, [0; 6], IP2));
    h[0].expect(&arp(mac(1), 2, mac(2), IP2, mac(1), IP1));
    h[1].expect_silence();
    h[2].expect_silence();
    // A probe for the same address is never answered for someone else: it is flooded.
    let probe = arp(BCAST, 1, mac(1), [0; 4], [0; 6], IP2);
    h[0].send(&probe);
    h[1].expect(&probe);
    h[2].expect(&probe);
    h[0].expect_silence();
    let reactor = sw.finish();
    let c = reactor.bridge().arp().counters();
    assert_eq!(c.suppressed, 1);
    assert_eq!(reactor.port_stats(PortId(0)).unwrap().tx_frames, 2);
}

#[test]
fn the_guard_keeps_a_forgery_from_other_hosts() {
    let guarded = PortConfig {
        arp_guard: true,
        ..PortConfig::default()
    };
    let configs = vec![PortConfig::default(), PortConfig::default(), guarded];
    let (sw, mut h) = switch(configs, BridgeConfig::default(), false);
    let real = arp(BCAST, 1, mac(2), IP2, [0; 6], IP1);
    h[1].send(&real);
    h[0].expect(&real);
    h[2].expect(&real);
    // h2 claims 10.0.0.2 with its own MAC: dropped, nobody sees it.
    h[2].send(&arp(BCAST, 2, mac(3), IP2, [0xff; 6], IP2));
    h[0].expect_silence();
    h[1].expect_silence();
    let reactor = sw.finish();
    let b = reactor.bridge();
    assert_eq!(
        reactor
            .port_stats(PortId(2))
            .unwrap()
            .drops(DropReason::ArpGuard),
        1
    );
    assert_eq!(
        b.arp().lookup(0, IP2.into()),
        Some((MacAddr(mac(2)), PortId(1)))
    );
}

#[test]
fn the_switch_answers_arp_and_ping_for_its_own_address() {
    let (sw, mut h) = switch(
        vec![PortConfig::default(); 2],
        BridgeConfig::default(),
        true,
    );
    let request = arp(BCAST, 1, mac(1), IP1, [0; 6], OWN_IP);
    h[0].send(&request);
    h[1].expect(&request);
    let reply = h[0]
        .recv(Duration::from_secs(5))
        .expect("an ARP reply from the switch");
    assert_eq!(
        reply[..14],
        [&mac(1)[..], &OWN_MAC[..], &[0x08, 0x06]].concat()[..]
    );
    assert_eq!(reply[20..22], [0x00, 0x02], "an ARP reply");
    assert_eq!(reply[22..32], [&OWN_MAC[..], &OWN_IP[..]].concat()[..]);
    h[1].expect_silence();

    // An echo request to the switch's MAC gets an echo reply.
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0x77,
        seq_no: 3,
        data: b"hello switch",
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::from(IP1),
        dst_addr: Ipv4Address::from(OWN_IP),
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress(mac(1)),
        dst_addr: EthernetAddress(OWN_MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut packet = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet, &Default::default());
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
        &Default::default(),
    );
    h[0].send(&f);
    let reply = h[0].recv(Duration::from_secs(5)).expect("an echo reply");
    let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
    let packet = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(packet.src_addr(), Ipv4Address::from(OWN_IP));
    let icmp = Icmpv4Packet::new_checked(packet.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv4Message::EchoReply);
    assert_eq!(icmp.data(), b"hello switch");
    h[1].expect_silence();
    let reactor = sw.finish();
    let own = reactor.port_id("test").expect("the internal port");
    assert_eq!(reactor.port(own).unwrap().kind(), PortKind::Internal);
}
