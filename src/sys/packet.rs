//! AF_PACKET sockets bound to one interface, with virtio-net headers (`PACKET_VNET_HDR`), as
//! `ip link set X master br0` would attach it: every frame the interface receives, none it
//! sends, in promiscuous mode.
//!
//! The kernel puts a 10-byte `virtio_net_hdr` in front of each frame; the switch's buffers have
//! 12 (with `num_buffers`). `recvmsg`/`sendmsg` with two iovecs place the header and the frame
//! where the switch wants them, without copying.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::ifreq::IfName;
use crate::wire::VNET_HDR_LEN;
use crate::wire::vlan::{self, TPID_8021Q, VLAN_TAG_LEN};

/// The kernel's `struct virtio_net_hdr` (without `num_buffers`).
const KERNEL_VNET_HDR_LEN: usize = 10;

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20), not in every libc.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value points to a live c_int and the length
    // passed is its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// An AF_PACKET socket on one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    /// The kernel could not filter out frames the interface sends; `recv` skips them.
    filter_outgoing: bool,
}

/// The index of interface `name` in the caller's network namespace.
pub fn ifindex(name: &IfName) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name.as_str()).map_err(io::Error::from)
}

impl PacketSocket {
    /// Opens a non-blocking packet socket on `name`, with virtio-net headers, in promiscuous
    /// mode, ignoring outgoing frames. `NotFound` if there is no such interface.
    pub fn open(name: &IfName) -> io::Result<PacketSocket> {
        let ifindex = ifindex(name)?;
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // Protocol 0: the socket receives nothing until `bind` names the protocol and the
        // interface, so no other interface's frames ever queue up on it.
        // SAFETY: socket() takes no pointers; on success it returns a new descriptor that
        // nothing else owns, which OwnedFd takes over at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        // The kernel takes 802.1Q tags out of received frames; it reports them here.
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
        let filter_outgoing = set_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1).is_err();

        // SAFETY: sockaddr_ll is plain data; all-zero is valid before the fields are set.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: the address points to a live sockaddr_ll and the length is its size.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;

        // SAFETY: packet_mreq is plain data; zero is valid before the fields are set.
        let mut mreq: libc::packet_mreq = unsafe { zeroed() };
        mreq.mr_ifindex = ifindex as libc::c_int;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: the value points to a live packet_mreq and the length is its size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket {
            fd,
            ifindex,
            filter_outgoing,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Receives up to `1 + rest.len()` frames with one `recvmmsg` (at most 16), the first
    /// into `first`, the others into `rest`, each in the switch's layout with its 802.1Q tag
    /// put back where the kernel took it out. `lens[i]` gets frame i's length, or 0 for a
    /// frame to skip (one the interface sent, one from another interface, one too large for
    /// its buffer). Returns how many were received; `WouldBlock` if none were waiting.
    pub fn recv_many(
        &self,
        first: &mut [u8],
        rest: &mut [Box<[u8]>],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        const MAX: usize = 16;
        let count = (1 + rest.len()).min(lens.len()).min(MAX);
        // SAFETY: plain C structs; all-zero is a valid value for each before it is filled.
        let mut iovs: [[libc::iovec; 2]; MAX] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut from: [libc::sockaddr_ll; MAX] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX] = unsafe { zeroed() };
        // Room for one tpacket_auxdata control message per frame, 8-byte aligned.
        let mut control = [[0u64; 8]; MAX];
        let mut sizes = [0usize; MAX];
        for i in 0..count {
            let buf: &mut [u8] = if i == 0 {
                &mut *first
            } else {
                &mut rest[i - 1]
            };
            // Keep room for a tag to put back.
            sizes[i] = buf.len() - VNET_HDR_LEN - VLAN_TAG_LEN;
            let (head, frame) = buf.split_at_mut(VNET_HDR_LEN);
            head[KERNEL_VNET_HDR_LEN..].fill(0);
            iovs[i] = [
                libc::iovec {
                    iov_base: head.as_mut_ptr().cast(),
                    iov_len: KERNEL_VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: frame.as_mut_ptr().cast(),
                    iov_len: sizes[i],
                },
            ];
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_control = control[i].as_mut_ptr().cast();
            hdr.msg_controllen = size_of::<[u64; 8]>();
            hdr.msg_name = (&mut from[i] as *mut libc::sockaddr_ll).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            hdr.msg_iov = iovs[i].as_mut_ptr();
            hdr.msg_iovlen = 2;
        }
        // SAFETY: `msgs[..count]` point into `iovs`, `from`, `control` and the caller's
        // buffers, all live across the call and with their lengths given; the kernel writes
        // only within them and into `msg_len`. A null timeout waits for nothing more than
        // MSG_DONTWAIT allows.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            let len = msgs[i].msg_len as usize;
            let outgoing = self.filter_outgoing && from[i].sll_pkttype == libc::PACKET_OUTGOING;
            let ours = from[i].sll_ifindex == self.ifindex as libc::c_int;
            let fits = len >= KERNEL_VNET_HDR_LEN && len - KERNEL_VNET_HDR_LEN <= sizes[i];
            lens[i] = 0;
            if outgoing || !ours || !fits {
                continue;
            }
            let len = VNET_HDR_LEN + len - KERNEL_VNET_HDR_LEN;
            let buf: &mut [u8] = if i == 0 {
                &mut *first
            } else {
                &mut rest[i - 1]
            };
            lens[i] = match stripped_tag(&msgs[i].msg_hdr) {
                Some((tpid, tci)) => vlan::insert(buf, len, tpid, tci).unwrap_or(0),
                None => len,
            };
        }
        Ok(n)
    }

    /// Sends one frame given in the switch's layout (12-byte header, then the frame).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        if frame.len() < VNET_HDR_LEN {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let iov = [
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: KERNEL_VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: frame[VNET_HDR_LEN..].as_ptr() as *mut libc::c_void,
                iov_len: frame.len() - VNET_HDR_LEN,
            },
        ];
        // SAFETY: msghdr is plain data; all-zero is valid before the fields are set.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        // SAFETY: the iovecs point into `frame`, live for the call; sendmsg only reads them
        // (the mutable pointer type is the C API's, not a write).
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize + VNET_HDR_LEN - KERNEL_VNET_HDR_LEN)
    }
}

/// The 802.1Q tag the kernel took out of a received frame, from its `PACKET_AUXDATA` control
/// message: (TPID, TCI).
fn stripped_tag(msg: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: `msg` is the header recvmmsg filled in; its control pointer and length describe
    // the live buffer the kernel wrote the control messages into, which CMSG_FIRSTHDR and
    // CMSG_NXTHDR walk without leaving it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null headers from CMSG_FIRSTHDR/NXTHDR lie within the control buffer.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_PACKET && header.cmsg_type == libc::PACKET_AUXDATA {
            // SAFETY: a PACKET_AUXDATA message carries one tpacket_auxdata, which may not be
            // aligned for the struct, hence the unaligned read.
            let aux: libc::tpacket_auxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                TPID_8021Q
            };
            return Some((tpid, aux.tp_vlan_tci));
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
