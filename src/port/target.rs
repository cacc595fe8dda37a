//! The port layer's own vocabulary: the kinds of port and what a port is opened on. It lives
//! here, not in `config`, so dependencies point down: config builds a [`Target`] from a port
//! spec and [`super::open`] opens it, without ports ever knowing about config.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::sys::IfName;

/// The kinds of port the switch has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A TAP device the switch owns (creates, or attaches to if persistent and free).
    Tap,
    /// An existing interface (a QEMU tap, a veth end), attached through AF_PACKET.
    Netdev,
    /// A Unix stream socket for QEMU's `-netdev stream` (4-byte length, then the frame).
    Stream,
    /// A Unix datagram socket for QEMU's `-netdev dgram` (one frame per datagram).
    Dgram,
    /// A VXLAN tunnel (RFC 7348) to one or more remote VTEPs over UDP.
    Vxlan,
    /// Raw Ethernet frames in UDP datagrams to one peer (GNS3's NIO UDP, QEMU's inet dgram).
    Udp,
    /// A vhost-user socket the switch serves: a VM's virtio-net rings in shared memory.
    VhostUser,
    /// A vhost-user socket QEMU serves, which the switch connects (and reconnects) to.
    VhostUserClient,
    /// The switch's own port (`--ip`): the switch makes it, so no port spec names it.
    Internal,
}

impl PortKind {
    /// The kinds a port spec can name, in the order error messages list them.
    pub const SPEC_KINDS: [PortKind; 8] = [
        PortKind::Tap,
        PortKind::Netdev,
        PortKind::Stream,
        PortKind::Dgram,
        PortKind::Vxlan,
        PortKind::Udp,
        PortKind::VhostUser,
        PortKind::VhostUserClient,
    ];

    /// The kind as a port spec writes it and `port list` shows it (`tap`, ..., `internal`).
    pub fn name(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Netdev => "netdev",
            PortKind::Stream => "stream",
            PortKind::Dgram => "dgram",
            PortKind::Vxlan => "vxlan",
            PortKind::Udp => "udp",
            PortKind::VhostUser => "vhost-user",
            PortKind::VhostUserClient => "vhost-user-client",
            PortKind::Internal => "internal",
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a port is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tap(IfName),
    Netdev(IfName),
    /// The socket the switch listens on.
    Stream(PathBuf),
    /// The socket the switch binds, and where it sends until a datagram says otherwise.
    Dgram {
        path: PathBuf,
        peer: Option<PathBuf>,
    },
    Vxlan(VxlanTarget),
    /// The address the switch binds, and the one peer it exchanges datagrams with.
    Udp {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The vhost-user socket the switch listens on.
    VhostUser(PathBuf),
    /// The vhost-user socket the switch connects to.
    VhostUserClient(PathBuf),
}

/// Where a VXLAN port's packets go and which VNIs it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanTarget {
    /// The address the port binds (its VTEP address) and sends from.
    pub local: IpAddr,
    /// The remote VTEPs: floods go to each, known unicast to the one its MAC was seen behind.
    pub remotes: Vec<IpAddr>,
    pub vnis: Vnis,
    /// The UDP port on both ends (4789, the IANA port, unless told).
    pub dstport: u16,
    /// The underlay's MTU: an inner frame that does not fit with the encapsulation is dropped.
    pub mtu: u16,
    /// Hand segments of a super-frame to the kernel in one UDP GSO send (`gso=off`: one send
    /// each, for a peer that reads the underlay raw and cannot take GSO packets).
    pub gso: bool,
}

/// The VNIs a VXLAN port carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vnis {
    /// One VNI, its frames untagged on the port (an access link into that segment).
    One(u32),
    /// Several VNIs, each the port's frames of one VLAN (`VNI:VLAN`), as a trunk carries VLANs.
    Map(Vec<(u32, u16)>),
}

impl VxlanTarget {
    /// The VXLAN header, outer UDP and outer IP: 8 + 8 + 20 (IPv4) or 40 (IPv6) bytes.
    pub fn overhead(&self) -> usize {
        16 + if self.local.is_ipv4() { 20 } else { 40 }
    }
}

impl Target {
    /// The kind of port opened on this target; never [`PortKind::Internal`].
    pub fn kind(&self) -> PortKind {
        match self {
            Target::Tap(_) => PortKind::Tap,
            Target::Netdev(_) => PortKind::Netdev,
            Target::Stream(_) => PortKind::Stream,
            Target::Dgram { .. } => PortKind::Dgram,
            Target::Vxlan(_) => PortKind::Vxlan,
            Target::Udp { .. } => PortKind::Udp,
            Target::VhostUser(_) => PortKind::VhostUser,
            Target::VhostUserClient(_) => PortKind::VhostUserClient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_print_as_specs_and_port_list_write_them() {
        let all = [
            (PortKind::Tap, "tap"),
            (PortKind::Netdev, "netdev"),
            (PortKind::Stream, "stream"),
            (PortKind::Dgram, "dgram"),
            (PortKind::Vxlan, "vxlan"),
            (PortKind::Udp, "udp"),
            (PortKind::VhostUser, "vhost-user"),
            (PortKind::VhostUserClient, "vhost-user-client"),
            (PortKind::Internal, "internal"),
        ];
        for (kind, name) in all {
            assert_eq!((kind.name(), kind.to_string().as_str()), (name, name));
        }
        assert!(!PortKind::SPEC_KINDS.contains(&PortKind::Internal));
    }
}
