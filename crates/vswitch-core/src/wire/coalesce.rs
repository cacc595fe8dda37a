//! Merging consecutive TCP segments of one flow into one super-frame described by a virtio-net
//! header (GSO TCPv4/TCPv6 with a partial checksum): what a NIC's GRO does, for ports that
//! receive a burst of one flow's segments at once (a tunnel's UDP GRO batch). The switch then
//! decides once for the lot, and a TAP takes it in one write.
//!
//! Only plain data segments merge: IPv4 without options or fragments, or IPv6 with TCP right
//! after its header; ACK (and PSH on the last one) and no other flag; the same addresses, ports,
//! ACK number, window and TCP options (timestamps included) as the first; sequence numbers that
//! follow on; every segment but the last of the first one's size. Each segment's checksums are
//! verified before it is merged: a merged frame's checksum is left for the receiver to finish,
//! so a corrupt segment must never be hidden in one.

use super::offload;
use super::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN, VnetHeader};

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const TPID_8021Q: [u8; 2] = [0x81, 0x00];
const TCP: u8 = 6;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
/// The largest IPv4 total length or IPv6 payload length.
const MAX_L3: usize = 65_535;

/// A merge in progress: where the first segment's headers are and what may follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    /// Offsets in the Ethernet frame of the IP and TCP headers, and of the payload.
    l3: usize,
    l4: usize,
    payload: usize,
    v6: bool,
    mss: usize,
    next_seq: u32,
    segments: u32,
    /// No more segments may follow (a short one or PSH was merged).
    done: bool,
}

/// The 16-bit ones' complement sum of `data` added to `acc`, unfolded.
fn sum(acc: u64, data: &[u8]) -> u64 {
    offload::sum_words(acc, data)
}

/// A sum folded to 16 bits (not complemented).
fn fold(acc: u64) -> u16 {
    !offload::fold(acc)
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The headers of a plain TCP data segment in `eth`: (l3, l4, payload offset, IPv6), with its
/// IP and TCP checksums verified; `None` if it is anything else.
fn segment(eth: &[u8]) -> Option<(usize, usize, usize, bool)> {
    let mut l3 = 14;
    let mut ethertype = eth.get(12..14)?;
    if ethertype == TPID_8021Q {
        ethertype = eth.get(16..18)?;
        l3 = 18;
    }
    let (l4, v6, tcp_len) = if ethertype == ETHERTYPE_IPV4 {
        let ip = eth.get(l3..l3 + 20)?;
        let plain = ip[0] == 0x45 && ip[9] == TCP && be16(ip, 6) & 0x3fff == 0;
        if !plain || be16(ip, 2) != eth.len() - l3 || fold(sum(0, ip)) != 0xffff {
            return None;
        }
        (l3 + 20, false, eth.len() - l3 - 20)
    } else if ethertype == ETHERTYPE_IPV6 {
        let ip = eth.get(l3..l3 + 40)?;
        if ip[0] >> 4 != 6 || ip[6] != TCP || be16(ip, 4) != eth.len() - l3 - 40 {
            return None;
        }
        (l3 + 40, true, eth.len() - l3 - 40)
    } else {
        return None;
    };
    let tcp = eth.get(l4..l4 + 20)?;
    let header = usize::from(tcp[12] >> 4) * 4;
    let flags = tcp[13];
    if header < 20 || header >= tcp_len || flags & !(ACK | PSH) != 0 || flags & ACK == 0 {
        return None;
    }
    if fold(sum(pseudo(eth, l3, l4, v6), &eth[l4..])) != 0xffff {
        return None;
    }
    Some((l3, l4, l4 + header, v6))
}

/// The sum of the TCP pseudo-header for a segment of `eth.len() - l4` bytes.
fn pseudo(eth: &[u8], l3: usize, l4: usize, v6: bool) -> u64 {
    let len = (eth.len() - l4) as u64;
    let addrs = if v6 {
        &eth[l3 + 8..l3 + 40]
    } else {
        &eth[l3 + 12..l3 + 20]
    };
    sum(0, addrs) + u64::from(TCP) + (len >> 16) + (len & 0xffff)
}

impl Merge {
    /// Starts a merge with the Ethernet frame `eth` as its first segment; `None` if it is not a
    /// plain TCP data segment with good checksums (it must then go on as it is).
    pub fn start(eth: &[u8]) -> Option<Merge> {
        let (l3, l4, payload, v6) = segment(eth)?;
        if eth[l4 + 13] & PSH != 0 {
            return None;
        }
        let mss = eth.len() - payload;
        Some(Merge {
            l3,
            l4,
            payload,
            v6,
            mss,
            next_seq: be32(eth, l4 + 4).wrapping_add(mss as u32),
            segments: 1,
            done: false,
        })
    }

    /// Appends `next` (an Ethernet frame) to the merged frame `frame[..*len]` (Ethernet, as
    /// started, with room after it) if it is the flow's next segment; returns whether it did.
    pub fn append(&mut self, frame: &mut [u8], len: &mut usize, next: &[u8]) -> bool {
        if self.done || next.len() < self.payload {
            return false;
        }
        let (l3, l4, payload) = (self.l3, self.l4, self.payload);
        let data = next.len() - payload;
        if data == 0 || data > self.mss || *len + data > frame.len() || *len + data - l3 > MAX_L3 {
            return false;
        }
        // Everything that must be the same: Ethernet (and tag), the IP fields but id, lengths
        // and checksum, and the TCP header but sequence number, flags and checksum.
        let first = &frame[..payload];
        let same_ip = if self.v6 {
            first[l3..l3 + 4] == next[l3..l3 + 4] && first[l3 + 6..l4] == next[l3 + 6..l4]
        } else {
            first[l3..l3 + 2] == next[l3..l3 + 2]
                && first[l3 + 6..l3 + 10] == next[l3 + 6..l3 + 10]
                && first[l3 + 12..l4] == next[l3 + 12..l4]
        };
        let same_tcp = first[l4..l4 + 4] == next[l4..l4 + 4]
            && first[l4 + 8..l4 + 13] == next[l4 + 8..l4 + 13]
            && first[l4 + 14..l4 + 16] == next[l4 + 14..l4 + 16]
            && first[l4 + 18..payload] == next[l4 + 18..payload];
        if first[..l3] != next[..l3] || !same_ip || !same_tcp {
            return false;
        }
        if be32(next, l4 + 4) != self.next_seq || segment(next) != Some((l3, l4, payload, self.v6))
        {
            return false;
        }
        frame[*len..*len + data].copy_from_slice(&next[payload..]);
        *len += data;
        self.next_seq = self.next_seq.wrapping_add(data as u32);
        self.segments += 1;
        if next[l4 + 13] & PSH != 0 {
            frame[l4 + 13] |= PSH;
            self.done = true;
        }
        if data < self.mss {
            self.done = true;
        }
        true
    }

    /// Segments merged so far, the first included.
    pub fn segments(&self) -> u32 {
        self.segments
    }

    /// Makes the merged frame `buf[..VNET_HDR_LEN + len]` (virtio-net header, then Ethernet)
    /// whole: IP lengths and checksum, the TCP checksum left partial, and the header saying
    /// so. A merge of one segment is left as it was.
    pub fn finish(&self, buf: &mut [u8], len: usize) {
        if self.segments < 2 {
            return;
        }
        let eth = &mut buf[VNET_HDR_LEN..VNET_HDR_LEN + len];
        let (l3, l4) = (self.l3, self.l4);
        if self.v6 {
            let payload = (len - l3 - 40) as u16;
            eth[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
        } else {
            let total = (len - l3) as u16;
            eth[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            eth[l3 + 10..l3 + 12].fill(0);
            let check = !fold(sum(0, &eth[l3..l3 + 20]));
            eth[l3 + 10..l3 + 12].copy_from_slice(&check.to_be_bytes());
        }
        let partial = fold(pseudo(eth, l3, l4, self.v6));
        eth[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let mut hdr = VnetHeader::new_unchecked(&mut buf[..VNET_HDR_LEN]);
        hdr.set_flags(F_NEEDS_CSUM);
        hdr.set_gso_type(if self.v6 { GSO_TCPV6 } else { GSO_TCPV4 });
        hdr.set_hdr_len(self.payload as u16);
        hdr.set_gso_size(self.mss as u16);
        hdr.set_csum_start(l4 as u16);
        hdr.set_csum_offset(16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSO super-frame of `segments` full segments of `mss` bytes (and a shorter last one if
    /// `tail` > 0), as a TAP would hand it over.
    fn super_frame(v6: bool, mss: usize, segments: usize, tail: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..mss * segments + tail)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let l3 = 14;
        let (ip_len, l4) = if v6 { (40, l3 + 40) } else { (20, l3 + 20) };
        let mut f = vec![0u8; VNET_HDR_LEN];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(if v6 { &ETHERTYPE_IPV6 } else { &ETHERTYPE_IPV4 });
        let tcp_len = 32 + data.len();
        if v6 {
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            f.extend_from_slice(&[TCP, 64]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((ip_len + tcp_len) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 1, 0x40, 0, 64, TCP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        }
        // TCP: ports, seq, ack, 32-byte header (timestamps), ACK|PSH, window, csum, urg.
        f.extend_from_slice(&[0x1f, 0x90, 0xc3, 0x50, 0, 0, 0x10, 0, 0, 0, 0x20, 0]);
        f.extend_from_slice(&[0x80, ACK | PSH, 0x01, 0xf5, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
        f.extend_from_slice(&data);
        let mut hdr = VnetHeader::new_unchecked(&mut f[..VNET_HDR_LEN]);
        hdr.set_flags(F_NEEDS_CSUM);
        hdr.set_gso_type(if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
        hdr.set_hdr_len((l4 + 32) as u16);
        hdr.set_gso_size(mss as u16);
        hdr.set_csum_start(l4 as u16);
        hdr.set_csum_offset(16);
        let eth = &mut f[VNET_HDR_LEN..];
        let partial = fold(pseudo(eth, l3, l4, v6));
        eth[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        f
    }

    /// Its segments, as a receiver sees them after segmentation.
    fn segments_of(frame: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        offload::finish(frame, &mut scratch, |s| {
            out.push(s[VNET_HDR_LEN..].to_vec())
        })
        .unwrap();
        out
    }

    /// Merges `segments` as the VXLAN port does; returns the merged frame (header + Ethernet)
    /// and how many segments went in.
    fn merge(segments: &[Vec<u8>]) -> (Vec<u8>, u32) {
        let mut buf = vec![0u8; VNET_HDR_LEN + 70_000];
        let first = &segments[0];
        buf[VNET_HDR_LEN..VNET_HDR_LEN + first.len()].copy_from_slice(first);
        let mut len = first.len();
        let Some(mut m) = Merge::start(first) else {
            buf.truncate(VNET_HDR_LEN + len);
            return (buf, 1);
        };
        for s in &segments[1..] {
            if !m.append(&mut buf[VNET_HDR_LEN..], &mut len, s) {
                break;
            }
        }
        m.finish(&mut buf, len);
        buf.truncate(VNET_HDR_LEN + len);
        (buf, m.segments())
    }

    #[test]
    fn segments_merge_back_into_the_super_frame_they_came_from() {
        for v6 in [false, true] {
            let original = super_frame(v6, 1000, 40, 123);
            let segments = segments_of(&original);
            assert_eq!(segments.len(), 41);
            let (merged, count) = merge(&segments);
            assert_eq!(count, 41, "v6={v6}");
            // Cut again, the merged frame gives the very same segments.
            assert_eq!(segments_of(&merged), segments, "v6={v6}");
            let hdr = VnetHeader::new_unchecked(&merged[..]);
            assert_eq!((hdr.gso_size(), hdr.needs_csum()), (1000, true));
        }
    }

    #[test]
    fn what_breaks_the_flow_is_not_merged() {
        let segments = segments_of(&super_frame(false, 500, 6, 0));
        let bad_seq = {
            let mut s = segments.clone();
            s[3][14 + 20 + 7] ^= 1;
            s
        };
        assert_eq!(merge(&bad_seq).1, 3, "a gap in sequence numbers");
        let corrupt = {
            let mut s = segments.clone();
            *s[2].last_mut().unwrap() ^= 0x40;
            s
        };
        assert_eq!(merge(&corrupt).1, 2, "a segment whose checksum fails");
        let mut first_bad = segments.clone();
        *first_bad[0].last_mut().unwrap() ^= 1;
        assert!(
            Merge::start(&first_bad[0]).is_none(),
            "a bad first segment starts nothing"
        );
        let other_flow = {
            let mut s = segments.clone();
            s[4][14 + 20 + 1] ^= 1; // source port
            s
        };
        assert_eq!(merge(&other_flow).1, 4);
        // The last segment carries PSH: it ends the merge, and the merged frame keeps PSH.
        let (merged, count) = merge(&segments);
        assert_eq!(count, 6);
        assert_ne!(merged[VNET_HDR_LEN + 14 + 20 + 13] & PSH, 0);
    }
}
