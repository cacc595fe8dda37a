//! The pcapng blocks a live capture is made of (draft-ietf-opsawg-pcapng): a Section Header,
//! one Interface Description per captured port, Enhanced Packet Blocks with the direction flag
//! and nanosecond timestamps, and Interface Statistics with the drop count. Each block is
//! written whole, so a stream cut between blocks is still a valid file.

/// Link type of every interface: Ethernet.
const LINKTYPE_ETHERNET: u16 = 1;

/// `epb_flags` direction bits.
pub const INBOUND: u32 = 1;
pub const OUTBOUND: u32 = 2;

/// Appends a block of `kind` whose body `body` writes, with its length before and after.
fn block(out: &mut Vec<u8>, kind: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    body(out);
    let len = (out.len() - start + 4) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
}

/// Appends option `code` with `value`, padded to 32 bits.
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    pad(out, value.len());
}

fn pad(out: &mut Vec<u8>, len: usize) {
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

fn end_of_options(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 4]);
}

/// The Section Header Block that starts a capture, naming the application.
pub fn section_header(out: &mut Vec<u8>, application: &str) {
    block(out, 0x0A0D_0D0A, |b| {
        b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        option(b, 4, application.as_bytes()); // shb_userappl
        end_of_options(b);
    });
}

/// An Interface Description Block: a port by name, its kind as the description, Ethernet,
/// nanosecond timestamps.
pub fn interface(out: &mut Vec<u8>, name: &str, description: &str, snaplen: u32) {
    block(out, 1, |b| {
        b.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&snaplen.to_le_bytes());
        option(b, 2, name.as_bytes()); // if_name
        option(b, 3, description.as_bytes()); // if_description
        option(b, 9, &[9]); // if_tsresol: 10^-9 s
        end_of_options(b);
    });
}

/// The length an Enhanced Packet Block of `captured` bytes takes.
pub fn packet_len(captured: usize) -> usize {
    // Header 28, data padded, epb_flags option 8, end of options 4, trailing length 4.
    28 + captured.div_ceil(4) * 4 + 8 + 4 + 4
}

/// An Enhanced Packet Block: `data` (already cut to the snap length) of a frame `original`
/// bytes long, seen on `interface` at `ns` since the epoch, `flags` its direction.
pub fn packet(
    out: &mut Vec<u8>,
    interface: u32,
    ns: u64,
    data: &[u8],
    original: usize,
    flags: u32,
) {
    block(out, 6, |b| {
        b.extend_from_slice(&interface.to_le_bytes());
        b.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ns as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(original as u32).to_le_bytes());
        b.extend_from_slice(data);
        pad(b, data.len());
        option(b, 2, &flags.to_le_bytes()); // epb_flags
        end_of_options(b);
    });
}

/// An Interface Statistics Block for `interface` at `ns`: frames seen and dropped.
pub fn statistics(out: &mut Vec<u8>, interface: u32, ns: u64, received: u64, dropped: u64) {
    block(out, 5, |b| {
        b.extend_from_slice(&interface.to_le_bytes());
        b.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ns as u32).to_le_bytes());
        option(b, 4, &received.to_le_bytes()); // isb_ifrecv
        option(b, 5, &dropped.to_le_bytes()); // isb_ifdrop
        end_of_options(b);
    });
}

/// The length of the whole block at the start of `data`, if `data` holds it.
pub fn whole_block(data: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    (len >= 12 && len % 4 == 0 && data.len() >= len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocks of `data`: (type, body without the lengths).
    fn blocks(mut data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(len) = whole_block(data) {
            let kind = u32::from_le_bytes(data[..4].try_into().unwrap());
            let trailing = u32::from_le_bytes(data[len - 4..len].try_into().unwrap());
            assert_eq!(trailing as usize, len, "both lengths agree");
            out.push((kind, data[8..len - 4].to_vec()));
            data = &data[len..];
        }
        assert!(data.is_empty(), "nothing left over");
        out
    }

    #[test]
    fn blocks_are_whole_aligned_and_say_what_they_hold() {
        let mut out = Vec::new();
        section_header(&mut out, "vswitchd 0.1.0");
        interface(&mut out, "tap1", "tap", 262_144);
        let frame = [0xabu8; 61];
        let before = out.len();
        packet(&mut out, 0, 1_700_000_000_123_456_789, &frame, 61, INBOUND);
        assert_eq!(out.len() - before, packet_len(61));
        statistics(&mut out, 0, 1_700_000_001_000_000_000, 10, 3);
        assert_eq!(out.len() % 4, 0);
        let b = blocks(&out);
        assert_eq!(
            b.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [0x0A0D_0D0A, 1, 6, 5]
        );
        assert_eq!(&b[0].1[..4], &0x1A2B_3C4Du32.to_le_bytes());
        let epb = &b[2].1;
        let ns = (u64::from(u32::from_le_bytes(epb[4..8].try_into().unwrap())) << 32)
            | u64::from(u32::from_le_bytes(epb[8..12].try_into().unwrap()));
        assert_eq!(ns, 1_700_000_000_123_456_789);
        assert_eq!(&epb[20..81], &frame[..]);
        // epb_flags after the padded data: code 2, length 4, inbound.
        assert_eq!(&epb[84..92], &[2, 0, 4, 0, 1, 0, 0, 0]);
        assert!(whole_block(&out[..10]).is_none());
    }
}
