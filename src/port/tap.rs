//! A TAP device the switch owns: its kernel side is a host or namespace interface, its file
//! descriptor is the switch's port.

use std::io;
use std::os::fd::AsRawFd;

use log::{debug, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::{Caps, Port, PortKind};
use crate::sys::IfName;
use crate::sys::netdev;
use crate::sys::tun::{Tap, TunError, TunStep};

/// Opening a TAP failed; the message names the TAP and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("cannot open TAP {name}: {reason}")]
pub struct TapOpenError {
    pub name: String,
    pub reason: String,
    #[source]
    pub source: TunError,
}

impl TapOpenError {
    fn new(name: &IfName, source: TunError) -> TapOpenError {
        let uid = nix::unistd::getuid();
        let errno = source.source.raw_os_error().unwrap_or(0);
        let reason = match (source.step, errno) {
            (TunStep::OpenDevice, libc::ENOENT | libc::ENODEV | libc::ENXIO) => {
                "/dev/net/tun is missing: load the tun module (`modprobe tun`)".to_owned()
            }
            (TunStep::OpenDevice, libc::EACCES | libc::EPERM) => format!(
                "permission denied opening /dev/net/tun: run with CAP_NET_ADMIN (e.g. as root), \
                 or make /dev/net/tun accessible (normally mode 0666) and create the TAP for your \
                 user with `ip tuntap add dev {name} mode tap user {uid}`"
            ),
            (TunStep::SetIff, libc::EPERM | libc::EACCES) => format!(
                "permission denied: create it with `ip tuntap add dev {name} mode tap user {uid}` \
                 or run with CAP_NET_ADMIN"
            ),
            (TunStep::SetIff, libc::EBUSY) => format!(
                "{name} is already attached by another process (a QEMU VM? another vswitchd?); \
                 attach to its interface instead with `--port netdev:{name}`"
            ),
            (TunStep::SetIff, libc::EINVAL) => format!(
                "an interface named {name} exists but is not a single-queue TAP (a TUN device, a \
                 multi_queue TAP, or another kind of interface); pick another name or delete it"
            ),
            _ => source.to_string(),
        };
        TapOpenError {
            name: name.to_string(),
            reason,
            source,
        }
    }
}

/// A TAP port with virtio-net headers and offloads: frames pass to and from the kernel as
/// they are, 64 KiB super-frames and partial checksums included.
#[derive(Debug)]
pub struct TapPort {
    tap: Tap,
    /// The switch dropped the carrier (`link=down`); a persistent TAP gets it back on close.
    carrier_off: bool,
}

impl TapPort {
    /// Creates or attaches to the TAP `name` and brings its link up if the switch may.
    pub fn open(name: &IfName) -> Result<TapPort, TapOpenError> {
        let tap = Tap::open(name).map_err(|e| TapOpenError::new(name, e))?;
        match netdev::set_up(name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                debug!("{name}: not in this network namespace; bring it up where it lives")
            }
            Err(e) => warn!("{name}: cannot bring the link up ({e}); run `ip link set {name} up`"),
        }
        Ok(TapPort {
            tap,
            carrier_off: false,
        })
    }

    /// Whether the TAP existed before the switch opened it (and outlives it).
    pub fn is_persistent(&self) -> bool {
        self.tap.is_persistent()
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        self.tap.name()
    }

    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: true,
            polled: false,
        }
    }

    fn detail(&self) -> String {
        if self.tap.is_persistent() {
            "persistent TAP, stays when detached".to_owned()
        } else {
            "created by vswitchd, deleted when detached".to_owned()
        }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Ok(())
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.tap.set_carrier(up)?;
        self.carrier_off = !up;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tap.read(buf)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let n = self.tap.write(frame)?;
        if n == frame.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "short write: {n} of {} bytes",
                frame.len()
            )))
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.tap.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut SourceFd(&self.tap.as_raw_fd()))
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        if self.tap.is_persistent() {
            if self.carrier_off
                && let Err(e) = self.tap.set_carrier(true)
            {
                warn!(
                    "TAP {}: cannot raise its carrier again: {e}",
                    self.tap.name()
                );
            }
            debug!(
                "closing TAP {}; it is persistent and stays",
                self.tap.name()
            );
        } else {
            debug!("closing TAP {}; the kernel deletes it", self.tap.name());
        }
    }
}
