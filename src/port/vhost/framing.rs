//! What the loop checks before a vhost-user message is read: that all of it has arrived and
//! that its reply can go out at once. The vhost crate reads and writes its socket until a
//! message is complete, retrying EAGAIN without end, so a frontend that stops in the middle
//! of a message, or never reads its replies, would hold the switch's loop forever; checked
//! first, a message is handed to the crate only when neither can happen.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv};

/// A message header: request, flags, size of what follows.
const HEADER_LEN: usize = 12;
/// The most a message may carry after its header (the vhost crate's own bound).
const MAX_BODY: usize = vhost::vhost_user::message::MAX_MSG_SIZE;

/// What waits on a vhost-user connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Waiting {
    /// A whole message with this request code, and room for its reply.
    Message(u32),
    /// Part of a message, or a whole one whose reply would not fit yet: more readiness
    /// events come when either changes.
    NotYet,
    Nothing,
    /// The frontend closed the connection, or it failed (why).
    Closed(String),
    /// A header announcing more than a message may carry.
    Oversized(u32),
}

/// Looks at what waits on `sock` without taking it; `scratch` is reused between calls.
pub fn peek(sock: &impl AsFd, scratch: &mut Vec<u8>) -> Waiting {
    scratch.resize(HEADER_LEN + MAX_BODY, 0);
    let peeked = match recv(
        sock.as_fd().as_raw_fd(),
        scratch,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => return Waiting::Closed("end of stream".into()),
        Ok(n) => n,
        Err(Errno::EAGAIN | Errno::EINTR) => return Waiting::Nothing,
        Err(e) => return Waiting::Closed(e.to_string()),
    };
    let word = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&scratch[at..at + 4]);
        u32::from_le_bytes(w)
    };
    let whole = peeked >= HEADER_LEN && peeked >= HEADER_LEN + word(8) as usize;
    if peeked >= HEADER_LEN && word(8) as usize > MAX_BODY {
        return Waiting::Oversized(word(8));
    }
    let (writable, hung_up) = condition(sock);
    if !whole && hung_up {
        return Waiting::Closed("end of stream in the middle of a message".into());
    }
    // To a peer that hung up a reply fails at once, and the crate says so.
    if !whole || !(writable || hung_up) {
        return Waiting::NotYet;
    }
    Waiting::Message(word(0))
}

/// Whether a reply (at most a header and a body) can be written to `sock` without waiting,
/// and whether the peer closed its end.
fn condition(sock: &impl AsFd) -> (bool, bool) {
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
    if poll(&mut fds, PollTimeout::ZERO).is_err() {
        return (false, true);
    }
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    (
        revents.contains(PollFlags::POLLOUT),
        revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    fn header(request: u32, size: u32) -> Vec<u8> {
        [request, 1, size]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn a_message_is_ready_only_when_all_of_it_arrived() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut scratch = Vec::new();
        assert_eq!(peek(&ours, &mut scratch), Waiting::Nothing);
        theirs.write_all(&header(2, 8)[..7]).unwrap();
        assert_eq!(peek(&ours, &mut scratch), Waiting::NotYet);
        theirs.write_all(&header(2, 8)[7..]).unwrap();
        theirs.write_all(&[0; 5]).unwrap();
        assert_eq!(
            peek(&ours, &mut scratch),
            Waiting::NotYet,
            "body incomplete"
        );
        theirs.write_all(&[0; 3]).unwrap();
        assert_eq!(peek(&ours, &mut scratch), Waiting::Message(2));
        assert_eq!(peek(&ours, &mut scratch), Waiting::Message(2), "not taken");
        drop(theirs);
        assert_eq!(
            peek(&ours, &mut scratch),
            Waiting::Message(2),
            "whole: handled"
        );
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(&header(2, 8)).unwrap();
        drop(theirs);
        assert!(
            matches!(peek(&ours, &mut scratch), Waiting::Closed(_)),
            "cut short"
        );
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        assert!(matches!(peek(&ours, &mut scratch), Waiting::Closed(_)));
    }

    #[test]
    fn oversized_messages_and_unread_replies_are_caught() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut scratch = Vec::new();
        theirs.write_all(&header(5, 1 << 20)).unwrap();
        assert_eq!(peek(&ours, &mut scratch), Waiting::Oversized(1 << 20));

        // A frontend that never reads: once our side cannot write, a message waits.
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        while ours.write(&[0; 4096]).is_ok() {}
        theirs.write_all(&header(1, 0)).unwrap();
        assert_eq!(peek(&ours, &mut scratch), Waiting::NotYet);
    }
}
