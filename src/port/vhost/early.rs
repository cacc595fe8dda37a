//! One message the vhost crate cannot take from QEMU: SET_VRING_ENABLE sent before
//! SET_FEATURES. QEMU sends it to a backend that *offers* PROTOCOL_FEATURES as soon as the
//! protocol features are exchanged (when the VM's device is set up, before its driver
//! negotiates), while the crate refuses it as a protocol error until the features are
//! *acknowledged*. Such a message is taken off the socket here and applied to the device; every
//! other message goes to the crate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{MsgFlags, recv};
use std::os::fd::AsRawFd;

/// vhost-user's SET_VRING_ENABLE request code.
const SET_VRING_ENABLE: u32 = 18;
/// Header flags: protocol version 1, a reply, a reply wanted (REPLY_ACK).
const VERSION_1: u32 = 0x1;
const REPLY: u32 = 0x4;
const NEED_REPLY: u32 = 0x8;
/// A header (request, flags, size) and a vring state (index, num).
const MESSAGE_LEN: usize = 12 + 8;

/// A SET_VRING_ENABLE for a ring: its index and whether it is enabled.
#[derive(Debug, PartialEq, Eq)]
pub struct Enable {
    pub index: u32,
    pub enable: bool,
}

fn word(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Whether the next message waiting on `stream` is a SET_VRING_ENABLE (without reading it).
pub fn is_next(stream: &impl AsRawFd) -> bool {
    let mut head = [0u8; 4];
    let peeked = recv(
        stream.as_raw_fd(),
        &mut head,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    );
    matches!(peeked, Ok(4)) && word(&head, 0) == SET_VRING_ENABLE
}

/// Reads the SET_VRING_ENABLE [`is_next`] saw and acknowledges it if asked to; `None` if the
/// message is malformed or the socket fails (the connection is then dropped).
pub fn take(stream: &mut UnixStream) -> Option<Enable> {
    let mut msg = [0u8; MESSAGE_LEN];
    stream.read_exact(&mut msg).ok()?;
    let (flags, size) = (word(&msg, 4), word(&msg, 8));
    let num = word(&msg, 16);
    if flags & VERSION_1 == 0 || size != 8 || num > 1 {
        return None;
    }
    if flags & NEED_REPLY != 0 {
        let mut reply = [0u8; MESSAGE_LEN];
        reply[..4].copy_from_slice(&SET_VRING_ENABLE.to_le_bytes());
        reply[4..8].copy_from_slice(&(VERSION_1 | REPLY).to_le_bytes());
        reply[8..12].copy_from_slice(&8u32.to_le_bytes());
        stream.write_all(&reply).ok()?;
    }
    Some(Enable {
        index: word(&msg, 12),
        enable: num == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(flags: u32, index: u32, num: u32) -> Vec<u8> {
        [SET_VRING_ENABLE, flags, 8, index, num]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn takes_the_message_and_acknowledges_it_when_asked() {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(&message(VERSION_1, 1, 1)).unwrap();
        assert!(is_next(&ours));
        assert_eq!(
            take(&mut ours),
            Some(Enable {
                index: 1,
                enable: true
            })
        );
        theirs
            .write_all(&message(VERSION_1 | NEED_REPLY, 0, 0))
            .unwrap();
        assert_eq!(
            take(&mut ours),
            Some(Enable {
                index: 0,
                enable: false
            })
        );
        let mut reply = [0u8; MESSAGE_LEN];
        theirs.read_exact(&mut reply).unwrap();
        assert_eq!(word(&reply, 0), SET_VRING_ENABLE);
        assert_eq!(word(&reply, 4), VERSION_1 | REPLY);
        assert_eq!((word(&reply, 8), word(&reply, 12)), (8, 0));
    }

    #[test]
    fn other_messages_and_malformed_ones_are_not_taken() {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        assert!(!is_next(&ours), "nothing waiting");
        theirs.write_all(&1u32.to_le_bytes()).unwrap();
        assert!(!is_next(&ours), "GET_FEATURES is the crate's");
        let (mut ours2, mut theirs2) = UnixStream::pair().unwrap();
        theirs2.write_all(&message(VERSION_1, 0, 7)).unwrap();
        assert_eq!(take(&mut ours2), None, "num is 0 or 1");
        drop(theirs);
        let mut rest = Vec::new();
        ours.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, 1u32.to_le_bytes(), "left for the crate");
    }
}
