//! Ports: where frames enter and leave the switch. One file per kind; each gives the reactor the
//! same small interface, so the forwarding core never knows what kind a port is.

pub mod dgram;
pub mod internal;
pub mod netdev;
pub mod stream;
pub mod tap;
mod target;
pub mod udp;
mod unix;
pub mod vhost;
pub mod vxlan;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use mio::{Registry, Token};

use crate::wire::MacAddr;
pub use dgram::DgramPort;
pub use netdev::{NetdevOpenError, NetdevPort};
pub use stream::StreamPort;
pub use tap::{TapOpenError, TapPort};
pub use target::{PortKind, Target, Vnis, VxlanTarget};
pub use udp::UdpPort;
pub use vhost::VhostUserPort;
pub use vxlan::VxlanPort;

/// A port could not be opened; the message names it and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Tap(#[from] TapOpenError),
    #[error(transparent)]
    Netdev(#[from] NetdevOpenError),
    #[error("cannot open port {name} on socket {path}: {source}")]
    Socket {
        name: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open port {name}: {source}")]
    Tunnel {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// Opens the port `name` on `target`. `name` is what users call the port (for a TAP or netdev
/// it is the interface name, which the target holds too).
pub fn open(name: &str, target: &Target) -> Result<Box<dyn Port>, OpenError> {
    let socket_error = |path: &std::path::Path| {
        let name = name.to_owned();
        let path = path.display().to_string();
        move |source| OpenError::Socket { name, path, source }
    };
    Ok(match target {
        Target::Tap(ifname) => Box::new(TapPort::open(ifname)?),
        Target::Netdev(ifname) => Box::new(NetdevPort::open(ifname)?),
        Target::Stream(path) => Box::new(StreamPort::open(name, path).map_err(socket_error(path))?),
        Target::Dgram { path, peer } => {
            Box::new(DgramPort::open(name, path, peer.as_deref()).map_err(socket_error(path))?)
        }
        Target::Vxlan(target) => {
            Box::new(VxlanPort::open(name, target).map_err(tunnel_error(name))?)
        }
        Target::Udp { local, remote } => {
            Box::new(UdpPort::open(name, *local, *remote).map_err(tunnel_error(name))?)
        }
        Target::VhostUser(path) => {
            Box::new(VhostUserPort::open(name, path).map_err(socket_error(path))?)
        }
        Target::VhostUserClient(path) => Box::new(VhostUserPort::client(name, path)),
    })
}

fn tunnel_error(name: &str) -> impl FnOnce(io::Error) -> OpenError {
    let name = name.to_owned();
    move |source| OpenError::Tunnel { name, source }
}

/// What a port can take besides complete Ethernet frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Takes frames with a partial checksum or as GSO super-frames, described by the virtio-net
    /// header (a TAP with `IFF_VNET_HDR` and offloads on). A port without it only ever receives
    /// complete frames.
    pub offloads: bool,
    /// Has no file descriptor to wait on: the reactor calls [`Port::tick`] every turn.
    pub polled: bool,
}

/// What a polled port says after a [`Port::tick`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortTick {
    /// Frames wait to be read.
    pub ready: bool,
    /// How long, at the latest, until it wants to be ticked again.
    pub next: Option<Duration>,
}

/// A port of the switch.
///
/// Frames cross this interface in one buffer layout: a [`crate::wire::VNET_HDR_LEN`]-byte
/// virtio-net header followed by the Ethernet frame. A port that has no such header on its wire
/// zeroes it on receive and skips it on send.
pub trait Port: Send {
    /// The name users know the port by (the interface name for a TAP).
    fn name(&self) -> &str;

    /// The kind of port; its [`PortKind::name`] is what `port list` shows.
    fn kind(&self) -> PortKind;

    fn caps(&self) -> Caps;

    /// `up`; or `down` (its interface is gone) or `waiting` (no VM connected yet) for ports
    /// that outlive their peer.
    fn state(&self) -> &'static str {
        "up"
    }

    /// Kind-specific facts for `port list` (e.g. whether a TAP was created by the switch).
    fn detail(&self) -> String {
        String::new()
    }

    /// Whether the switch can raise and drop this port's carrier (`link=down` shows as
    /// NO-CARRIER to its host), and if not, why, for `port show`.
    fn carrier(&self) -> Result<(), &'static str>;

    /// Raises or drops the carrier, where [`Port::carrier`] says the switch can.
    fn set_carrier(&mut self, _up: bool) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Reads one frame into `buf` (header + frame) and returns the bytes used. `WouldBlock`
    /// means nothing is queued; `Interrupted`, that what was read was no frame; `InvalidData`,
    /// that what was read was refused (counted as a `tunnel` drop); any other error means the
    /// port is gone.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Sends one frame (header + frame). `WouldBlock` and `ENOBUFS` mean "full, try later", `EIO`
    /// means the link is down; the caller decides which errors end the port.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;

    /// Whether a full send means a ring that its host empties soon (a VM's receive ring), so
    /// that the frame waits in the port's egress queue instead of being dropped at once.
    fn queues_when_full(&self) -> bool {
        false
    }

    /// Lets a polled port (see [`Caps::polled`]) do its work at `now` (time since the switch
    /// started).
    fn tick(&mut self, _now: Duration) -> PortTick {
        PortTick::default()
    }

    /// The remote a tunnel port sends frames for `mac` in `vlan` to, if it knows (for
    /// `fdb show`).
    fn remote_of(&self, _vlan: u16, _mac: MacAddr) -> Option<String> {
        None
    }

    /// Pins (or, with `None`, forgets) the remote a tunnel port sends `mac` in `vlan` to.
    fn set_remote(
        &mut self,
        _vlan: u16,
        _mac: MacAddr,
        _remote: Option<IpAddr>,
    ) -> Result<(), String> {
        Err(format!(
            "port {} is not a tunnel: only vxlan ports have remotes",
            self.name()
        ))
    }

    /// Registers the port's file descriptors for readability with `token`.
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()>;

    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
}
