//! Software GRO (`vswitch::wire::coalesce::Merge`): merging a burst of TCP segments back into
//! one super-frame. The promise checked: a merge is faithful. Whatever it merged, cut again by
//! `offload::finish`, gives back exactly the segments that went in. So nothing is lost, added
//! or changed, and a segment that was tampered with is merged only if it still belongs to the
//! flow, with good checksums. Any bytes at all go through it without a panic.

use vswitch::wire::VNET_HDR_LEN;
use vswitch::wire::coalesce::Merge;
use vswitch::wire::offload;

use super::Input;
use super::offload::{check_finish, seal};

/// A TCP super-frame (virtio-net header + Ethernet) as a TAP hands it over, from the input.
fn super_frame(inp: &mut Input) -> Vec<u8> {
    let ipv6 = inp.bit();
    let tagged = inp.bit();
    let tcp_opts = 12 * usize::from(inp.bit());
    let psh = inp.bit();
    let mss = 88 + usize::from(inp.u16()) % 1413;
    let seq = inp.u32();
    let len = usize::from(inp.u16()) % 24_000;
    let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8 ^ inp.u8()).collect();
    let (src4, dst4) = ([10u8, 0, 0, 1], [10u8, 0, 0, 2]);
    let src6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let dst6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let mut eth = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a];
    if tagged {
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    }
    let l3 = eth.len() + 2;
    let tcp_len = 20 + tcp_opts + payload.len();
    if ipv6 {
        eth.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        eth.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        eth.extend_from_slice(&[6, 64]);
        eth.extend_from_slice(&src6);
        eth.extend_from_slice(&dst6);
    } else {
        eth.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        eth.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        eth.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        eth.extend_from_slice(&src4);
        eth.extend_from_slice(&dst4);
    }
    let l4 = eth.len();
    let flags = 0x10 | if psh { 0x08 } else { 0 };
    eth.extend_from_slice(&[0x1f, 0x90, 0xc3, 0x50]);
    eth.extend_from_slice(&seq.to_be_bytes());
    eth.extend_from_slice(&7u32.to_be_bytes());
    eth.extend_from_slice(&[
        (((20 + tcp_opts) / 4) as u8) << 4,
        flags,
        0x01,
        0x00,
        0,
        0,
        0,
        0,
    ]);
    eth.extend(std::iter::repeat_n(1u8, tcp_opts));
    eth.extend_from_slice(&payload);
    seal(&mut eth, l3, l4, ipv6);
    let mut frame = vec![0u8; VNET_HDR_LEN];
    frame[0] = 1; // needs a checksum
    frame[1] = if ipv6 { 4 } else { 1 };
    frame[2..4].copy_from_slice(&((l4 + 20 + tcp_opts) as u16).to_le_bytes());
    frame[4..6].copy_from_slice(&(mss as u16).to_le_bytes());
    frame[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
    frame[8..10].copy_from_slice(&16u16.to_le_bytes());
    frame.extend_from_slice(&eth);
    frame
}

/// Merges `segments` (Ethernet frames) as a tunnel port does with a burst; returns the merged
/// frame (virtio-net header + Ethernet) and how many segments it took.
fn merge(segments: &[Vec<u8>]) -> (Vec<u8>, usize) {
    let Some(first) = segments.first() else {
        return (Vec::new(), 0);
    };
    let mut buf = vec![0u8; VNET_HDR_LEN + 70_000];
    let n = first.len().min(70_000);
    buf[VNET_HDR_LEN..VNET_HDR_LEN + n].copy_from_slice(&first[..n]);
    let mut len = n;
    let Some(mut m) = Merge::start(&first[..n]) else {
        buf.truncate(VNET_HDR_LEN + len);
        return (buf, 1);
    };
    let mut taken = 1;
    for s in &segments[1..] {
        if !m.append(&mut buf[VNET_HDR_LEN..], &mut len, s) {
            break;
        }
        taken += 1;
    }
    assert_eq!(m.segments() as usize, taken);
    m.finish(&mut buf, len);
    buf.truncate(VNET_HDR_LEN + len);
    (buf, taken)
}

/// Raw bytes (first bit set: any frames at all) or a real burst, maybe tampered with.
pub fn coalesce(data: &[u8]) {
    let mut inp = Input(data);
    if inp.bit() {
        // Frames of any bytes, any lengths: no panic, whatever happens.
        let mut frames = Vec::new();
        while !inp.is_empty() && frames.len() < 16 {
            let n = usize::from(inp.u16()) % 2000;
            frames.push(inp.take(n).to_vec());
        }
        let _ = merge(&frames);
        return;
    }
    let frame = super_frame(&mut inp);
    let Some(out) = check_finish(&frame) else {
        return;
    };
    let mut segments: Vec<Vec<u8>> = out
        .into_iter()
        .map(|s| s[VNET_HDR_LEN..].to_vec())
        .collect();
    if segments.is_empty() {
        return;
    }
    // Tamper: flip a byte, swap, drop, repeat or cut a segment.
    let k = inp.below(segments.len().min(256));
    let j = inp.below(segments.len().min(256));
    match inp.below(8) {
        0 => {
            let at = usize::from(inp.u16()) % segments[k].len().max(1);
            if let Some(b) = segments[k].get_mut(at) {
                *b ^= inp.u8() | 1;
            }
        }
        1 => segments.swap(k, j),
        2 => {
            segments.remove(k);
        }
        3 => {
            let copy = segments[k].clone();
            segments.insert(j, copy);
        }
        4 => {
            let keep = usize::from(inp.u16()) % segments[k].len().max(1);
            segments[k].truncate(keep);
        }
        _ => {}
    }
    let (merged, taken) = merge(&segments);
    if taken < 2 {
        return;
    }
    let mut again = Vec::new();
    let mut scratch = Vec::new();
    offload::finish(&merged, &mut scratch, |s| {
        again.push(s[VNET_HDR_LEN..].to_vec())
    })
    .expect("a merged frame can be cut again");
    assert_eq!(again.len(), taken, "segments out of {taken} merged");
    for (i, (out, inp)) in again.iter().zip(&segments).enumerate() {
        assert_eq!(out, inp, "segment {i} of {taken} changed by the merge");
    }
}
