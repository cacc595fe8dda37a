//! IEEE 802.1Q tags: reading the tag after the MAC addresses, and pushing or popping it in a
//! frame buffer that starts with the virtio-net header.
//!
//! Push and pop move only the 24 bytes in front of the tag (the virtio-net header and both
//! MACs), into headroom the buffer keeps before the header, so a 64 KiB frame is never copied.
//! The virtio-net header's offsets into the frame (`csum_start`, `hdr_len`) move with the tag,
//! so partial checksums and GSO super-frames stay valid.

use super::vnet::{VNET_HDR_LEN, VnetHeader};
use super::{ETHERNET_HEADER_LEN, EthernetProtocol};

/// Bytes an 802.1Q tag adds.
pub const VLAN_TAG_LEN: usize = 4;
/// The 802.1Q tag protocol identifier (C-tag). 802.1ad S-tags (0x88a8) are not treated as tags.
pub const TPID_8021Q: u16 = 0x8100;
/// Highest usable VLAN id; 4095 is reserved.
pub const MAX_VID: u16 = 4094;

/// Bytes in front of the tag: destination and source MAC.
const MACS_LEN: usize = 12;

/// The VLAN id part of a TCI.
pub fn vid(tci: u16) -> u16 {
    tci & 0x0fff
}

/// The TCI of the 802.1Q tag right after the MACs of an Ethernet frame, if it has one.
pub fn tci(eth: &[u8]) -> Option<u16> {
    if eth.len() < MACS_LEN + VLAN_TAG_LEN + 2 {
        return None;
    }
    if u16::from_be_bytes([eth[12], eth[13]]) != TPID_8021Q {
        return None;
    }
    Some(u16::from_be_bytes([eth[14], eth[15]]))
}

/// Where the payload of an Ethernet frame starts and its EtherType, past the 802.1Q tag if there
/// is one; `None` if the frame is too short for its header (or for the tag it claims).
pub fn l3(eth: &[u8]) -> Option<(usize, EthernetProtocol)> {
    let ethertype = |end: usize| Some(u16::from_be_bytes(eth.get(end - 2..end)?.try_into().ok()?));
    let mut at = ETHERNET_HEADER_LEN;
    if ethertype(at)? == TPID_8021Q {
        at += VLAN_TAG_LEN;
    }
    Some((at, EthernetProtocol::from(ethertype(at)?)))
}

/// Moves the offsets of a virtio-net header by one tag's length: forward after a tag was pushed
/// (`grow`), back after one was popped.
fn shift_offsets(header: &mut [u8], grow: bool) {
    let mut hdr = VnetHeader::new_unchecked(header);
    let shift = |v: u16| {
        if grow {
            v.saturating_add(VLAN_TAG_LEN as u16)
        } else {
            v.saturating_sub(VLAN_TAG_LEN as u16)
        }
    };
    if hdr.needs_csum() {
        let start = hdr.csum_start();
        hdr.set_csum_start(shift(start));
    }
    if hdr.is_gso() && hdr.hdr_len() != 0 {
        let len = hdr.hdr_len();
        hdr.set_hdr_len(shift(len));
    }
}

/// Inserts an 802.1Q tag carrying `tci` into the frame `buf[start..start + len]` (virtio-net
/// header, then Ethernet). The frame then starts `VLAN_TAG_LEN` bytes earlier; the new start
/// is returned. Needs `start >= VLAN_TAG_LEN` and a frame with both MACs.
///
/// # Panics
/// If there is no headroom or the frame is shorter than the header and two MACs; callers check
/// both (the reactor keeps headroom, and the bridge drops shorter frames before any push).
pub fn push(buf: &mut [u8], start: usize, len: usize, tci: u16) -> usize {
    assert!(start >= VLAN_TAG_LEN && len >= VNET_HDR_LEN + MACS_LEN);
    let new = start - VLAN_TAG_LEN;
    buf.copy_within(start..start + VNET_HDR_LEN + MACS_LEN, new);
    let tag = new + VNET_HDR_LEN + MACS_LEN;
    buf[tag..tag + 2].copy_from_slice(&TPID_8021Q.to_be_bytes());
    buf[tag + 2..tag + 4].copy_from_slice(&tci.to_be_bytes());
    shift_offsets(&mut buf[new..new + VNET_HDR_LEN], true);
    new
}

/// Removes the 802.1Q tag from the frame `buf[start..start + len]`; the frame then starts
/// `VLAN_TAG_LEN` bytes later, and the new start is returned. The caller has checked that the
/// frame carries a tag ([`tci`]).
pub fn pop(buf: &mut [u8], start: usize, len: usize) -> usize {
    assert!(len >= VNET_HDR_LEN + MACS_LEN + VLAN_TAG_LEN);
    let new = start + VLAN_TAG_LEN;
    buf.copy_within(start..start + VNET_HDR_LEN + MACS_LEN, new);
    shift_offsets(&mut buf[new..new + VNET_HDR_LEN], false);
    new
}

/// Puts back a tag the kernel took out of a frame (AF_PACKET hands it over beside the frame):
/// the frame `buf[..len]` (virtio-net header, then Ethernet) grows by [`VLAN_TAG_LEN`] at its
/// end, the bytes after the MACs move up, and the header's offsets move with them. Returns the
/// new length, or `None` if `buf` has no room or the frame has no MACs.
pub fn insert(buf: &mut [u8], len: usize, tpid: u16, tci: u16) -> Option<usize> {
    let tag = VNET_HDR_LEN + MACS_LEN;
    if len < tag || len + VLAN_TAG_LEN > buf.len() {
        return None;
    }
    buf.copy_within(tag..len, tag + VLAN_TAG_LEN);
    buf[tag..tag + 2].copy_from_slice(&tpid.to_be_bytes());
    buf[tag + 2..tag + 4].copy_from_slice(&tci.to_be_bytes());
    shift_offsets(&mut buf[..VNET_HDR_LEN], true);
    Some(len + VLAN_TAG_LEN)
}

/// Replaces the TCI of the tag in the frame `buf[start..]`, which carries one.
pub fn set_tci(buf: &mut [u8], start: usize, tci: u16) {
    let at = start + VNET_HDR_LEN + MACS_LEN + 2;
    buf[at..at + 2].copy_from_slice(&tci.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4};

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

    /// Headroom, a virtio-net header for a TSO frame (csum_start 34, hdr_len 66), and an
    /// untagged IPv4 frame.
    fn untagged() -> Vec<u8> {
        let mut b = vec![0xee; VLAN_TAG_LEN];
        let mut hdr = [0u8; VNET_HDR_LEN];
        {
            let mut h = VnetHeader::new_unchecked(&mut hdr[..]);
            h.set_flags(F_NEEDS_CSUM);
            h.set_gso_type(GSO_TCPV4);
            h.set_hdr_len(66);
            h.set_gso_size(1448);
            h.set_csum_start(34);
            h.set_csum_offset(16);
        }
        b.extend_from_slice(&hdr);
        b.extend_from_slice(&DST);
        b.extend_from_slice(&SRC);
        b.extend_from_slice(&[0x08, 0x00, 0x45, 0x00, 0x01, 0x02]);
        b
    }

    #[test]
    fn reads_the_tag_only_for_8021q() {
        let mut f = DST.to_vec();
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00]);
        assert_eq!(tci(&f), Some(0xa00a));
        assert_eq!(vid(0xa00a), 10);
        f[12] = 0x88;
        f[13] = 0xa8;
        assert_eq!(tci(&f), None, "802.1ad is payload here");
        assert_eq!(tci(&f[..17]), None);
    }

    #[test]
    fn l3_skips_the_tag_and_refuses_short_frames() {
        let mut f = DST.to_vec();
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x08, 0x06]);
        assert_eq!(l3(&f), Some((14, EthernetProtocol::Arp)));
        assert_eq!(l3(&f[..13]), None);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(l3(&f), Some((18, EthernetProtocol::Arp)));
        assert_eq!(l3(&f[..17]), None, "too short for the tag it claims");
        f[12] = 0x88;
        f[13] = 0xa8;
        assert_eq!(l3(&f), Some((14, EthernetProtocol::Unknown(0x88a8))));
    }

    #[test]
    fn push_inserts_the_tag_and_moves_the_offsets() {
        let mut b = untagged();
        let len = b.len() - VLAN_TAG_LEN;
        let start = push(&mut b, VLAN_TAG_LEN, len, 0xa00a);
        assert_eq!(start, 0);
        let frame = &b[start..];
        let hdr = VnetHeader::new_checked(frame).unwrap();
        assert_eq!((hdr.csum_start(), hdr.hdr_len()), (38, 70));
        assert_eq!((hdr.csum_offset(), hdr.gso_size()), (16, 1448));
        let eth = hdr.payload();
        assert_eq!(&eth[..6], &DST);
        assert_eq!(&eth[6..12], &SRC);
        assert_eq!(
            &eth[12..],
            &[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00, 0x45, 0x00, 0x01, 0x02]
        );
        assert_eq!(tci(eth), Some(0xa00a));
    }

    #[test]
    fn pop_undoes_push_byte_for_byte() {
        let original = untagged();
        let mut b = original.clone();
        let len = b.len() - VLAN_TAG_LEN;
        let start = push(&mut b, VLAN_TAG_LEN, len, 0x300a);
        let start = pop(&mut b, start, len + VLAN_TAG_LEN);
        assert_eq!(start, VLAN_TAG_LEN);
        assert_eq!(&b[start..], &original[VLAN_TAG_LEN..]);
    }

    #[test]
    fn insert_gives_the_same_bytes_as_push() {
        let mut pushed = untagged();
        let len = pushed.len() - VLAN_TAG_LEN;
        let start = push(&mut pushed, VLAN_TAG_LEN, len, 0x600a);
        let mut inserted = untagged()[VLAN_TAG_LEN..].to_vec();
        inserted.resize(inserted.len() + 8, 0xee);
        let n = insert(&mut inserted, len, TPID_8021Q, 0x600a).unwrap();
        assert_eq!(&inserted[..n], &pushed[start..]);
        assert_eq!(insert(&mut inserted, n + 6, TPID_8021Q, 1), None, "no room");
    }

    #[test]
    fn a_complete_frame_keeps_a_zero_header() {
        let mut b = vec![0u8; VLAN_TAG_LEN + VNET_HDR_LEN];
        b.extend_from_slice(&DST);
        b.extend_from_slice(&SRC);
        b.extend_from_slice(&[0x08, 0x06]);
        let len = b.len() - VLAN_TAG_LEN;
        let start = push(&mut b, VLAN_TAG_LEN, len, 20);
        assert_eq!(&b[start..start + VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        set_tci(&mut b, start, 0xe014);
        assert_eq!(tci(&b[start + VNET_HDR_LEN..]), Some(0xe014));
    }
}
