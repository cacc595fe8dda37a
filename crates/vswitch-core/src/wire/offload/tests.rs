//! Segmentation checked against hand-built super-frames, with smoltcp's parsers verifying every
//! checksum independently of the code that computed it.

use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Packet, Ipv6Address, Ipv6Packet, TcpPacket};

use super::*;
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_ECN};

/// TCP flag bits, as the byte 13 bytes into the header holds them.
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];
const SRC6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// A TCP super-frame as a TAP hands it over: virtio-net header (GSO, partial checksum), Ethernet
/// (optionally tagged), IPv4 or IPv6, TCP with 12 bytes of options, `data`. The TCP checksum
/// field holds the pseudo-header sum, as the kernel leaves it.
fn super_frame(ipv6: bool, tagged: bool, flags: u8, ecn: bool, mss: u16, data: &[u8]) -> Vec<u8> {
    let mut eth = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a];
    if tagged {
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    }
    let l3 = eth.len() + 2;
    let tcp_len = 32 + data.len();
    if ipv6 {
        eth.extend_from_slice(&[0x86, 0xdd]);
        eth.extend_from_slice(&[0x60, 0, 0, 0]);
        eth.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        eth.extend_from_slice(&[6, 64]);
        eth.extend_from_slice(&SRC6);
        eth.extend_from_slice(&DST6);
    } else {
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&[0x45, 0]);
        eth.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        eth.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        eth.extend_from_slice(&SRC4);
        eth.extend_from_slice(&DST4);
    }
    let l4 = eth.len();
    eth.extend_from_slice(&[0x1f, 0x90, 0xc3, 0x50]); // ports 8080 -> 50000
    eth.extend_from_slice(&0xfffff000u32.to_be_bytes()); // a sequence number that wraps
    eth.extend_from_slice(&7u32.to_be_bytes()); // ack
    eth.extend_from_slice(&[0x80, flags, 0x01, 0x00, 0, 0, 0, 0]);
    eth.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
    eth.extend_from_slice(data);
    // The pseudo-header sum in the checksum field (not complemented).
    let mut sum = if ipv6 {
        sum_words(0, &eth[l3 + 8..l3 + 40])
    } else {
        sum_words(0, &eth[l3 + 12..l3 + 20])
    };
    sum += 6 + tcp_len as u64;
    let partial = !fold(sum);
    eth[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
    if !ipv6 {
        let csum = checksum(&eth[l3..l4]);
        eth[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
    }

    let mut frame = vec![0u8; VNET_HDR_LEN];
    let mut hdr = VnetHeader::new_unchecked(&mut frame[..]);
    hdr.set_flags(F_NEEDS_CSUM);
    let kind = if ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
    hdr.set_gso_type(if ecn { kind | GSO_ECN } else { kind });
    hdr.set_gso_size(mss);
    hdr.set_hdr_len((l4 + 32) as u16);
    hdr.set_csum_start(l4 as u16);
    hdr.set_csum_offset(16);
    frame.extend_from_slice(&eth);
    frame
}

fn segments(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    finish(frame, &mut scratch, |f| out.push(f.to_vec())).unwrap();
    out
}

struct Seg {
    seq: u32,
    flags: u8,
    ip_id: Option<u16>,
    data: Vec<u8>,
}

/// Checks one segment with smoltcp (IP and TCP checksums, lengths) and returns its fields.
fn check(frame: &[u8], ipv6: bool, tagged: bool) -> Seg {
    assert_eq!(
        &frame[..VNET_HDR_LEN],
        &[0; VNET_HDR_LEN],
        "complete frames, zero header"
    );
    let eth = &frame[VNET_HDR_LEN..];
    let l3 = if tagged { 18 } else { 14 };
    if ipv6 {
        let ip = Ipv6Packet::new_checked(&eth[l3..]).unwrap();
        assert_eq!(usize::from(ip.payload_len()), eth.len() - l3 - 40);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let (src, dst) = (Ipv6Address::from(SRC6), Ipv6Address::from(DST6));
        assert!(tcp.verify_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst)));
        Seg {
            seq: tcp.seq_number().0 as u32,
            flags: eth[l3 + 40 + 13],
            ip_id: None,
            data: tcp.payload().to_vec(),
        }
    } else {
        let ip = Ipv4Packet::new_checked(&eth[l3..]).unwrap();
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        assert_eq!(usize::from(ip.total_len()), eth.len() - l3);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let (src, dst) = (Ipv4Address::from(SRC4), Ipv4Address::from(DST4));
        assert!(tcp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)));
        Seg {
            seq: tcp.seq_number().0 as u32,
            flags: eth[l3 + 20 + 13],
            ip_id: Some(ip.ident()),
            data: tcp.payload().to_vec(),
        }
    }
}

fn check_segmentation(ipv6: bool, tagged: bool) {
    let data = payload(4000);
    let frame = super_frame(ipv6, tagged, 0x18 | FIN | CWR, true, 1448, &data);
    let segs: Vec<Seg> = segments(&frame)
        .iter()
        .map(|s| check(s, ipv6, tagged))
        .collect();
    assert_eq!(segs.len(), 3);
    let lens: Vec<usize> = segs.iter().map(|s| s.data.len()).collect();
    assert_eq!(lens, [1448, 1448, 1104]);
    let joined: Vec<u8> = segs.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(joined, data);
    assert_eq!(segs[0].seq, 0xfffff000);
    assert_eq!(segs[1].seq, 0xfffff000u32.wrapping_add(1448));
    assert_eq!(segs[2].seq, 0xfffff000u32.wrapping_add(2896));
    // CWR on the first only, FIN and PSH on the last only, ACK everywhere.
    assert_eq!(segs[0].flags, 0x10 | CWR);
    assert_eq!(segs[1].flags, 0x10);
    assert_eq!(segs[2].flags, 0x10 | PSH | FIN);
    if !ipv6 {
        let ids: Vec<u16> = segs.iter().map(|s| s.ip_id.unwrap()).collect();
        assert_eq!(ids, [0x1234, 0x1235, 0x1236]);
    }
}

#[test]
fn tcp_over_ipv4_is_cut_into_valid_segments() {
    check_segmentation(false, false);
}

#[test]
fn tcp_over_ipv6_is_cut_into_valid_segments() {
    check_segmentation(true, false);
}

#[test]
fn tagged_super_frames_are_cut_too() {
    check_segmentation(false, true);
    check_segmentation(true, true);
}

#[test]
fn a_super_frame_smaller_than_one_segment_still_gets_its_checksum() {
    let data = payload(100);
    let frame = super_frame(false, false, 0x18, false, 1448, &data);
    let segs = segments(&frame);
    assert_eq!(segs.len(), 1);
    assert_eq!(check(&segs[0], false, false).data, data);
}

#[test]
fn a_partial_checksum_alone_is_completed() {
    let data = payload(333);
    let mut frame = super_frame(false, false, 0x18, false, 0, &data);
    VnetHeader::new_unchecked(&mut frame[..]).set_gso_type(GSO_NONE);
    let out = segments(&frame);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), frame.len());
    assert_eq!(check(&out[0], false, false).data, data);
    // The input is left as it was, for the ports that take it as it is.
    assert_eq!(VnetHeader::new_unchecked(&frame[..]).flags(), F_NEEDS_CSUM);
}

#[test]
fn bad_headers_and_other_gso_types_are_refused() {
    let data = payload(3000);
    let mut frame = super_frame(false, false, 0x18, false, 1448, &data);
    VnetHeader::new_unchecked(&mut frame[..]).set_gso_type(super::super::vnet::GSO_UDP_L4);
    let mut scratch = Vec::new();
    assert_eq!(
        finish(&frame, &mut scratch, |_| {}),
        Err(FinishError::Unsupported(5))
    );
    let mut frame = super_frame(false, false, 0x18, false, 1448, &data);
    VnetHeader::new_unchecked(&mut frame[..]).set_csum_start(60_000);
    assert_eq!(
        finish(&frame, &mut scratch, |_| {}),
        Err(FinishError::Malformed)
    );
    let mut frame = super_frame(false, false, 0x18, false, 1448, &data);
    VnetHeader::new_unchecked(&mut frame[..]).set_gso_size(0);
    assert_eq!(
        finish(&frame, &mut scratch, |_| {}),
        Err(FinishError::Malformed)
    );
    assert_eq!(
        finish(&[0u8; 5], &mut scratch, |_| {}),
        Err(FinishError::Malformed)
    );
}

#[test]
fn the_internet_checksum_matches_rfc_1071() {
    // RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert_eq!(
        checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
        !0xddf2
    );
    assert_eq!(checksum(&[0xff]), !0xff00);
}

#[test]
fn the_wide_sum_folds_to_the_sum_of_16_bit_words() {
    let naive = |data: &[u8]| {
        let mut sum: u64 = 0;
        for pair in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        fold(sum)
    };
    // Bytes that make every carry happen, at every length up to a few words past 8.
    let data: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for len in (0..40).chain([1499, 1500, 4095]) {
        assert_eq!(
            fold(sum_words(0, &data[..len])),
            naive(&data[..len]),
            "{len} bytes"
        );
    }
    let ones = vec![0xff; 65_536];
    assert_eq!(fold(sum_words(7, &ones)), fold(7 + 0xffff * 32_768));
}
