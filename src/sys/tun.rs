//! TAP devices through `/dev/net/tun`, with virtio-net headers and offloads switched on.
//!
//! `TUNSETIFF` creates the named TAP, or attaches to it when a persistent TAP of that name exists
//! and nobody holds it. A TAP created here lives exactly as long as its file descriptor: dropping
//! [`Tap`] closes the fd and the kernel deletes the device. A persistent TAP stays.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::ifreq::{IfName, ifreq_name};
use crate::wire::VNET_HDR_LEN;

const TUN_PATH: &str = "/dev/net/tun";

/// Offloads the switch accepts from the kernel: partial checksums and TCP segmentation (with
/// ECN) for IPv4 and IPv6. The kernel may then hand over 64 KiB super-frames.
const OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

/// The step of opening a TAP that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunStep {
    OpenDevice,
    SetIff,
    GetIff,
    SetVnetHdrSize,
    SetOffload,
}

impl fmt::Display for TunStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunStep::OpenDevice => "open /dev/net/tun",
            TunStep::SetIff => "TUNSETIFF",
            TunStep::GetIff => "TUNGETIFF",
            TunStep::SetVnetHdrSize => "TUNSETVNETHDRSZ",
            TunStep::SetOffload => "TUNSETOFFLOAD",
        })
    }
}

/// A failed step with the OS error it returned.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct TunError {
    pub step: TunStep,
    #[source]
    pub source: io::Error,
}

impl TunError {
    fn at(step: TunStep) -> impl FnOnce(io::Error) -> TunError {
        move |source| TunError { step, source }
    }
}

/// An open TAP queue: non-blocking, close-on-exec, no packet-info prefix, a 12-byte virtio-net
/// header in front of every frame in both directions.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    persistent: bool,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Tap {
    /// Creates the TAP `name`, or attaches to the persistent TAP of that name.
    pub fn open(name: &IfName) -> Result<Tap, TunError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(TunError::at(TunStep::OpenDevice))?;
        let fd = file.as_raw_fd();

        let mut ifr = name.to_ifreq();
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as _;
        // SAFETY: `fd` is an open /dev/net/tun descriptor owned by `file`; TUNSETIFF reads and
        // writes one `struct ifreq`, and `ifr` is a valid, initialised ifreq that outlives the call.
        check(unsafe { libc::ioctl(fd, libc::TUNSETIFF as _, &mut ifr) })
            .map_err(TunError::at(TunStep::SetIff))?;

        let mut got = name.to_ifreq();
        // SAFETY: as above; TUNGETIFF writes the device's name and flags into `got`.
        check(unsafe { libc::ioctl(fd, libc::TUNGETIFF as _, &mut got) })
            .map_err(TunError::at(TunStep::GetIff))?;
        // SAFETY: TUNGETIFF filled in `ifru_flags`; every bit pattern is a valid c_short.
        let flags = libc::c_int::from(unsafe { got.ifr_ifru.ifru_flags });

        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one c_int through the pointer, which points to a live
        // local.
        check(unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ as _, &hdr_len) })
            .map_err(TunError::at(TunStep::SetVnetHdrSize))?;

        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of TUN_F_* bits)
        // and dereferences nothing.
        check(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD as _, libc::c_ulong::from(OFFLOADS)) })
            .map_err(TunError::at(TunStep::SetOffload))?;

        Ok(Tap {
            file,
            name: ifreq_name(&got),
            persistent: flags & libc::IFF_PERSIST != 0,
        })
    }

    /// The device's name as the kernel reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the device is persistent (it existed before and stays after the switch).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// Raises or drops the device's carrier, as a cable plugged in or pulled (TUNSETCARRIER,
    /// Linux 5.0): without it the host sees NO-CARRIER and sends nothing.
    pub fn set_carrier(&self, up: bool) -> io::Result<()> {
        let on = libc::c_int::from(up);
        // SAFETY: TUNSETCARRIER reads one c_int through the pointer, which points to a live
        // local; the fd is an attached TAP owned by `self.file`.
        check(unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETCARRIER as _, &on) })
    }

    /// Reads one frame with its virtio-net header; `WouldBlock` when none is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame with its virtio-net header.
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}
