//! Receiving on a Unix datagram socket with what `recv_from` hides: whether the datagram was
//! longer than the buffer (the kernel cuts it short and says so only in the message flags).

use std::ffi::OsStr;
use std::io;
use std::mem::{offset_of, size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One datagram read into `buf`.
#[derive(Debug)]
pub struct Datagram {
    /// Bytes in `buf`.
    pub len: usize,
    /// The sender's socket path; `None` for an unnamed (or abstract) socket.
    pub from: Option<PathBuf>,
    /// The datagram was longer than `buf`: what is there is only its start.
    pub truncated: bool,
}

/// Reads one datagram from the socket `fd` into `buf` (`WouldBlock` if none is queued on a
/// non-blocking socket).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Datagram> {
    // SAFETY: sockaddr_un and msghdr are plain data; all-zero is valid before fields are set.
    let mut addr: libc::sockaddr_un = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: `msg` points to `addr` and to one iovec over `buf`, all live and writable for
    // the call, with their true sizes; recvmsg writes at most that much into each.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel reports 0 (unnamed sender), the family alone, or the path with its NUL.
    let path_len =
        (msg.msg_namelen as usize).saturating_sub(offset_of!(libc::sockaddr_un, sun_path));
    let raw_path: Vec<u8> = addr.sun_path[..path_len.min(addr.sun_path.len())]
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    let from = (!raw_path.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(&raw_path)));
    Ok(Datagram {
        len: n as usize,
        from,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}
