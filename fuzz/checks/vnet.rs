//! The virtio-net header: its view, and what `finish` makes of any header in front of any
//! bytes.

use vswitch::wire::vnet::{GSO_ECN, GSO_NONE};
use vswitch::wire::{VNET_HDR_LEN, VnetHeader};

use super::offload::check_finish;

/// Any bytes as a virtio-net header and frame: the view reads each field where the layout
/// says (native-endian), setters write their field and nothing else, and `finish` either does
/// what the header asks or refuses for a reason the header gives.
pub fn vnet(data: &[u8]) {
    match VnetHeader::new_checked(data) {
        Err(_) => assert!(data.len() < VNET_HDR_LEN),
        Ok(h) => {
            let ne = |at: usize| u16::from_ne_bytes([data[at], data[at + 1]]);
            assert_eq!((h.flags(), h.gso_type()), (data[0], data[1]));
            assert_eq!((h.hdr_len(), h.gso_size()), (ne(2), ne(4)));
            assert_eq!((h.csum_start(), h.csum_offset()), (ne(6), ne(8)));
            assert_eq!(h.needs_csum(), data[0] & 1 != 0);
            assert_eq!(h.gso_kind(), data[1] & !GSO_ECN);
            assert_eq!(h.is_gso(), h.gso_kind() != GSO_NONE);
            assert_eq!(h.is_complete(), !h.needs_csum() && !h.is_gso());
            assert_eq!(h.payload(), &data[VNET_HDR_LEN..]);

            let mut copy = data.to_vec();
            let mut m = VnetHeader::new_unchecked(&mut copy[..]);
            let v = ne(10);
            m.set_hdr_len(v);
            m.set_gso_size(v.rotate_left(3));
            m.set_csum_start(v ^ 0x5a5a);
            m.set_csum_offset(!v);
            m.set_flags(data[11]);
            m.set_gso_type(data[10]);
            let fields = (m.hdr_len(), m.gso_size(), m.csum_start(), m.csum_offset());
            assert_eq!(fields, (v, v.rotate_left(3), v ^ 0x5a5a, !v));
            assert_eq!((m.flags(), m.gso_type()), (data[11], data[10]));
            assert_eq!(&copy[10..], &data[10..], "setters wrote past their fields");
            VnetHeader::new_unchecked(&mut copy[..]).clear();
            assert!(copy[..VNET_HDR_LEN].iter().all(|&b| b == 0));
            assert!(VnetHeader::new_unchecked(&copy[..]).is_complete());
            assert_eq!(
                &copy[VNET_HDR_LEN..],
                &data[VNET_HDR_LEN..],
                "clear wrote the frame"
            );
        }
    }
    check_finish(data);
}
