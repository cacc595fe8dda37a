//! Finishing in software what a virtio-net header leaves to the receiver, for ports that cannot
//! take partial checksums or GSO super-frames (QEMU's socket backends, say): complete the
//! checksum, and cut TCP super-frames (IPv4 and IPv6) into segments of `gso_size`, with the
//! lengths, IPv4 ids, sequence numbers, flags and checksums a NIC's TSO would give them.
//!
//! The frame given is never modified: other egress ports may still want it as it is. Results
//! are built in a scratch buffer the caller keeps, one segment at a time.
//!
//! Segments are read and rewritten through smoltcp's IPv4, IPv6 and TCP views.

use smoltcp::wire::{
    IPV4_HEADER_LEN, IPV6_HEADER_LEN, IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket,
};

use super::EthernetProtocol;
use super::vlan;
use super::vnet::{GSO_NONE, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN, VnetHeader};

/// The smallest MSS accepted (Linux's TCP_MIN_MSS): a smaller one would turn one frame into
/// thousands of segments.
const MIN_MSS: usize = 88;

/// Why a frame could not be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    #[error("GSO type {0:#x} is not supported in software")]
    Unsupported(u8),
    #[error("the virtio-net header does not match the frame")]
    Malformed,
}

/// The ones' complement sum of `data` (as 16-bit big-endian words) added to `sum`, unfolded
/// (under 2^34 more than `sum`); carries are folded in [`fold`]. The data is summed eight bytes
/// at a time with the carry added back in, which folds to the same 16-bit sum (2^64 - 1 is a
/// multiple of 2^16 - 1) at a quarter of the additions. (smoltcp's `checksum::data` sums into
/// a u32, which 128 KiB would overflow.)
pub(crate) fn sum_words(sum: u64, data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let word = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let (next, carry) = acc.overflowing_add(word);
        acc = next + u64::from(carry);
    }
    let mut acc = (acc >> 32) + (acc & 0xffff_ffff);
    let mut pairs = words.remainder().chunks_exact(2);
    for w in &mut pairs {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    sum + acc
}

/// Folds a sum to 16 bits and complements it: the Internet checksum.
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum_words(0, data))
}

/// Calls `emit` with each complete frame (a zeroed virtio-net header, then Ethernet) that
/// `frame` (header + Ethernet) stands for: itself with its checksum completed, or its segments.
/// `scratch` is reused between calls to avoid allocating per frame.
pub fn finish(
    frame: &[u8],
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<(), FinishError> {
    let hdr = VnetHeader::new_checked(frame).map_err(|_| FinishError::Malformed)?;
    let kind = hdr.gso_kind();
    match kind {
        GSO_NONE => {
            scratch.clear();
            scratch.extend_from_slice(frame);
            VnetHeader::new_unchecked(&mut scratch[..]).clear();
            if hdr.needs_csum() {
                let start = usize::from(hdr.csum_start());
                let at = start + usize::from(hdr.csum_offset());
                complete_csum(&mut scratch[VNET_HDR_LEN..], start, at)?;
            }
            emit(scratch);
            Ok(())
        }
        GSO_TCPV4 | GSO_TCPV6 => segment_tcp(frame, kind == GSO_TCPV6, scratch, emit),
        other => Err(FinishError::Unsupported(other)),
    }
}

/// Completes a partial checksum: the field at `at` holds the pseudo-header sum; the checksum
/// covers everything from `start` to the end.
fn complete_csum(eth: &mut [u8], start: usize, at: usize) -> Result<(), FinishError> {
    if at + 2 > eth.len() || start > at {
        return Err(FinishError::Malformed);
    }
    // No UDP or TCP view here: the header says where the checksum is, not which protocol.
    let mut csum = checksum(&eth[start..]);
    // UDP (its checksum is 6 bytes in) sends a computed 0 as all ones; 0 means "none".
    if at - start == 6 && csum == 0 {
        csum = 0xffff;
    }
    eth[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// Cuts a TCP super-frame into segments of `gso_size` payload bytes.
fn segment_tcp(
    frame: &[u8],
    ipv6: bool,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<(), FinishError> {
    let hdr = VnetHeader::new_unchecked(frame);
    let eth = &frame[VNET_HDR_LEN..];
    let bad = FinishError::Malformed;
    let (l3, ethertype) = vlan::l3(eth).ok_or(bad)?;
    // TCP starts where the partial checksum does.
    let l4 = usize::from(hdr.csum_start());
    let tcp = eth.get(l4..).ok_or(bad)?;
    let tcp = TcpPacket::new_checked(tcp).map_err(|_| bad)?;
    let ip_hlen = l4.checked_sub(l3).ok_or(bad)?;
    // Unchecked IP views: `new_checked` would refuse a length field that segmenting rewrites.
    let ipv4_id = if ipv6 {
        if ethertype != EthernetProtocol::Ipv6 || ip_hlen < IPV6_HEADER_LEN {
            return Err(bad);
        }
        0
    } else {
        let ip = Ipv4Packet::new_unchecked(&eth[l3..]);
        let ihl = usize::from(ip.header_len());
        if ethertype != EthernetProtocol::Ipv4
            || ip.version() != 4
            || ihl < IPV4_HEADER_LEN
            || ihl != ip_hlen
        {
            return Err(bad);
        }
        ip.ident()
    };
    let tcp_hlen = usize::from(tcp.header_len());
    let headers = l4 + tcp_hlen;
    let payload = tcp.payload();
    let mss = usize::from(hdr.gso_size());
    // Each segment's IP length must fit its 16-bit field.
    if mss < MIN_MSS || ip_hlen + tcp_hlen + mss.min(payload.len()) > 65535 {
        return Err(bad);
    }
    let count = payload.len().div_ceil(mss).max(1);
    let seq = tcp.seq_number();

    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        scratch.clear();
        scratch.resize(VNET_HDR_LEN, 0);
        scratch.extend_from_slice(&eth[..headers]);
        scratch.extend_from_slice(chunk);
        let (ip, tcp) = scratch[VNET_HDR_LEN + l3..].split_at_mut(ip_hlen);
        let l4_len = tcp_hlen + chunk.len();
        let (src, dst): (IpAddress, IpAddress) = if ipv6 {
            let mut ip = Ipv6Packet::new_unchecked(ip);
            ip.set_payload_len((ip_hlen - IPV6_HEADER_LEN + l4_len) as u16);
            (ip.src_addr().into(), ip.dst_addr().into())
        } else {
            let mut ip = Ipv4Packet::new_unchecked(ip);
            ip.set_total_len((ip_hlen + l4_len) as u16);
            ip.set_ident(ipv4_id.wrapping_add(i as u16));
            ip.fill_checksum();
            (ip.src_addr().into(), ip.dst_addr().into())
        };
        let mut tcp = TcpPacket::new_unchecked(tcp);
        tcp.set_seq_number(seq + i * mss);
        // As a NIC's TSO: FIN and PSH on the last segment only, CWR on the first only.
        if i + 1 != count {
            tcp.set_fin(false);
            tcp.set_psh(false);
        }
        if i != 0 {
            tcp.set_cwr(false);
        }
        // Over the pseudo-header, the TCP header and this segment's payload.
        tcp.fill_checksum(&src, &dst);
        emit(scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
