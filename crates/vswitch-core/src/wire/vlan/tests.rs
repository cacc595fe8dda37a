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

/// The MACs, then `rest` (tags, EtherType, payload).
fn frame(rest: &[u8]) -> Vec<u8> {
    let mut f = DST.to_vec();
    f.extend_from_slice(&SRC);
    f.extend_from_slice(rest);
    f
}

/// An S-tag (PCP 3, VID 100) over a C-tag (PCP 5, DEI, VID 10) over IPv4.
const QINQ: [u8; 12] = [
    0x88, 0xa8, 0x60, 0x64, 0x81, 0x00, 0xb0, 0x0a, 0x08, 0x00, 0x45, 0x00,
];

#[test]
fn a_tag_view_reads_every_field() {
    let bytes = [0x81, 0x00, 0xb0, 0x0a, 0x86, 0xdd, 0x60];
    let tag = VlanTag::new_checked(&bytes[..]).unwrap();
    assert_eq!((tag.tpid(), tag.tci()), (TPID_8021Q, 0xb00a));
    assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (5, true, 10));
    assert_eq!(tag.ethertype(), EthernetProtocol::Ipv6);
    let tag = VlanTag::new_checked(&[0x81, 0x00, 0x40, 0x00, 0x08, 0x06][..]).unwrap();
    assert_eq!(
        (tag.pcp(), tag.dei(), tag.vid()),
        (2, false, 0),
        "a priority tag"
    );
}

#[test]
fn new_checked_refuses_a_truncated_tag() {
    let bytes = [0x81, 0x00, 0xb0, 0x0a, 0x08, 0x00];
    for len in 0..bytes.len() {
        assert_eq!(
            VlanTag::new_checked(&bytes[..len]).unwrap_err(),
            TagError::Truncated,
            "{len} bytes"
        );
    }
    assert!(VlanTag::new_checked(&bytes[..]).is_ok());
}

#[test]
fn setters_write_the_tag_in_place() {
    let mut bytes = [0u8; 7];
    let mut tag = VlanTag::new_checked(&mut bytes[..]).unwrap();
    tag.set_tpid(TPID_8021AD);
    tag.set_tci(0x2064);
    tag.set_ethertype(EthernetProtocol::Unknown(TPID_8021Q));
    assert_eq!((tag.pcp(), tag.vid()), (1, 100));
    assert_eq!(bytes, [0x88, 0xa8, 0x20, 0x64, 0x81, 0x00, 0]);
}

#[test]
fn repr_round_trips_through_the_bytes() {
    let tag = VlanTag::new_checked(&QINQ[4..]).unwrap();
    let repr = VlanTagRepr::parse(&tag).unwrap();
    assert_eq!(
        repr,
        VlanTagRepr {
            tpid: TPID_8021Q,
            pcp: 5,
            dei: true,
            vid: 10,
            ethertype: EthernetProtocol::Ipv4,
        }
    );
    assert_eq!(repr.tci(), 0xb00a);
    let mut out = [0u8; 6];
    repr.emit(&mut VlanTag::new_checked(&mut out[..]).unwrap());
    assert_eq!(out, QINQ[4..10]);
    let priority = VlanTagRepr {
        pcp: 7,
        dei: false,
        vid: 0,
        ..repr
    };
    priority.emit(&mut VlanTag::new_checked(&mut out[..]).unwrap());
    assert_eq!(out, [0x81, 0x00, 0xe0, 0x00, 0x08, 0x00]);
}

#[test]
fn repr_refuses_what_is_not_a_tag() {
    let tag = VlanTag::new_checked(&[0x08, 0x00, 0x45, 0x00, 0x01, 0x02][..]).unwrap();
    assert_eq!(VlanTagRepr::parse(&tag), Err(TagError::NotATag(0x0800)));
}

#[test]
fn a_stack_reads_an_s_tag_over_a_c_tag() {
    let f = frame(&QINQ);
    let stack = TagStack::parse(&f).unwrap();
    assert_eq!(stack.depth(), 2);
    let tags: Vec<VlanTagRepr> = stack
        .iter()
        .map(|t| VlanTagRepr::parse(&t).unwrap())
        .collect();
    assert_eq!(
        (tags[0].tpid, tags[0].pcp, tags[0].vid),
        (TPID_8021AD, 3, 100)
    );
    assert_eq!(
        (tags[1].tpid, tags[1].pcp, tags[1].vid),
        (TPID_8021Q, 5, 10)
    );
    assert_eq!(tags[0].ethertype, EthernetProtocol::Unknown(TPID_8021Q));
    assert_eq!(stack.get(1).unwrap().vid(), 10);
    assert!(stack.get(2).is_none());
    assert_eq!(
        (stack.l3(), stack.ethertype()),
        (22, EthernetProtocol::Ipv4)
    );
    // The bridge's readers still see an untagged frame of EtherType 0x88a8.
    assert_eq!(tci(&f), None);
    assert_eq!(l3(&f), Some((14, EthernetProtocol::Unknown(TPID_8021AD))));
}

#[test]
fn a_stack_reads_the_old_qinq_tpid() {
    let f = frame(&[0x91, 0x00, 0x00, 0x14, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x06]);
    let stack = TagStack::parse(&f).unwrap();
    let tpids: Vec<u16> = stack.iter().map(|t| t.tpid()).collect();
    assert_eq!(tpids, [TPID_QINQ, TPID_8021Q]);
    assert_eq!(stack.get(0).unwrap().vid(), 20);
    assert_eq!((stack.l3(), stack.ethertype()), (22, EthernetProtocol::Arp));
    assert_eq!(tci(&f), None);
    assert_eq!(l3(&f), Some((14, EthernetProtocol::Unknown(TPID_QINQ))));
}

#[test]
fn a_stack_shows_the_tag_behind_a_priority_tag() {
    let f = frame(&[0x81, 0x00, 0xa0, 0x00, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
    let stack = TagStack::parse(&f).unwrap();
    assert_eq!(stack.depth(), 2);
    assert_eq!(stack.get(0).unwrap().vid(), 0);
    assert_eq!(stack.get(1).unwrap().vid(), 10);
    assert_eq!(
        (stack.l3(), stack.ethertype()),
        (22, EthernetProtocol::Ipv4)
    );
    // tci and l3 read the outer tag only, as before.
    assert_eq!(tci(&f), Some(0xa000));
    assert_eq!(l3(&f), Some((18, EthernetProtocol::Unknown(TPID_8021Q))));
}

#[test]
fn an_untagged_frame_has_an_empty_stack() {
    let f = frame(&[0x86, 0xdd]);
    let stack = TagStack::parse(&f).unwrap();
    assert_eq!(stack.depth(), 0);
    assert_eq!(stack.iter().len(), 0);
    assert!(stack.get(0).is_none());
    assert_eq!(
        (stack.l3(), stack.ethertype()),
        (14, EthernetProtocol::Ipv6)
    );
}

#[test]
fn a_stack_refuses_frames_cut_inside_a_tag() {
    let f = frame(&QINQ);
    for len in [0, 13, 17, 18, 21] {
        assert_eq!(
            TagStack::parse(&f[..len]).unwrap_err(),
            TagError::Truncated,
            "{len} bytes"
        );
    }
    assert_eq!(TagStack::parse(&f[..22]).unwrap().depth(), 2);
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
