//! 802.1Q tags: reading stacked tags, pushing and popping a tag in place, inserting one the
//! kernel took out.

use vswitch::wire::vlan::{self as tag, TagStack, VlanTag, VlanTagRepr};
use vswitch::wire::{VNET_HDR_LEN, VnetHeader};

use super::{Input, be16};

/// What the virtio-net header's offsets become when a tag is pushed (`grow`) or popped.
fn shifted(hdr: &[u8], grow: bool) -> [u8; VNET_HDR_LEN] {
    let mut out: [u8; VNET_HDR_LEN] = hdr[..VNET_HDR_LEN].try_into().unwrap();
    let mut h = VnetHeader::new_unchecked(&mut out[..]);
    let shift = |v: u16| {
        if grow {
            v.saturating_add(4)
        } else {
            v.saturating_sub(4)
        }
    };
    if h.needs_csum() {
        let v = h.csum_start();
        h.set_csum_start(shift(v));
    }
    if h.is_gso() && h.hdr_len() != 0 {
        let v = h.hdr_len();
        h.set_hdr_len(shift(v));
    }
    out
}

/// Reading a frame's tags: [`TagStack`] agrees with the one-tag helpers and never points past
/// the frame.
fn check_tags(eth: &[u8]) {
    let tpid = |t: u16| matches!(t, 0x8100 | 0x88a8 | 0x9100);
    let Ok(stack) = TagStack::parse(eth) else {
        // Too short for the header, or for a tag it claims.
        let mut at = 12;
        while eth.len() >= at + 2 && tpid(be16(eth, at)) {
            at += 4;
        }
        assert!(eth.len() < at + 2, "TagStack refused a whole frame");
        return;
    };
    assert!(stack.l3() <= eth.len());
    assert_eq!(stack.l3(), 14 + 4 * stack.depth());
    assert_eq!(stack.iter().len(), stack.depth());
    for (i, t) in stack.iter().enumerate() {
        assert!(tpid(t.tpid()));
        assert_eq!(t.tci(), be16(eth, 14 + 4 * i));
        let repr = VlanTagRepr::parse(&t).expect("a tag");
        assert_eq!((repr.vid, repr.pcp, repr.dei), (t.vid(), t.pcp(), t.dei()));
        assert_eq!(repr.tci(), t.tci());
        let mut bytes = [0u8; 6];
        repr.emit(&mut VlanTag::new_unchecked(&mut bytes[..]));
        assert_eq!(
            &bytes[..],
            &eth[12 + 4 * i..18 + 4 * i],
            "tag emitted as read"
        );
    }
    assert!(stack.get(stack.depth()).is_none());
    assert!(!tpid(u16::from(stack.ethertype())));
    assert_eq!(u16::from(stack.ethertype()), be16(eth, stack.l3() - 2));
    let outer_c = stack.get(0).filter(|t| t.tpid() == 0x8100);
    assert_eq!(tag::tci(eth), outer_c.map(|t| t.tci()));
    let (l3, ethertype) = tag::l3(eth).expect("a whole frame");
    match outer_c {
        Some(t) => assert_eq!((l3, ethertype), (18, t.ethertype())),
        None => assert_eq!((l3, u16::from(ethertype)), (14, be16(eth, 12))),
    }
}

/// A virtio-net header and a frame: tags read consistently; pushing a tag and popping it gives
/// the frame back byte for byte (the header's offsets move by 4 and back); popping a tag and
/// inserting one (AF_PACKET's way) change exactly the tag and the offsets.
pub fn vlan(data: &[u8]) {
    let mut inp = Input(data);
    let tci = inp.u16();
    let tpid = match inp.below(4) {
        0 => 0x88a8,
        1 => 0x9100,
        2 => inp.u16(),
        _ => 0x8100,
    };
    let frame = inp.rest();
    if frame.len() < VNET_HDR_LEN {
        return;
    }
    let (hdr, eth) = frame.split_at(VNET_HDR_LEN);
    check_tags(eth);
    if eth.len() < 12 {
        return;
    }
    let len = frame.len();
    let mut buf = vec![0xee; 4];
    buf.extend_from_slice(frame);
    let start = tag::push(&mut buf, 4, len, tci);
    assert_eq!(start, 0);
    let pushed = &buf[..len + 4];
    assert_eq!(
        &pushed[..VNET_HDR_LEN],
        &shifted(hdr, true),
        "offsets grow by 4"
    );
    let peth = &pushed[VNET_HDR_LEN..];
    assert_eq!(&peth[..12], &eth[..12]);
    assert_eq!(be16(peth, 12), 0x8100);
    assert_eq!(be16(peth, 14), tci);
    assert_eq!(&peth[16..], &eth[12..], "the frame behind the tag");
    assert_eq!(tag::tci(peth), (peth.len() >= 18).then_some(tci));
    if let Ok(stack) = TagStack::parse(eth) {
        let more = TagStack::parse(peth).expect("a tag pushed on a whole frame");
        assert_eq!(more.depth(), stack.depth() + 1);
        assert_eq!(more.ethertype(), stack.ethertype());
    }
    let back = tag::pop(&mut buf, start, len + 4);
    assert_eq!(back, 4);
    let restored = &buf[4..];
    let popped_hdr = shifted(&shifted(hdr, true), false);
    assert_eq!(&restored[..VNET_HDR_LEN], &popped_hdr);
    assert_eq!(
        &restored[VNET_HDR_LEN..],
        eth,
        "push then pop changed the frame"
    );
    // Offsets round-trip unless the push saturated them (past 65531: no such frame).
    let h = VnetHeader::new_unchecked(hdr);
    let saturated =
        (h.needs_csum() && h.csum_start() > 0xfffb) || (h.is_gso() && h.hdr_len() > 0xfffb);
    if !saturated {
        assert_eq!(
            &restored[..VNET_HDR_LEN],
            hdr,
            "push then pop changed the header"
        );
    }

    // Popping the frame's own tag.
    if tag::tci(eth).is_some() {
        let mut buf = frame.to_vec();
        let start = tag::pop(&mut buf, 0, len);
        assert_eq!(start, 4);
        let popped = &buf[4..];
        assert_eq!(&popped[..VNET_HDR_LEN], &shifted(hdr, false));
        assert_eq!(&popped[VNET_HDR_LEN..VNET_HDR_LEN + 12], &eth[..12]);
        assert_eq!(&popped[VNET_HDR_LEN + 12..], &eth[16..]);
    }

    // Putting back a tag the kernel took out.
    let mut buf = frame.to_vec();
    assert_eq!(
        tag::insert(&mut buf, len, tpid, tci),
        None,
        "no room, no insert"
    );
    buf.extend_from_slice(&[0; 4]);
    assert_eq!(tag::insert(&mut buf, len, tpid, tci), Some(len + 4));
    assert_eq!(&buf[..VNET_HDR_LEN], &shifted(hdr, true));
    let ieth = &buf[VNET_HDR_LEN..];
    assert_eq!(&ieth[..12], &eth[..12]);
    assert_eq!((be16(ieth, 12), be16(ieth, 14)), (tpid, tci));
    assert_eq!(&ieth[16..], &eth[12..]);
}
