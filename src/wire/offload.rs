//! Finishing in software what a virtio-net header leaves to the receiver, for ports that cannot
//! take partial checksums or GSO super-frames (QEMU's socket backends, say): complete the
//! checksum, and cut TCP super-frames (IPv4 and IPv6) into segments of `gso_size`, with the
//! lengths, IPv4 ids, sequence numbers, flags and checksums a NIC's TSO would give them.
//!
//! The frame given is never modified: other egress ports may still want it as it is. Results
//! are built in a scratch buffer the caller keeps, one segment at a time.

use super::EthernetProtocol;
use super::vlan;
use super::vnet::{GSO_NONE, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN, VnetHeader};

const PROTO_TCP: u8 = 6;

/// The smallest MSS accepted (Linux's TCP_MIN_MSS): a smaller one would turn one frame into
/// thousands of segments.
const MIN_MSS: usize = 88;

/// TCP flags.
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Why a frame could not be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    #[error("GSO type {0:#x} is not supported in software")]
    Unsupported(u8),
    #[error("the virtio-net header does not match the frame")]
    Malformed,
}

/// The ones' complement sum of `data` (as 16-bit big-endian words) added to `sum`, unfolded.
/// Carries are folded once, in [`fold`]: a u64 holds the plain sum of 2^48 words, far more than
/// any buffer.
fn sum_words(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a sum to 16 bits and complements it: the Internet checksum.
fn fold(mut sum: u64) -> u16 {
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
    let mut csum = checksum(&eth[start..]);
    // UDP (its checksum is 6 bytes in) sends a computed 0 as all ones; 0 means "none".
    if at - start == 6 && csum == 0 {
        csum = 0xffff;
    }
    eth[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
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
    let Some((l3, ethertype)) = vlan::l3(eth) else {
        return Err(bad);
    };
    // TCP starts where the partial checksum does.
    let l4 = usize::from(hdr.csum_start());
    if l4 + 20 > eth.len() {
        return Err(bad);
    }
    let Some(ip_hlen) = l4.checked_sub(l3) else {
        return Err(bad);
    };
    let ip_ok = if ipv6 {
        ethertype == EthernetProtocol::Ipv6 && ip_hlen >= 40
    } else {
        let ihl = usize::from(eth[l3] & 0x0f) * 4;
        ethertype == EthernetProtocol::Ipv4 && eth[l3] >> 4 == 4 && ihl >= 20 && ihl == ip_hlen
    };
    if !ip_ok {
        return Err(bad);
    }
    let tcp_hlen = usize::from(eth[l4 + 12] >> 4) * 4;
    let headers = l4 + tcp_hlen;
    let mss = usize::from(hdr.gso_size());
    // Each segment's IP length must fit its 16-bit field.
    let largest = ip_hlen + tcp_hlen + mss.min(eth.len() - headers.min(eth.len()));
    if tcp_hlen < 20 || headers > eth.len() || mss < MIN_MSS || largest > 65535 {
        return Err(bad);
    }
    let payload = &eth[headers..];
    let count = payload.len().div_ceil(mss).max(1);
    let seq = be32(eth, l4 + 4);
    let flags = eth[l4 + 13];
    let ipv4_id = if ipv6 { 0 } else { be16(eth, l3 + 4) };

    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let first = i == 0;
        let last = i + 1 == count;
        scratch.clear();
        scratch.resize(VNET_HDR_LEN, 0);
        scratch.extend_from_slice(&eth[..headers]);
        scratch.extend_from_slice(chunk);
        let seg = &mut scratch[VNET_HDR_LEN..];
        let l4_len = tcp_hlen + chunk.len();
        if ipv6 {
            let len = (ip_hlen - 40 + l4_len) as u16;
            seg[l3 + 4..l3 + 6].copy_from_slice(&len.to_be_bytes());
        } else {
            let total = (ip_hlen + l4_len) as u16;
            seg[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            let id = ipv4_id.wrapping_add(i as u16);
            seg[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            seg[l3 + 10..l3 + 12].fill(0);
            let csum = checksum(&seg[l3..l4]);
            seg[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
        }
        let seg_seq = seq.wrapping_add((i * mss) as u32);
        seg[l4 + 4..l4 + 8].copy_from_slice(&seg_seq.to_be_bytes());
        let mut f = flags;
        if !last {
            f &= !(FIN | PSH);
        }
        if !first {
            f &= !CWR;
        }
        seg[l4 + 13] = f;
        // The checksum over the pseudo-header, the TCP header and this segment's payload.
        seg[l4 + 16..l4 + 18].fill(0);
        let mut sum = if ipv6 {
            sum_words(0, &seg[l3 + 8..l3 + 40])
        } else {
            sum_words(0, &seg[l3 + 12..l3 + 20])
        };
        sum += u64::from(PROTO_TCP);
        sum += l4_len as u64;
        let csum = fold(sum_words(sum, &seg[l4..]));
        seg[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
        emit(scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
