//! The switch's own port (`--ip`): a smoltcp `Interface` attached to the bridge like any port,
//! the userspace counterpart of an address on `br0`. It answers ARP, IPv6 neighbour
//! discovery and ping for its addresses.
//!
//! It has no file descriptor: frames the switch sends it wait in a queue until the reactor
//! calls [`Port::tick`] with the time, which runs smoltcp; frames smoltcp sends wait in another
//! queue, and the reactor reads them like any port's. Nothing here blocks or reads a clock.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use mio::{Registry, Token};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr};

use super::{Caps, Port, PortKind, PortTick};
use crate::wire::{MacAddr, VNET_HDR_LEN};

/// Frames queued in each direction at most; more are dropped (the internal port is not on the
/// datapath, only ARP, ND and ping reach it).
const QUEUE: usize = 256;

/// Largest frame smoltcp handles: a standard Ethernet frame.
const MTU: usize = 1514;

/// Two queues of frames, as smoltcp's device.
#[derive(Default)]
struct Queues {
    /// From the switch to smoltcp.
    rx: VecDeque<Vec<u8>>,
    /// From smoltcp to the switch.
    tx: VecDeque<Vec<u8>>,
    /// Buffers to reuse.
    spare: Vec<Vec<u8>>,
}

impl Queues {
    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b
    }
}

struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct TxToken<'a>(&'a mut Queues);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = self.0.buffer();
        frame.resize(len, 0);
        let result = f(&mut frame);
        self.0.tx.push_back(frame);
        result
    }
}

impl phy::Device for Queues {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        // Nothing is taken in while answers could not be queued: the queue stays bounded.
        if self.tx.len() >= QUEUE {
            return None;
        }
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(self)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        (self.tx.len() < QUEUE).then_some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// The switch's own address, as a port.
pub struct InternalPort {
    name: String,
    mac: MacAddr,
    ips: Vec<IpCidr>,
    iface: Interface,
    queues: Queues,
    sockets: SocketSet<'static>,
    /// Frames dropped because a queue was full.
    dropped: u64,
}

impl InternalPort {
    /// A port called `name` (the switch's) with `mac` and the addresses `ips`.
    pub fn new(name: &str, mac: MacAddr, ips: &[IpCidr]) -> InternalPort {
        let mut queues = Queues::default();
        let config = Config::new(EthernetAddress(mac.0).into());
        let mut iface = Interface::new(config, &mut queues, Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            for ip in ips {
                // smoltcp holds a few addresses; the command line is checked against that.
                let _ = addrs.push(*ip);
            }
        });
        InternalPort {
            name: name.to_owned(),
            mac,
            ips: ips.to_vec(),
            iface,
            queues,
            sockets: SocketSet::new(Vec::new()),
            dropped: 0,
        }
    }

    pub fn mac(&self) -> MacAddr {
        self.mac
    }
}

/// Most addresses the switch's own port holds.
pub const MAX_ADDRS: usize = smoltcp::config::IFACE_MAX_ADDR_COUNT;

impl Port for InternalPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Internal
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: false,
            polled: true,
        }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("the switch's own port has no carrier; link=down drops frames only")
    }

    fn detail(&self) -> String {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        format!("the switch's own address {} at {}", ips.join(" "), self.mac)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(frame) = self.queues.tx.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let len = VNET_HDR_LEN + frame.len();
        buf[..VNET_HDR_LEN].fill(0);
        buf[VNET_HDR_LEN..len].copy_from_slice(&frame);
        self.queues.spare.push(frame);
        Ok(len)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if self.queues.rx.len() >= QUEUE {
            self.dropped += 1;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut copy = self.queues.buffer();
        copy.extend_from_slice(&frame[VNET_HDR_LEN..]);
        self.queues.rx.push_back(copy);
        Ok(())
    }

    fn tick(&mut self, now: Duration) -> PortTick {
        let now = Instant::from_micros(i64::try_from(now.as_micros()).unwrap_or(i64::MAX));
        self.iface.poll(now, &mut self.queues, &mut self.sockets);
        PortTick {
            ready: !self.queues.tx.is_empty(),
            next: self
                .iface
                .poll_delay(now, &self.sockets)
                .map(|d| Duration::from_micros(d.total_micros())),
        }
    }

    fn register(&mut self, _: &Registry, _: Token) -> io::Result<()> {
        Ok(())
    }

    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
        Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
    };

    const OWN: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);
    const HOST: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    fn port() -> InternalPort {
        InternalPort::new("sw", OWN, &["10.0.0.254/24".parse().unwrap()])
    }

    fn with_header(eth: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; VNET_HDR_LEN];
        f.extend_from_slice(eth);
        f
    }

    fn arp_request() -> Vec<u8> {
        let mut f = vec![0u8; 42];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        EthernetRepr {
            src_addr: EthernetAddress(HOST.0),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut eth);
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(HOST.0),
            source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address::new(10, 0, 0, 254),
        }
        .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        f
    }

    fn next_frame(p: &mut InternalPort) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let n = p
            .recv(&mut buf)
            .expect("a frame from the switch's own port");
        assert_eq!(&buf[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        buf[VNET_HDR_LEN..n].to_vec()
    }

    #[test]
    fn answers_arp_for_its_address_when_ticked() {
        let mut p = port();
        p.send(&with_header(&arp_request())).unwrap();
        assert!(p.recv(&mut [0u8; 2048]).is_err(), "nothing before the tick");
        assert!(p.tick(Duration::from_millis(1)).ready);
        let reply = next_frame(&mut p);
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(eth.src_addr(), EthernetAddress(OWN.0));
        assert_eq!(eth.dst_addr(), EthernetAddress(HOST.0));
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 {
            operation,
            source_protocol_addr,
            ..
        } = arp
        else {
            panic!("not Ethernet/IPv4 ARP");
        };
        assert_eq!(operation, ArpOperation::Reply);
        assert_eq!(source_protocol_addr, Ipv4Address::new(10, 0, 0, 254));
        assert!(!p.tick(Duration::from_millis(2)).ready);
    }

    #[test]
    fn answers_ping() {
        let mut p = port();
        // An echo request from 10.0.0.1 to 10.0.0.254, with the switch's MAC as destination.
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"ping",
        };
        let ip = Ipv4Repr {
            src_addr: Ipv4Address::new(10, 0, 0, 1),
            dst_addr: Ipv4Address::new(10, 0, 0, 254),
            next_header: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
        };
        let mut f = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        EthernetRepr {
            src_addr: EthernetAddress(HOST.0),
            dst_addr: EthernetAddress(OWN.0),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut packet = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut packet, &Default::default());
        icmp.emit(
            &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
            &Default::default(),
        );
        // The switch learns the host's MAC from the request itself? smoltcp asks by ARP
        // first if it does not know it, so teach it with an ARP request from the host.
        p.send(&with_header(&arp_request())).unwrap();
        p.tick(Duration::from_millis(1));
        let _arp_reply = next_frame(&mut p);
        p.send(&with_header(&f)).unwrap();
        assert!(p.tick(Duration::from_millis(2)).ready);
        let reply = next_frame(&mut p);
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
        let packet = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(packet.dst_addr(), Ipv4Address::new(10, 0, 0, 1));
        let icmp = Icmpv4Packet::new_checked(packet.payload()).unwrap();
        assert_eq!(icmp.msg_type(), smoltcp::wire::Icmpv4Message::EchoReply);
    }

    #[test]
    fn a_full_queue_drops_instead_of_growing() {
        let mut p = port();
        let f = with_header(&arp_request());
        for _ in 0..QUEUE {
            p.send(&f).unwrap();
        }
        assert_eq!(p.send(&f).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(p.dropped, 1);
    }
}
