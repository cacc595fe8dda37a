//! An existing interface attached through AF_PACKET (`netdev:IFNAME`): a QEMU-owned tap, a veth
//! end, a NIC — what `ip link set X master br0` does for the kernel bridge.
//!
//! Virtio-net headers (`PACKET_VNET_HDR`) keep QEMU guests' offloaded TCP working: 64 KiB
//! segments and partial checksums pass as they are. If the interface goes away (the VM shut
//! down), the port goes down and the switch looks for an interface of that name once a second;
//! when one appears (the VM restarted), the port comes back by itself.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::{Caps, Port, PortKind, PortTick};
use crate::sys::packet::{self, PacketSocket};
use crate::sys::{IfName, netdev};
use crate::wire::FRAME_BUF_LEN;

/// How often a missing interface is looked for.
const RETRY: Duration = Duration::from_secs(1);

/// Opening the interface failed for a reason other than its absence.
#[derive(Debug, thiserror::Error)]
#[error("cannot attach to interface {name}: {reason}")]
pub struct NetdevOpenError {
    pub name: String,
    pub reason: String,
}

/// A port on an existing interface.
pub struct NetdevPort {
    name: IfName,
    sock: Option<PacketSocket>,
    /// The reactor's registry and this port's token, to watch a reopened socket.
    registry: Option<(Registry, Token)>,
    /// When the interface was last looked for (time since the switch started).
    last_try: Option<Duration>,
    batch: Batch,
}

/// Frames read together with `recvmmsg`: the first straight into the reactor's buffer, the
/// others into slots of their own, handed out by the next calls without a syscall. This is
/// what keeps AF_PACKET from costing a syscall per small frame.
struct Batch {
    slots: Vec<Box<[u8]>>,
    lens: [usize; BATCH],
    /// Slots with frames not handed out yet, in order.
    next: usize,
    filled: usize,
}

/// Frames per `recvmmsg`.
const BATCH: usize = 8;

impl Batch {
    fn new() -> Batch {
        Batch {
            slots: Vec::new(),
            lens: [0; BATCH],
            next: 0,
            filled: 0,
        }
    }

    /// The next frame left from the last batch, copied into `buf`.
    fn take(&mut self, buf: &mut [u8]) -> Option<usize> {
        while self.next < self.filled {
            let i = self.next;
            self.next += 1;
            let len = self.lens[i];
            if len > 0 {
                buf[..len].copy_from_slice(&self.slots[i - 1][..len]);
                return Some(len);
            }
        }
        None
    }

    /// Reads a batch: returns the first frame (in `buf`) if it is one to forward, else `None`
    /// (the others, if any, come from [`Batch::take`]).
    fn fill(&mut self, sock: &PacketSocket, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.slots.is_empty() {
            self.slots = (1..BATCH)
                .map(|_| vec![0u8; FRAME_BUF_LEN].into_boxed_slice())
                .collect();
        }
        let n = sock.recv_many(buf, &mut self.slots, &mut self.lens)?;
        self.filled = n;
        self.next = 1;
        Ok(Some(self.lens[0]).filter(|&len| len > 0))
    }
}

fn open_error(name: &IfName, e: &io::Error) -> NetdevOpenError {
    let reason = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            "permission denied: AF_PACKET needs CAP_NET_RAW (run as root or grant it)".to_owned()
        }
        _ => e.to_string(),
    };
    NetdevOpenError {
        name: name.to_string(),
        reason,
    }
}

/// Brings the interface up if the switch may (as `ip link set X master br0` leaves that to the
/// user, but a port that cannot carry frames helps nobody).
fn bring_up(name: &IfName) {
    if let Err(e) = netdev::set_up(name) {
        debug!("port {name}: cannot bring the link up ({e})");
    }
}

fn missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::ENXIO | libc::ENOENT)
    )
}

impl NetdevPort {
    /// Attaches to `name`. An interface that does not exist yet is waited for (the port starts
    /// down); any other failure is an error.
    pub fn open(name: &IfName) -> Result<NetdevPort, NetdevOpenError> {
        let sock = match PacketSocket::open(name) {
            Ok(sock) => {
                bring_up(name);
                Some(sock)
            }
            Err(e) if missing(&e) => {
                warn!("port {name}: no interface {name} yet; waiting for it");
                None
            }
            Err(e) => return Err(open_error(name, &e)),
        };
        Ok(NetdevPort {
            name: name.clone(),
            sock,
            registry: None,
            last_try: None,
            batch: Batch::new(),
        })
    }

    /// Drops the socket after the interface went away.
    fn go_down(&mut self, why: &io::Error) {
        if self.sock.take().is_some() {
            warn!(
                "port {}: interface gone ({why}); waiting for it to come back",
                self.name
            );
        }
    }

    /// Whether the socket's interface still exists under our name.
    fn interface_still_there(&self) -> bool {
        let Some(sock) = &self.sock else {
            return false;
        };
        packet::ifindex(&self.name).is_ok_and(|i| i == sock.ifindex())
    }

    /// Handles an error from the socket: the interface may be down (frames resume when it comes
    /// up) or gone (the port waits for a new one).
    fn on_error(&mut self, e: io::Error) -> io::Error {
        match e.raw_os_error() {
            Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV) if !self.interface_still_there() => {
                self.go_down(&e);
                io::ErrorKind::NotConnected.into()
            }
            // Still there, but down: a link state, not a failure.
            Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV) => {
                io::Error::from_raw_os_error(libc::EIO)
            }
            _ => e,
        }
    }

    /// Registers the socket (if any) with the reactor's registry (if known).
    fn watch(&self) -> io::Result<()> {
        match (&self.sock, &self.registry) {
            (Some(sock), Some((registry, token))) => {
                registry.register(&mut SourceFd(&sock.as_raw_fd()), *token, Interest::READABLE)
            }
            _ => Ok(()),
        }
    }
}

impl Port for NetdevPort {
    fn name(&self) -> &str {
        self.name.as_str()
    }

    fn kind(&self) -> PortKind {
        PortKind::Netdev
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: true,
            polled: true,
        }
    }

    fn state(&self) -> &'static str {
        if self.sock.is_some() { "up" } else { "down" }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err(
            "an attached interface's carrier is its owner's (QEMU, a veth); link=down drops frames only",
        )
    }

    fn detail(&self) -> String {
        match &self.sock {
            Some(s) => format!("AF_PACKET on ifindex {}", s.ifindex()),
            None => "waiting for the interface to appear".to_owned(),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Frames received with the last batch first.
            if let Some(n) = self.batch.take(buf) {
                return Ok(n);
            }
            let Some(sock) = &self.sock else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            match self.batch.fill(sock, buf) {
                Ok(Some(n)) => return Ok(n),
                // The first frame was one to skip; the rest of the batch comes next.
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return match self.on_error(e) {
                        // Down or gone: nothing to read until it comes back.
                        e if e.kind() == io::ErrorKind::NotConnected
                            || e.raw_os_error() == Some(libc::EIO) =>
                        {
                            Err(io::ErrorKind::WouldBlock.into())
                        }
                        e => Err(e),
                    };
                }
            }
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let Some(sock) = &self.sock else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        match sock.send(frame) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.on_error(e)),
        }
    }

    fn tick(&mut self, now: Duration) -> PortTick {
        if self.sock.is_some() {
            return PortTick::default();
        }
        if self.last_try.is_some_and(|t| now < t + RETRY) {
            return PortTick {
                ready: false,
                next: Some(RETRY),
            };
        }
        self.last_try = Some(now);
        match PacketSocket::open(&self.name) {
            Ok(sock) => {
                bring_up(&self.name);
                let ifindex = sock.ifindex();
                self.sock = Some(sock);
                if let Err(e) = self.watch() {
                    warn!(
                        "port {}: cannot watch the reappeared interface: {e}",
                        self.name
                    );
                    self.sock = None;
                    return PortTick {
                        ready: false,
                        next: Some(RETRY),
                    };
                }
                info!("port {}: interface is back (ifindex {ifindex})", self.name);
                PortTick {
                    ready: true,
                    next: None,
                }
            }
            Err(e) => {
                if !missing(&e) {
                    debug!("port {}: cannot reattach: {e}", self.name);
                }
                PortTick {
                    ready: false,
                    next: Some(RETRY),
                }
            }
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.registry = Some((registry.try_clone()?, token));
        self.watch()
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        if let Some(sock) = &self.sock {
            registry.deregister(&mut SourceFd(&sock.as_raw_fd()))?;
        }
        self.registry = None;
        Ok(())
    }
}
