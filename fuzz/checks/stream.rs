//! The stream port's framing: a 4-byte big-endian length before each frame
//! (`vswitch::port::stream::split_frame`).

use vswitch::port::stream::split_frame;
use vswitch::wire::MAX_FRAME_LEN;

use super::Input;

/// The bytes as a stream port's input, split frame by frame: each frame is its length's
/// worth, a short tail waits, and only a length out of range is an error. Then frames written
/// as QEMU writes them, arriving in pieces of any size, come out whole and in order.
pub fn stream_framing(data: &[u8]) {
    let range = 14..=MAX_FRAME_LEN;
    let mut rest = data;
    loop {
        let len = rest
            .first_chunk::<4>()
            .map(|b| u32::from_be_bytes(*b) as usize);
        match split_frame(rest) {
            Ok(Some(frame)) => {
                let len = len.expect("a frame has a length");
                assert!(range.contains(&len));
                assert_eq!(frame, &rest[4..4 + len]);
                rest = &rest[4 + len..];
            }
            Ok(None) => {
                assert!(len.is_none_or(|len| range.contains(&len) && rest.len() < 4 + len));
                break;
            }
            Err(message) => {
                let len = len.expect("an error names a length");
                assert!(!range.contains(&len));
                assert!(message.contains(&len.to_string()), "{message}");
                break;
            }
        }
    }

    let mut inp = Input(data);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut stream = Vec::new();
    for _ in 0..1 + inp.below(8) {
        let len = match inp.below(8) {
            0 => 14,
            1 => 60,
            2 => 1514,
            3 => MAX_FRAME_LEN,
            _ => 14 + usize::from(inp.u16() % 9000),
        };
        let mut frame = inp.take(len).to_vec();
        let seed = inp.u8();
        frame.extend((frame.len()..len).map(|i| (i as u8).wrapping_mul(seed)));
        stream.extend_from_slice(&(len as u32).to_be_bytes());
        stream.extend_from_slice(&frame);
        frames.push(frame);
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut got = 0;
    let mut sent = 0;
    while sent < stream.len() {
        let piece = match inp.below(4) {
            0 => 1 + inp.below(8),
            1 => 1 + usize::from(inp.u16()),
            _ => 4096,
        };
        let end = (sent + piece).min(stream.len());
        pending.extend_from_slice(&stream[sent..end]);
        sent = end;
        while let Some(frame) = split_frame(&pending).expect("lengths in range") {
            assert!(frames[got] == frame, "frame {got} changed");
            let used = 4 + frame.len();
            got += 1;
            pending.drain(..used);
        }
    }
    assert_eq!(got, frames.len(), "frames left in the stream");
    assert!(pending.is_empty());
}
