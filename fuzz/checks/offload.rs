//! Software offloads: completing a partial checksum and cutting TCP super-frames into segments
//! (`vswitch::wire::offload::finish`), checked against the virtio-net header that asked for it.

use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Packet, Ipv6Address, Ipv6Packet, TcpPacket};
use vswitch::wire::offload::{self, FinishError};
use vswitch::wire::vlan as tag;
use vswitch::wire::vnet::{GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6};
use vswitch::wire::{VNET_HDR_LEN, VnetHeader};

use super::{Input, be16};

/// The ones' complement sum of `data` as big-endian words, unfolded (RFC 1071), written apart
/// from `offload`'s own.
fn ones_sum(data: &[u8]) -> u64 {
    data.chunks(2)
        .map(|w| u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Writes what a TSO super-frame's sender leaves in `eth` (IP at `l3`, TCP at `l4`, to the
/// end): the pseudo-header sum in the TCP checksum field, as the kernel leaves it, and the
/// IPv4 header checksum.
pub(super) fn seal(eth: &mut [u8], l3: usize, l4: usize, ipv6: bool) {
    let addrs = if ipv6 {
        &eth[l3 + 8..l3 + 40]
    } else {
        &eth[l3 + 12..l3 + 20]
    };
    let pseudo = ones_sum(addrs) + 6 + (eth.len() - l4) as u64;
    eth[l4 + 16..l4 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
    if !ipv6 {
        let csum = !fold(ones_sum(&eth[l3..l4]));
        eth[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
    }
}

/// Smallest MSS `finish` takes (Linux's TCP_MIN_MSS).
const MIN_MSS: usize = 88;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Runs `offload::finish` on `frame` (virtio-net header, then Ethernet) and checks what it did
/// against the header: refusals only for what it cannot do, a completed checksum that
/// verifies, segments that each fit `gso_size`, carry valid IPv4 and TCP checksums, and whose
/// payloads concatenate to the super-frame's. Returns the frames it emitted, if it succeeded.
pub(super) fn check_finish(frame: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut scratch = Vec::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let result = offload::finish(frame, &mut scratch, |f| out.push(f.to_vec()));
    if frame.len() < VNET_HDR_LEN {
        assert_eq!(result, Err(FinishError::Malformed));
        assert!(out.is_empty());
        return None;
    }
    let hdr = VnetHeader::new_unchecked(frame);
    match hdr.gso_kind() {
        GSO_NONE => check_completed(frame, result, &out),
        GSO_TCPV4 | GSO_TCPV6 if result.is_ok() => check_segments(frame, &out),
        GSO_TCPV4 | GSO_TCPV6 => assert!(out.is_empty(), "segments emitted before a refusal"),
        kind => {
            assert_eq!(result, Err(FinishError::Unsupported(kind)));
            assert!(out.is_empty());
        }
    }
    result.ok().map(|()| out)
}

fn check_completed(frame: &[u8], result: Result<(), FinishError>, out: &[Vec<u8>]) {
    let hdr = VnetHeader::new_unchecked(frame);
    let eth = &frame[VNET_HDR_LEN..];
    let start = usize::from(hdr.csum_start());
    let at = start + usize::from(hdr.csum_offset());
    let fits = at + 2 <= eth.len();
    if hdr.needs_csum() && !fits {
        assert_eq!(
            result,
            Err(FinishError::Malformed),
            "checksum outside the frame"
        );
        assert!(out.is_empty());
        return;
    }
    assert_eq!(result, Ok(()), "a complete or completable frame refused");
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.len(), frame.len());
    assert!(
        o[..VNET_HDR_LEN].iter().all(|&b| b == 0),
        "header not cleared"
    );
    let done = &o[VNET_HDR_LEN..];
    for (i, (a, b)) in eth.iter().zip(done).enumerate() {
        if !(hdr.needs_csum() && (i == at || i == at + 1)) {
            assert_eq!(a, b, "byte {i} changed by completing the checksum");
        }
    }
    if hdr.needs_csum() && (at - start) % 2 == 0 {
        // The field held the pseudo-header sum; with it, the completed data sums to zero.
        let partial = u64::from(be16(eth, at));
        assert_eq!(
            !fold(ones_sum(&done[start..]) + partial),
            0,
            "completed checksum does not verify"
        );
    }
}

fn check_segments(frame: &[u8], out: &[Vec<u8>]) {
    let hdr = VnetHeader::new_unchecked(frame);
    let eth = &frame[VNET_HDR_LEN..];
    let ipv6 = hdr.gso_kind() == GSO_TCPV6;
    let (l3, _) = tag::l3(eth).expect("finish segmented a frame without an Ethernet header");
    let l4 = usize::from(hdr.csum_start());
    let tcp_in = TcpPacket::new_checked(&eth[l4..]).expect("segmented without a TCP header");
    let tcp_hlen = usize::from(tcp_in.header_len());
    let payload = tcp_in.payload();
    let mss = usize::from(hdr.gso_size());
    assert!(mss >= MIN_MSS, "segmented with MSS {mss}");
    let count = payload.len().div_ceil(mss).max(1);
    assert_eq!(
        out.len(),
        count,
        "segments for {} bytes at MSS {mss}",
        payload.len()
    );
    let ident = Ipv4Packet::new_unchecked(&eth[l3..]).ident();
    let flags_in = eth[l4 + 13];
    let mut joined = Vec::with_capacity(payload.len());
    for (i, seg) in out.iter().enumerate() {
        assert!(
            seg[..VNET_HDR_LEN].iter().all(|&b| b == 0),
            "header not cleared"
        );
        let e = &seg[VNET_HDR_LEN..];
        assert!(
            e.len() <= l4 + tcp_hlen + mss,
            "segment of {} bytes past the {} gso_size allows",
            e.len(),
            l4 + tcp_hlen + mss
        );
        assert_eq!(&e[..l3], &eth[..l3], "Ethernet header and tag kept");
        let (src, dst) = if ipv6 {
            let ip = Ipv6Packet::new_checked(&e[l3..]).expect("a valid IPv6 header");
            assert_eq!(usize::from(ip.payload_len()), e.len() - l3 - 40);
            assert_eq!(&e[l3..l3 + 4], &eth[l3..l3 + 4]);
            assert_eq!(&e[l3 + 6..l4], &eth[l3 + 6..l4]);
            (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
            )
        } else {
            let ip = Ipv4Packet::new_checked(&e[l3..]).expect("a valid IPv4 header");
            assert!(ip.verify_checksum(), "IPv4 header checksum of segment {i}");
            assert_eq!(usize::from(ip.total_len()), e.len() - l3);
            assert_eq!(
                ip.ident(),
                ident.wrapping_add(i as u16),
                "IPv4 ids count up"
            );
            assert_eq!(&e[l3..l3 + 2], &eth[l3..l3 + 2]);
            assert_eq!(&e[l3 + 6..l3 + 10], &eth[l3 + 6..l3 + 10]);
            assert_eq!(&e[l3 + 12..l4], &eth[l3 + 12..l4]);
            (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            )
        };
        let tcp = TcpPacket::new_checked(&e[l4..]).expect("a valid TCP header");
        assert!(
            tcp.verify_checksum(&src, &dst),
            "TCP checksum of segment {i}"
        );
        assert_eq!(
            tcp.seq_number(),
            tcp_in.seq_number() + i * mss,
            "sequence number"
        );
        assert!(tcp.payload().len() <= mss);
        assert_eq!(&e[l4..l4 + 4], &eth[l4..l4 + 4], "ports kept");
        assert_eq!(
            &e[l4 + 8..l4 + 13],
            &eth[l4 + 8..l4 + 13],
            "ack, offset kept"
        );
        assert_eq!(&e[l4 + 14..l4 + 16], &eth[l4 + 14..l4 + 16], "window kept");
        assert_eq!(
            &e[l4 + 18..l4 + tcp_hlen],
            &eth[l4 + 18..l4 + tcp_hlen],
            "options kept"
        );
        let mut flags = flags_in;
        if i + 1 != count {
            flags &= !(FIN | PSH);
        }
        if i != 0 {
            flags &= !CWR;
        }
        assert_eq!(e[l4 + 13], flags, "flags of segment {i} of {count}");
        joined.extend_from_slice(tcp.payload());
    }
    assert!(
        joined == payload,
        "segment payloads do not add up to the super-frame's"
    );
}

/// A TCP super-frame as a TAP hands it over (IPv4 or IPv6, tagged or not, with IP and TCP
/// options, any flags, MSS and payload), sometimes with one thing wrong; a partial checksum
/// alone when the GSO type is none. Valid frames must be finished; the payload must come back.
pub fn offload(data: &[u8]) {
    let mut inp = Input(data);
    let ipv6 = inp.bit();
    let tagged = inp.bit();
    let ip_extra = if ipv6 {
        8 * inp.below(3)
    } else {
        4 * inp.below(11)
    };
    let tcp_opts = 4 * inp.below(11);
    let flags = inp.u8();
    let seq = inp.u32();
    let mss = inp.u16();
    let ident = inp.u16();
    let ecn = inp.bit();
    let gso = inp.below(4);
    // One in eight inputs gets one thing wrong.
    let fault = inp.u8();
    let fault = if fault >= 0xe0 { fault & 0x07 } else { 0 };
    let ip_hlen = if ipv6 { 40 } else { 20 } + ip_extra;
    let tcp_hlen = 20 + tcp_opts;
    // Mostly a few segments' worth (fast to check), sometimes up to the largest super-frame.
    let len = usize::from(inp.u16());
    let len = if inp.bit() {
        len % (65536 - ip_hlen - tcp_hlen)
    } else {
        len % 4096
    };
    let mut payload = inp.rest().to_vec();
    payload.truncate(len);
    let fill = payload.len();
    payload.extend((fill..len).map(|i| (i * 31 + 7) as u8));

    let (src4, dst4) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let src6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let dst6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let mut eth = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a];
    if tagged {
        eth.extend_from_slice(&[0x81, 0x00, 0x20, 0x0a]);
    }
    let l3 = eth.len() + 2;
    let tcp_len = tcp_hlen + payload.len();
    if ipv6 {
        eth.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        eth.extend_from_slice(&((ip_extra + tcp_len) as u16).to_be_bytes());
        eth.extend_from_slice(&[6, 64]);
        eth.extend_from_slice(&src6);
        eth.extend_from_slice(&dst6);
    } else {
        eth.extend_from_slice(&[0x08, 0x00, 0x45 + (ip_extra / 4) as u8, 0]);
        eth.extend_from_slice(&((ip_hlen + tcp_len) as u16).to_be_bytes());
        eth.extend_from_slice(&ident.to_be_bytes());
        eth.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        eth.extend_from_slice(&src4);
        eth.extend_from_slice(&dst4);
    }
    eth.resize(l3 + ip_hlen, 1);
    let l4 = eth.len();
    eth.extend_from_slice(&[0x1f, 0x90, 0xc3, 0x50]);
    eth.extend_from_slice(&seq.to_be_bytes());
    eth.extend_from_slice(&7u32.to_be_bytes());
    eth.extend_from_slice(&[((tcp_hlen / 4) as u8) << 4, flags, 0x01, 0x00, 0, 0, 0, 0]);
    eth.resize(l4 + tcp_hlen, 1);
    eth.extend_from_slice(&payload);
    seal(&mut eth, l3, l4, ipv6);

    let kind = match gso {
        0 => GSO_NONE,
        _ if ipv6 => GSO_TCPV6,
        _ => GSO_TCPV4,
    };
    let mut frame = vec![0u8; VNET_HDR_LEN];
    let mut hdr = VnetHeader::new_unchecked(&mut frame[..]);
    hdr.set_flags(1);
    hdr.set_gso_type(if ecn { kind | GSO_ECN } else { kind });
    hdr.set_gso_size(mss);
    hdr.set_hdr_len((l4 + tcp_hlen) as u16);
    hdr.set_csum_start(l4 as u16);
    hdr.set_csum_offset(16);
    frame.extend_from_slice(&eth);
    let at = |offset: usize| VNET_HDR_LEN + offset;
    match fault {
        0 => {}
        1 => {
            let other = if ipv6 { GSO_TCPV4 } else { GSO_TCPV6 };
            VnetHeader::new_unchecked(&mut frame[..]).set_gso_type(other);
        }
        2 => {
            let start = (l4 as u16)
                .wrapping_add(u16::from(flags) % 9)
                .wrapping_sub(4);
            VnetHeader::new_unchecked(&mut frame[..]).set_csum_start(start);
        }
        3 => frame[at(l3)] = flags,
        4 => frame[at(l4 + 12)] = flags,
        5 => frame.truncate(at(l4 + usize::from(flags) % (tcp_hlen + 4))),
        6 => VnetHeader::new_unchecked(&mut frame[..]).set_gso_type(flags),
        _ => {
            frame.splice(at(12)..at(12), [0x88, 0xa8, 0, 5]);
        }
    }

    let out = check_finish(&frame);
    if fault != 0 {
        return;
    }
    if kind == GSO_NONE {
        let out = out.expect("a partial checksum in place is completed");
        let seg = &out[0][VNET_HDR_LEN..];
        let tcp = TcpPacket::new_checked(&seg[l4..]).expect("TCP");
        let (src, dst) = addrs(ipv6, src4, dst4, src6, dst6);
        assert!(tcp.verify_checksum(&src, &dst), "completed TCP checksum");
        return;
    }
    if usize::from(mss) < MIN_MSS {
        assert!(out.is_none(), "MSS {mss} below the minimum accepted");
        return;
    }
    let out = out.expect("a valid super-frame is segmented");
    let (src, dst) = addrs(ipv6, src4, dst4, src6, dst6);
    let mut joined = Vec::with_capacity(payload.len());
    for seg in &out {
        let tcp = TcpPacket::new_checked(&seg[VNET_HDR_LEN + l4..]).expect("TCP");
        assert!(
            tcp.verify_checksum(&src, &dst),
            "TCP checksum over the real addresses"
        );
        joined.extend_from_slice(tcp.payload());
    }
    assert!(joined == payload, "payload lost or changed by segmentation");
}

fn addrs(
    ipv6: bool,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
) -> (IpAddress, IpAddress) {
    if ipv6 {
        (
            IpAddress::Ipv6(Ipv6Address::from(src6)),
            IpAddress::Ipv6(Ipv6Address::from(dst6)),
        )
    } else {
        (
            IpAddress::Ipv4(Ipv4Address::from(src4)),
            IpAddress::Ipv4(Ipv4Address::from(dst4)),
        )
    }
}
