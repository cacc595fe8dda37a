//! A VXLAN tunnel port (RFC 7348): Ethernet frames in UDP to remote VTEPs — other vswitchds,
//! Linux `vxlan` devices, Open vSwitch `type=vxlan` ports.
//!
//! The kernel's model: one port per local address and UDP port, carrying one VNI (its frames
//! untagged) or several (`VNI:VLAN`: each VNI is one VLAN of the port, tagged on the switch's
//! side, as on a trunk). Floods go to every remote (head-end replication); the inner source
//! MAC of what arrives is learned against the remote it came from, so known unicast goes to
//! that remote alone. Only the listed remotes are heard: anything else, and packets that are not
//! VXLAN or carry a VNI the port does not, are dropped and counted (`tunnel`).
//!
//! A frame that would not fit the underlay MTU with the encapsulation is dropped (`too_big`)
//! with a log line, never fragmented. The outer UDP source port is one of a few, chosen by a
//! hash of the inner flow, so an ECMP underlay spreads flows; the UDP checksum is zero over IPv4
//! (as the RFC recommends) and computed over IPv6.
//!
//! Speed comes from the kernel's UDP offloads. A TCP super-frame (TSO, from a TAP or a VM) is
//! cut into its segments here, each encapsulated, and the lot handed to the kernel in one
//! `sendmsg` with UDP GSO (`UDP_SEGMENT`; those datagrams carry a UDP checksum, which GSO
//! needs). On receive, UDP GRO hands over up to 64 KiB of one flow's packets in one read, split
//! here into frames.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Interest, Registry, Token};
use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt,
};

use super::{Caps, Port, PortKind, Vnis, VxlanTarget};
use crate::sys;
use crate::wire::coalesce::Merge;
use crate::wire::{ETHERNET_HEADER_LEN, MacAddr, VNET_HDR_LEN, VnetHeader, offload};

/// The VXLAN header: flags (I = a VNI is present), 3 reserved bytes, VNI, 1 reserved byte.
const HEADER_LEN: usize = 8;
const FLAG_VNI: u8 = 0x08;
/// Sending sockets, each with its own source port: the entropy an ECMP underlay hashes on.
const SOURCE_PORTS: usize = 8;
/// MACs learned behind remotes at most; past it, new ones are flooded until old ones age.
const MAX_MACS: usize = 65_536;
/// A MAC not heard from a remote for this long is flooded to every remote again.
const MAC_AGEING: Duration = Duration::from_secs(300);
/// Most UDP payload one GSO send carries (under the 64 KiB an IP packet can hold).
const GSO_BYTES: usize = 65_000;
/// Most datagrams one GSO send carries (the kernel's limit is 64 on older kernels).
const GSO_SEGMENTS: usize = 64;
/// Socket buffers: a burst of 64 KiB super-frames must not overflow them.
const SOCKET_BUFFER: usize = 8 << 20;
const TPID_8021Q: [u8; 2] = [0x81, 0x00];

/// Where a MAC was last heard from.
#[derive(Clone, Copy, Debug)]
struct Behind {
    remote: IpAddr,
    seen: Instant,
    /// Set by an operator (`fdb add ... --remote`): learning does not move it.
    is_static: bool,
}

/// Packets the port would not take, by why.
#[derive(Clone, Copy, Debug, Default)]
struct Rejected {
    not_vxlan: u64,
    unknown_vni: u64,
    unknown_remote: u64,
    too_big: u64,
}

pub struct VxlanPort {
    name: String,
    target: VxlanTarget,
    rx: mio::net::UdpSocket,
    /// Sending sockets for single datagrams (zero UDP checksum over IPv4).
    tx: Vec<UdpSocket>,
    /// Sending sockets for GSO batches (with checksums, which GSO needs).
    tx_gso: Vec<UdpSocket>,
    /// The kernel took a GSO send (cleared, and never tried again, when it refuses one).
    gso: bool,
    macs: HashMap<(u32, MacAddr), Behind>,
    /// The packet being sent, or what the last read brought (several packets with GRO).
    scratch: Vec<u8>,
    /// The part of `scratch` still to hand out, in packets of `gro_size` bytes, from `from`.
    pending: Range<usize>,
    gro_size: usize,
    from: SocketAddr,
    /// Segments of a super-frame, and the batch of packets made of them.
    segments: Vec<u8>,
    batch: Vec<u8>,
    rejected: Rejected,
}

impl VxlanPort {
    /// Binds the VTEP address and port, and the sending sockets.
    pub fn open(name: &str, target: &VxlanTarget) -> io::Result<VxlanPort> {
        let bind = SocketAddr::new(target.local, target.dstport);
        let rx = mio::net::UdpSocket::bind(bind).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => io::Error::new(
                e.kind(),
                format!(
                    "{bind} is in use (another vxlan port, or a kernel VXLAN device): one port \
                     per address carries several VNIs with vni=VNI:VLAN,..."
                ),
            ),
            io::ErrorKind::AddrNotAvailable => io::Error::new(
                e.kind(),
                format!("{} is not an address of this host (local=)", target.local),
            ),
            _ => e,
        })?;
        grow_buffer(&rx, sockopt::RcvBufForce, sockopt::RcvBuf);
        // What GRO gives is split here; without it (an old kernel), one datagram per read.
        let _ = socket::setsockopt(&rx, sockopt::UdpGroSegment, &true);
        let sender = |zero_checksum: bool| -> io::Result<UdpSocket> {
            let socket = UdpSocket::bind(SocketAddr::new(target.local, 0))?;
            socket.set_nonblocking(true)?;
            if zero_checksum && target.local.is_ipv4() {
                sys::udp::set_zero_checksum(socket.as_fd())?;
            }
            grow_buffer(&socket, sockopt::SndBufForce, sockopt::SndBuf);
            Ok(socket)
        };
        let tx = (0..SOURCE_PORTS)
            .map(|_| sender(true))
            .collect::<io::Result<_>>()?;
        let tx_gso = (0..SOURCE_PORTS)
            .map(|_| sender(false))
            .collect::<io::Result<_>>()?;
        Ok(VxlanPort {
            name: name.to_owned(),
            target: target.clone(),
            rx,
            tx,
            tx_gso,
            gso: target.gso,
            macs: HashMap::new(),
            scratch: vec![0; 1 << 16],
            pending: 0..0,
            gro_size: 0,
            from: bind,
            segments: Vec::new(),
            batch: Vec::new(),
            rejected: Rejected::default(),
        })
    }

    /// Reads the next datagram (or GRO batch of them) into `scratch`.
    fn read(&mut self) -> io::Result<()> {
        let mut iov = [IoSliceMut::new(&mut self.scratch)];
        let mut cmsg = nix::cmsg_space!(i32);
        let msg = socket::recvmsg::<SockaddrStorage>(
            self.rx.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let n = msg.bytes;
        let mut size = n;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(s) = c {
                    size = usize::try_from(s).unwrap_or(n).max(1);
                }
            }
        }
        let from = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(*v4))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
        });
        self.from = from.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
        self.pending = 0..n;
        self.gro_size = size;
        Ok(())
    }

    /// The VNI and the VLAN (on the switch's side) of a VNI this port carries.
    fn vni_vlan(&self, vni: u32) -> Option<Option<u16>> {
        match &self.target.vnis {
            Vnis::One(v) => (*v == vni).then_some(None),
            Vnis::Map(map) => map.iter().find(|(v, _)| *v == vni).map(|&(_, l)| Some(l)),
        }
    }

    /// The VNI a frame of `vlan` travels in (`None`: untagged).
    fn vni_of(&self, vlan: Option<u16>) -> Option<u32> {
        match (&self.target.vnis, vlan) {
            (Vnis::One(v), None) => Some(*v),
            (Vnis::Map(map), Some(vlan)) => map.iter().find(|(_, l)| *l == vlan).map(|&(v, _)| v),
            _ => None,
        }
    }

    fn learn(&mut self, vni: u32, mac: MacAddr, remote: IpAddr) {
        if !mac.is_learnable_source() {
            return;
        }
        let now = Instant::now();
        if self.macs.len() >= MAX_MACS && !self.macs.contains_key(&(vni, mac)) {
            self.macs
                .retain(|_, b| b.is_static || now.duration_since(b.seen) < MAC_AGEING);
            if self.macs.len() >= MAX_MACS {
                return;
            }
        }
        let entry = self.macs.entry((vni, mac)).or_insert(Behind {
            remote,
            seen: now,
            is_static: false,
        });
        if !entry.is_static {
            entry.remote = remote;
            entry.seen = now;
        }
    }

    /// The remote a unicast MAC was heard behind recently, if any.
    fn behind(&self, vni: u32, mac: MacAddr) -> Option<IpAddr> {
        let b = self.macs.get(&(vni, mac))?;
        (b.is_static || b.seen.elapsed() < MAC_AGEING).then_some(b.remote)
    }

    /// Counts a rejected packet and says so, once per kind.
    fn reject(
        &mut self,
        why: fn(&mut Rejected) -> &mut u64,
        what: impl FnOnce() -> String,
    ) -> io::Error {
        let count = why(&mut self.rejected);
        if *count == 0 {
            warn!(
                "port {}: dropping {} (counted as tunnel drops)",
                self.name,
                what()
            );
        }
        *count += 1;
        io::ErrorKind::InvalidData.into()
    }

    /// The next packet of what the last read brought.
    fn take_packet(&mut self) -> Range<usize> {
        let take = self.gro_size.min(self.pending.len());
        let packet = self.pending.start..self.pending.start + take;
        self.pending.start += take;
        packet
    }

    /// The frame in the packet at `packet` of `scratch`, from `self.from`, into `buf`.
    fn decapsulate(&mut self, packet: Range<usize>, buf: &mut [u8]) -> io::Result<usize> {
        let from = self.from;
        let remote = from.ip().to_canonical();
        if !self.target.remotes.contains(&remote) {
            return Err(self.reject(
                |r| &mut r.unknown_remote,
                || format!("UDP from {from}, which is not one of the port's remotes"),
            ));
        }
        let n = packet.len();
        let bytes = &self.scratch[packet.clone()];
        // As Linux does: the I flag alone, reserved fields zero (no extension is spoken).
        let plain =
            n >= HEADER_LEN && bytes[0] == FLAG_VNI && bytes[1..4] == [0, 0, 0] && bytes[7] == 0;
        if n < HEADER_LEN + ETHERNET_HEADER_LEN || !plain {
            return Err(self.reject(
                |r| &mut r.not_vxlan,
                || format!("{n} bytes from {from} that are not a VXLAN packet"),
            ));
        }
        let vni = u32::from_be_bytes([0, bytes[4], bytes[5], bytes[6]]);
        let Some(vlan) = self.vni_vlan(vni) else {
            return Err(self.reject(
                |r| &mut r.unknown_vni,
                || format!("VXLAN from {from} with VNI {vni}, which the port does not carry"),
            ));
        };
        let inner = packet.start + HEADER_LEN..packet.end;
        let src = MacAddr(
            self.scratch[inner.start + 6..inner.start + 12]
                .try_into()
                .unwrap_or_default(),
        );
        self.learn(vni, src, remote);
        let frame = &self.scratch[inner];
        buf[..VNET_HDR_LEN].fill(0);
        let out = &mut buf[VNET_HDR_LEN..];
        let len = match vlan {
            None => {
                out[..frame.len()].copy_from_slice(frame);
                frame.len()
            }
            Some(vlan) => {
                out[..12].copy_from_slice(&frame[..12]);
                out[12..14].copy_from_slice(&TPID_8021Q);
                out[14..16].copy_from_slice(&vlan.to_be_bytes());
                out[16..frame.len() + 4].copy_from_slice(&frame[12..]);
                frame.len() + 4
            }
        };
        Ok(VNET_HDR_LEN + len)
    }

    /// Appends the VXLAN packet of one complete frame (header + Ethernet) to `out`; returns
    /// its VNI, inner destination and length, or why it cannot go.
    fn encapsulate(
        &mut self,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<(u32, MacAddr, usize)> {
        let eth = frame.get(VNET_HDR_LEN..).unwrap_or_default();
        if eth.len() < ETHERNET_HEADER_LEN {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let tagged = eth[12..14] == TPID_8021Q && eth.len() >= ETHERNET_HEADER_LEN + 4;
        let mapped = matches!(self.target.vnis, Vnis::Map(_));
        let vlan = (mapped && tagged).then(|| u16::from_be_bytes([eth[14], eth[15]]) & 0x0fff);
        let Some(vni) = self.vni_of(vlan) else {
            // An untagged frame on a port with a VNI map has no VNI to go in.
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let inner_len = if vlan.is_some() {
            eth.len() - 4
        } else {
            eth.len()
        };
        if inner_len + self.target.overhead() > usize::from(self.target.mtu) {
            let (mtu, overhead) = (self.target.mtu, self.target.overhead());
            let _ = self.reject(
                |r| &mut r.too_big,
                || {
                    format!(
                        "a {inner_len}-byte frame: with {overhead} bytes of VXLAN encapsulation \
                         it does not fit the underlay MTU {mtu}; give the hosts an MTU of at \
                         most {} (or raise the underlay's and set mtu=)",
                        usize::from(mtu) - overhead - ETHERNET_HEADER_LEN
                    )
                },
            );
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let vni_bytes = vni.to_be_bytes();
        out.extend_from_slice(&[
            FLAG_VNI,
            0,
            0,
            0,
            vni_bytes[1],
            vni_bytes[2],
            vni_bytes[3],
            0,
        ]);
        if vlan.is_some() {
            out.extend_from_slice(&eth[..12]);
            out.extend_from_slice(&eth[16..]);
        } else {
            out.extend_from_slice(eth);
        }
        let dst = MacAddr(eth[..6].try_into().unwrap_or_default());
        Ok((vni, dst, HEADER_LEN + inner_len))
    }

    /// The one remote a frame for `dst` in `vni` goes to, if it is known behind one; else it
    /// goes to all of them.
    fn destination(&self, vni: u32, dst: MacAddr) -> Option<IpAddr> {
        (!dst.is_multicast())
            .then(|| self.behind(vni, dst))
            .flatten()
    }

    /// Sends the packets in `batch` (each `size` bytes but the last) to `one` remote, or to
    /// every remote: in one GSO send each where the kernel takes it, else one by one.
    fn send_batch(
        &mut self,
        one: Option<IpAddr>,
        batch: &[u8],
        size: usize,
        flow: usize,
    ) -> io::Result<()> {
        let mut result = Ok(());
        let count = if one.is_some() {
            1
        } else {
            self.target.remotes.len()
        };
        for i in 0..count {
            let remote = one.unwrap_or(self.target.remotes[i]);
            let to = SocketAddr::new(remote, self.target.dstport);
            let sent = if batch.len() > size && self.gso {
                let socket = &self.tx_gso[flow % self.tx_gso.len()];
                let segment = u16::try_from(size).unwrap_or(u16::MAX);
                let sent = socket::sendmsg(
                    socket.as_raw_fd(),
                    &[IoSlice::new(batch)],
                    &[ControlMessage::UdpGsoSegments(&segment)],
                    MsgFlags::empty(),
                    Some(&SockaddrStorage::from(to)),
                );
                match sent {
                    Err(
                        nix::errno::Errno::EINVAL
                        | nix::errno::Errno::EOPNOTSUPP
                        | nix::errno::Errno::EIO,
                    ) => {
                        info!(
                            "port {}: the kernel takes no UDP GSO; sending datagram by datagram",
                            self.name
                        );
                        self.gso = false;
                        self.send_each(to, batch, size, flow)
                    }
                    other => other.map(drop).map_err(io::Error::from),
                }
            } else {
                self.send_each(to, batch, size, flow)
            };
            if let Err(e) = sent {
                result = Err(e);
            }
        }
        result
    }

    /// Sends the packets in `batch` one datagram each.
    fn send_each(&self, to: SocketAddr, batch: &[u8], size: usize, flow: usize) -> io::Result<()> {
        let socket = &self.tx[flow % self.tx.len()];
        for packet in batch.chunks(size.max(1)) {
            socket.send_to(packet, to)?;
        }
        Ok(())
    }

    /// Sends a frame with offloads to finish (a TSO super-frame, a partial checksum): its
    /// segments, completed, encapsulated and batched for GSO.
    fn send_segments(&mut self, frame: &[u8], batch: &mut Vec<u8>) -> io::Result<()> {
        let mut segments = std::mem::take(&mut self.segments);
        let mut first: Option<(u32, MacAddr, usize, usize)> = None;
        let mut outcome = Ok(());
        let finished = offload::finish(frame, &mut segments, |segment| {
            if outcome.is_err() {
                return;
            }
            let start = batch.len();
            match self.encapsulate(segment, batch) {
                Ok((vni, dst, len)) => {
                    let (_, _, size, _) = *first.get_or_insert_with(|| {
                        (vni, dst, len, flow_hash(&batch[start + HEADER_LEN..]))
                    });
                    let count = batch.len().div_ceil(size);
                    // A batch holds equal packets, the last one maybe shorter: full, or this
                    // one shorter than the rest, it goes now.
                    if len != size || batch.len() + size > GSO_BYTES || count >= GSO_SEGMENTS {
                        let (vni, dst, size, flow) = first.unwrap_or((vni, dst, len, 0));
                        let one = self.destination(vni, dst);
                        outcome = self.send_batch(one, batch, size, flow);
                        batch.clear();
                    }
                }
                Err(e) => outcome = Err(e),
            }
        });
        self.segments = segments;
        if finished.is_err() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        if outcome.is_ok()
            && !batch.is_empty()
            && let Some((vni, dst, size, flow)) = first
        {
            let one = self.destination(vni, dst);
            outcome = self.send_batch(one, batch, size, flow);
        }
        outcome
    }
}

/// Asks for [`SOCKET_BUFFER`] bytes of socket buffer: past the system's limit as root (`force`),
/// else up to it.
fn grow_buffer<F, P>(socket: &impl AsFd, force: F, plain: P)
where
    F: socket::SetSockOpt<Val = usize>,
    P: socket::SetSockOpt<Val = usize>,
{
    if socket::setsockopt(socket, force, &SOCKET_BUFFER).is_err() {
        let _ = socket::setsockopt(socket, plain, &SOCKET_BUFFER);
    }
}

/// A hash of the inner frame's flow (addresses and, for TCP and UDP, ports): the same flow
/// always leaves from the same source port.
fn flow_hash(eth: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(eth.get(..12).unwrap_or_default());
    let l4 = match eth.get(12..14) {
        Some([0x08, 0x00]) if eth.len() >= 34 => {
            eat(&eth[26..34]);
            let ihl = usize::from(eth[14] & 0x0f) * 4;
            matches!(eth[23], 6 | 17).then_some(14 + ihl)
        }
        Some([0x86, 0xdd]) if eth.len() >= 54 => {
            eat(&eth[22..54]);
            matches!(eth[20], 6 | 17).then_some(54)
        }
        _ => None,
    };
    if let Some(at) = l4 {
        eat(eth.get(at..at + 4).unwrap_or_default());
    }
    (h ^ (h >> 32)) as usize
}

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: true,
            polled: false,
        }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("a VXLAN tunnel has no carrier; link=down drops frames only")
    }

    fn detail(&self) -> String {
        let t = &self.target;
        let vnis = match &t.vnis {
            Vnis::One(v) => format!("VNI {v}"),
            Vnis::Map(map) => {
                let items: Vec<String> = map.iter().map(|(v, l)| format!("{v}:{l}")).collect();
                format!("VNIs {}", items.join(","))
            }
        };
        let remotes: Vec<String> = t.remotes.iter().map(IpAddr::to_string).collect();
        let mut detail = format!(
            "{vnis} from {} to {} (port {}, underlay MTU {}, {} MACs behind remotes)",
            t.local,
            remotes.join(", "),
            t.dstport,
            t.mtu,
            self.macs.len()
        );
        let r = self.rejected;
        if r.not_vxlan + r.unknown_vni + r.unknown_remote + r.too_big > 0 {
            detail += &format!(
                "; dropped: {} not VXLAN, {} other VNIs, {} from unknown addresses, {} too big",
                r.not_vxlan, r.unknown_vni, r.unknown_remote, r.too_big
            );
        }
        detail
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            self.read()?;
        }
        let packet = self.take_packet();
        let header: [u8; HEADER_LEN] = self.scratch[packet.start..]
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .unwrap_or_default();
        let n = self.decapsulate(packet, buf)?;
        if self.pending.is_empty() {
            return Ok(n);
        }
        let Some(mut merge) = Merge::start(&buf[VNET_HDR_LEN..n]) else {
            return Ok(n);
        };
        // The rest of a GRO batch is mostly the same TCP flow's next segments: one frame for
        // the switch to decide on and a TAP to take in one write.
        let mut len = n - VNET_HDR_LEN;
        let tagged = matches!(self.target.vnis, Vnis::Map(_));
        while !self.pending.is_empty() {
            let next =
                self.pending.start..self.pending.start + self.gro_size.min(self.pending.len());
            if next.len() < HEADER_LEN
                || self.scratch[next.start..next.start + HEADER_LEN] != header
            {
                break;
            }
            let inner = &self.scratch[next.start + HEADER_LEN..next.end];
            let eth = if tagged {
                // As decapsulated: the VLAN's tag after the addresses.
                self.segments.clear();
                self.segments
                    .extend_from_slice(&inner[..12.min(inner.len())]);
                self.segments
                    .extend_from_slice(&buf[VNET_HDR_LEN + 12..VNET_HDR_LEN + 16]);
                self.segments
                    .extend_from_slice(inner.get(12..).unwrap_or_default());
                &self.segments[..]
            } else {
                inner
            };
            if !merge.append(&mut buf[VNET_HDR_LEN..], &mut len, eth) {
                break;
            }
            self.pending.start = next.end;
        }
        merge.finish(buf, len);
        Ok(VNET_HDR_LEN + len)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let header = VnetHeader::new_checked(frame).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        let result = if header.is_complete() {
            self.encapsulate(frame, &mut batch)
                .and_then(|(vni, dst, len)| {
                    let flow = flow_hash(&batch[HEADER_LEN..]);
                    let one = self.destination(vni, dst);
                    self.send_batch(one, &batch, len, flow)
                })
        } else {
            self.send_segments(frame, &mut batch)
        };
        self.batch = batch;
        result
    }

    fn remote_of(&self, vlan: u16, mac: MacAddr) -> Option<String> {
        let vlan = matches!(self.target.vnis, Vnis::Map(_)).then_some(vlan);
        let vni = self.vni_of(vlan)?;
        self.behind(vni, mac).map(|r| r.to_string())
    }

    fn set_remote(
        &mut self,
        vlan: u16,
        mac: MacAddr,
        remote: Option<IpAddr>,
    ) -> Result<(), String> {
        let mapped = matches!(self.target.vnis, Vnis::Map(_));
        let vni = self
            .vni_of(mapped.then_some(vlan))
            .ok_or_else(|| format!("port {} carries no VNI for VLAN {vlan}", self.name))?;
        match remote {
            Some(remote) if !self.target.remotes.contains(&remote) => Err(format!(
                "{remote} is not one of port {}'s remotes ({})",
                self.name,
                self.target
                    .remotes
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(remote) => {
                self.macs.insert(
                    (vni, mac),
                    Behind {
                        remote,
                        seen: Instant::now(),
                        is_static: true,
                    },
                );
                Ok(())
            }
            None => {
                self.macs.remove(&(vni, mac));
                Ok(())
            }
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.rx, token, Interest::READABLE)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(vnis: Vnis, remote: IpAddr, mtu: u16) -> VxlanTarget {
        VxlanTarget {
            local: "127.0.0.1".parse().unwrap(),
            remotes: vec![remote],
            vnis,
            dstport: 0,
            mtu,
            gso: true,
        }
    }

    fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, len: usize) -> Vec<u8> {
        let mut f = vec![0; VNET_HDR_LEN];
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        if let Some(vlan) = tag {
            f.extend_from_slice(&TPID_8021Q);
            f.extend_from_slice(&vlan.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(VNET_HDR_LEN + len, 0x5a);
        f
    }

    /// A port on loopback whose one remote is `peer`'s address (127.0.0.2 works on lo).
    fn port_and_peer(vnis: Vnis) -> (VxlanPort, UdpSocket) {
        // Both ends on one port number, as VTEPs are: the peer's is free on 127.0.0.2, and
        // the port binds it on 127.0.0.1.
        let peer = UdpSocket::bind("127.0.0.2:0").unwrap();
        let mut t = target(vnis, "127.0.0.2".parse().unwrap(), 1500);
        t.dstport = peer.local_addr().unwrap().port();
        let port = VxlanPort::open("vx", &t).unwrap();
        (port, peer)
    }

    #[test]
    fn frames_go_out_encapsulated_and_come_in_decapsulated_with_vlan_tags_for_a_map() {
        let (mut port, peer) = port_and_peer(Vnis::Map(vec![(5000, 10), (6000, 20)]));
        let to_port = SocketAddr::new("127.0.0.1".parse().unwrap(), port.target.dstport);
        // In: VNI 6000 comes to the switch tagged VLAN 20, its source learned behind 127.0.0.2.
        let mut packet = vec![FLAG_VNI, 0, 0, 0, 0, 0x17, 0x70, 0];
        packet.extend_from_slice(&frame([0xff; 6], [2, 0, 0, 0, 0, 1], None, 60)[VNET_HDR_LEN..]);
        peer.send_to(&packet, to_port).unwrap();
        let mut buf = vec![0u8; crate::wire::FRAME_BUF_LEN];
        let n = loop {
            match port.recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(n, VNET_HDR_LEN + 64);
        assert_eq!(
            &buf[VNET_HDR_LEN + 12..VNET_HDR_LEN + 16],
            &[0x81, 0, 0, 20]
        );
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(port.remote_of(20, mac).as_deref(), Some("127.0.0.2"));
        assert_eq!(port.remote_of(10, mac), None, "another VNI");

        // Out: a frame of VLAN 10 leaves in VNI 5000, untagged inside.
        port.send(&frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], Some(10), 64))
            .unwrap();
        let mut got = [0u8; 2048];
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, _) = peer.recv_from(&mut got).unwrap();
        assert_eq!(n, HEADER_LEN + 60);
        assert_eq!(&got[..8], &[FLAG_VNI, 0, 0, 0, 0, 0x13, 0x88, 0]);
        assert_eq!(
            &got[HEADER_LEN + 12..HEADER_LEN + 14],
            &[0x08, 0x00],
            "untagged inside"
        );
    }

    #[test]
    fn what_is_not_for_the_port_is_dropped_and_counted() {
        let (mut port, peer) = port_and_peer(Vnis::One(42));
        let to_port = SocketAddr::new("127.0.0.1".parse().unwrap(), port.target.dstport);
        let stranger = UdpSocket::bind("127.0.0.3:0").unwrap();
        let good = {
            let mut p = vec![FLAG_VNI, 0, 0, 0, 0, 0, 42, 0];
            p.extend_from_slice(&frame([0xff; 6], [2, 0, 0, 0, 0, 1], None, 60)[VNET_HDR_LEN..]);
            p
        };
        let mut wrong_vni = good.clone();
        wrong_vni[6] = 43;
        let mut no_flag = good.clone();
        no_flag[0] = 0;
        peer.send_to(&wrong_vni, to_port).unwrap();
        peer.send_to(&no_flag, to_port).unwrap();
        peer.send_to(&good[..12], to_port).unwrap();
        stranger.send_to(&good, to_port).unwrap();
        peer.send_to(&good, to_port).unwrap();
        let mut buf = vec![0u8; crate::wire::FRAME_BUF_LEN];
        let mut rejected = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        let n = loop {
            match port.recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => rejected += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "nothing came");
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!((rejected, n), (4, VNET_HDR_LEN + 60));
        let d = port.detail();
        assert!(
            d.contains("2 not VXLAN, 1 other VNIs, 1 from unknown addresses"),
            "{d}"
        );

        // Too big for the underlay: refused with EMSGSIZE.
        let big = frame([0xff; 6], [2, 0, 0, 0, 0, 2], None, 1500);
        let e = port.send(&big).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        port.send(&frame([0xff; 6], [2, 0, 0, 0, 0, 2], None, 1464))
            .unwrap();
    }

    #[test]
    fn a_flow_keeps_its_source_port() {
        let f = frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], None, 60);
        let eth = &f[VNET_HDR_LEN..];
        assert_eq!(flow_hash(eth), flow_hash(eth));
        let mut other = f.clone();
        other[VNET_HDR_LEN + 5] = 9;
        assert_ne!(flow_hash(eth), flow_hash(&other[VNET_HDR_LEN..]));
    }
}
