//! One message the vhost crate cannot take from QEMU: SET_VRING_ENABLE sent before
//! SET_FEATURES. QEMU sends it to a backend that *offers* PROTOCOL_FEATURES as soon as the
//! protocol features are exchanged (when the VM's device is set up, before its driver
//! negotiates), while the crate refuses it as a protocol error until the features are
//! *acknowledged*. Such a message is taken off the socket here and applied to the device; every
//! other message goes to the crate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// vhost-user's SET_VRING_ENABLE request code.
pub const SET_VRING_ENABLE: u32 = 18;
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

/// Reads a SET_VRING_ENABLE that waits whole on `stream` and acknowledges it if asked to; `None` if the
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
    fn malformed_ones_are_refused() {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(&message(VERSION_1, 0, 7)).unwrap();
        assert_eq!(take(&mut ours), None, "num is 0 or 1");
        theirs.write_all(&message(0, 0, 1)).unwrap();
        assert_eq!(take(&mut ours), None, "no version");
    }
}
