//! UDP socket options std does not offer.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sends this IPv4 socket's datagrams with a zero UDP checksum (`SO_NO_CHECK`), as RFC 7348
/// recommends for VXLAN over IPv4: the inner frame carries its own checksums.
pub fn set_zero_checksum(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is a live socket for the call; the option value is a c_int on our stack,
    // passed with its true size, and only read by the kernel.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
