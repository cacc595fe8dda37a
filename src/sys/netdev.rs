//! Interface settings through the classic `SIOC*IF*` ioctls on a datagram socket.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use super::ifreq::IfName;

fn control_socket() -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// Sets `IFF_UP` on the interface `name` in the caller's network namespace. Fails with
/// `EPERM` without `CAP_NET_ADMIN` and with `ENODEV` if there is no such interface here.
pub fn set_up(name: &IfName) -> io::Result<()> {
    let sock = control_socket()?;
    let mut ifr = name.to_ifreq();
    // SAFETY: `sock` is an open socket; SIOCGIFFLAGS reads the name from and writes the flags
    // into `ifr`, a valid ifreq that outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS initialised `ifru_flags`; any c_short is a valid value.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS reads `ifr` (and older kernels copy it back), all within
    // the struct, which lives until the call returns.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
