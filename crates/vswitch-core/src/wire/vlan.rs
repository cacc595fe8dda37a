//! IEEE 802.1Q tags: a checked view of one tag ([`VlanTag`], [`VlanTagRepr`]), the stack of
//! tags after the MAC addresses ([`TagStack`]), and pushing or popping a tag in a frame buffer
//! that starts with the virtio-net header.
//!
//! The bridge classifies frames by one 802.1Q C-tag ([`tci`], [`l3`]); [`TagStack`] also reads
//! 802.1ad S-tags and pre-standard QinQ tags, stacked, for code that must see past the first.
//!
//! Push and pop move only the 24 bytes in front of the tag (the virtio-net header and both
//! MACs), into headroom the buffer keeps before the header, so a 64 KiB frame is never copied.
//! The virtio-net header's offsets into the frame (`csum_start`, `hdr_len`) move with the tag,
//! so partial checksums and GSO super-frames stay valid.

use std::fmt;

use super::vnet::{VNET_HDR_LEN, VnetHeader};
use super::{ETHERNET_HEADER_LEN, EthernetFrame, EthernetProtocol};

/// Bytes an 802.1Q tag adds.
pub const VLAN_TAG_LEN: usize = field::TCI.end;
/// The 802.1Q tag protocol identifier (C-tag), the only one [`tci`] and [`l3`] treat as a tag.
pub const TPID_8021Q: u16 = 0x8100;
/// The 802.1ad tag protocol identifier (S-tag, the outer tag of QinQ).
pub const TPID_8021AD: u16 = 0x88a8;
/// The pre-standard QinQ tag protocol identifier, still sent as the outer tag by older switches.
pub const TPID_QINQ: u16 = 0x9100;
/// Highest usable VLAN id; 4095 is reserved.
pub const MAX_VID: u16 = 4094;

/// Bytes in front of the tag: destination and source MAC.
const MACS_LEN: usize = 12;

/// Byte ranges of a tag, counted from its TPID.
mod field {
    use std::ops::Range;
    pub const TPID: Range<usize> = 0..2;
    pub const TCI: Range<usize> = 2..4;
    /// What follows the tag: the next tag's TPID, or the payload's EtherType.
    pub const ETHERTYPE: Range<usize> = 4..6;
}

/// Whether an EtherType introduces a VLAN tag: a C-tag, an S-tag or a pre-standard QinQ tag.
pub fn is_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ)
}

/// The VLAN id part of a TCI.
pub fn vid(tci: u16) -> u16 {
    tci & 0x0fff
}

/// Why bytes could not be read as a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("frame shorter than its Ethernet header or a VLAN tag and the EtherType after it")]
    Truncated,
    #[error("EtherType {0:#06x} is not a VLAN tag protocol")]
    NotATag(u16),
}

/// A read/write view of a VLAN tag and the EtherType after it, in a buffer that starts at the
/// tag's TPID (for the outermost tag, right after the MACs).
#[derive(Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking its length; accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps a buffer after checking that it holds the TPID, the TCI and the EtherType after
    /// them. The TPID itself is not checked: [`VlanTagRepr::parse`] and [`is_tpid`] do that.
    pub fn new_checked(buffer: T) -> Result<Self, TagError> {
        if buffer.as_ref().len() < field::ETHERTYPE.end {
            return Err(TagError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    fn u16_at(&self, range: std::ops::Range<usize>) -> u16 {
        let bytes = &self.buffer.as_ref()[range];
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    pub fn tpid(&self) -> u16 {
        self.u16_at(field::TPID)
    }

    /// The tag control information: priority, drop eligibility and VLAN id.
    pub fn tci(&self) -> u16 {
        self.u16_at(field::TCI)
    }

    /// The priority code point (802.1p), 0 to 7.
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// The drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// The VLAN id; 0 marks a priority tag, which carries only a priority.
    pub fn vid(&self) -> u16 {
        vid(self.tci())
    }

    /// The EtherType after the tag: another tag's TPID, or the payload's protocol.
    pub fn ethertype(&self) -> EthernetProtocol {
        EthernetProtocol::from(self.u16_at(field::ETHERTYPE))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    fn set_u16_at(&mut self, range: std::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_tpid(&mut self, value: u16) {
        self.set_u16_at(field::TPID, value);
    }

    /// Writes the TCI; the rest of the tag is left as it is, so a tag can be written into a
    /// buffer that ends right after it.
    pub fn set_tci(&mut self, value: u16) {
        self.set_u16_at(field::TCI, value);
    }

    pub fn set_ethertype(&mut self, value: EthernetProtocol) {
        self.set_u16_at(field::ETHERTYPE, value.into());
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for VlanTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VlanTag")
            .field("tpid", &format_args!("{:#06x}", self.tpid()))
            .field("tci", &format_args!("{:#06x}", self.tci()))
            .field("ethertype", &self.ethertype())
            .finish()
    }
}

/// A VLAN tag as plain values, parsed from a [`VlanTag`] or emitted into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTagRepr {
    /// [`TPID_8021Q`], [`TPID_8021AD`] or [`TPID_QINQ`].
    pub tpid: u16,
    /// Priority code point, 0 to 7.
    pub pcp: u8,
    pub dei: bool,
    /// VLAN id, 0 to 4095.
    pub vid: u16,
    /// What follows the tag.
    pub ethertype: EthernetProtocol,
}

impl VlanTagRepr {
    /// Reads a tag, refusing one whose TPID is not a VLAN tag's ([`is_tpid`]).
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<Self, TagError> {
        let tpid = tag.tpid();
        if !is_tpid(tpid) {
            return Err(TagError::NotATag(tpid));
        }
        Ok(VlanTagRepr {
            tpid,
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    /// The TCI of these values; `pcp` and `vid` are cut to their 3 and 12 bits.
    pub fn tci(&self) -> u16 {
        u16::from(self.pcp & 0x7) << 13 | u16::from(self.dei) << 12 | vid(self.vid)
    }

    /// Writes the whole tag (TPID, TCI, EtherType after it) into `tag`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) {
        tag.set_tpid(self.tpid);
        tag.set_tci(self.tci());
        tag.set_ethertype(self.ethertype);
    }
}

/// The VLAN tags after the MACs of an Ethernet frame, outermost first, however many there are
/// (C-tags, S-tags and pre-standard QinQ tags alike), and where the payload after them starts.
/// Every length is checked once, in [`TagStack::parse`]; the accessors cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct TagStack<'a> {
    eth: &'a [u8],
    depth: usize,
}

impl<'a> TagStack<'a> {
    /// Walks the tags of the Ethernet frame `eth`; fails if the frame is shorter than its
    /// header or than a tag it claims and the EtherType after that tag.
    pub fn parse(eth: &'a [u8]) -> Result<Self, TagError> {
        let frame = EthernetFrame::new_checked(eth).map_err(|_| TagError::Truncated)?;
        let mut next = u16::from(frame.ethertype());
        let mut depth = 0;
        // Each tag read moves on by VLAN_TAG_LEN, so the walk ends within the frame.
        while is_tpid(next) {
            let tag = VlanTag::new_checked(&eth[MACS_LEN + depth * VLAN_TAG_LEN..])?;
            next = u16::from(tag.ethertype());
            depth += 1;
        }
        Ok(TagStack { eth, depth })
    }

    /// How many tags the frame carries.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The tag `index` places in from the outermost (0), if the frame has that many: `get(1)`
    /// is the tag behind an S-tag, or behind a priority tag.
    pub fn get(&self, index: usize) -> Option<VlanTag<&'a [u8]>> {
        (index < self.depth).then(|| self.tag(index))
    }

    /// The tags, outermost first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = VlanTag<&'a [u8]>> + use<'a> {
        let stack = *self;
        (0..self.depth).map(move |i| stack.tag(i))
    }

    /// Where the payload starts, counted from the start of the frame.
    pub fn l3(&self) -> usize {
        ETHERNET_HEADER_LEN + self.depth * VLAN_TAG_LEN
    }

    /// The payload's EtherType, after the innermost tag.
    pub fn ethertype(&self) -> EthernetProtocol {
        match self.depth.checked_sub(1) {
            None => EthernetFrame::new_unchecked(self.eth).ethertype(),
            Some(innermost) => self.tag(innermost).ethertype(),
        }
    }

    /// Tag `index`, which `parse` checked is there.
    fn tag(&self, index: usize) -> VlanTag<&'a [u8]> {
        VlanTag::new_unchecked(&self.eth[MACS_LEN + index * VLAN_TAG_LEN..])
    }
}

/// The TCI of the 802.1Q tag right after the MACs of an Ethernet frame, if it has one (and the
/// EtherType after it). Other tags (0x88a8, 0x9100) are payload here; see [`TagStack`].
pub fn tci(eth: &[u8]) -> Option<u16> {
    let tag = VlanTag::new_checked(eth.get(MACS_LEN..)?).ok()?;
    (tag.tpid() == TPID_8021Q).then(|| tag.tci())
}

/// Where the payload of an Ethernet frame starts and its EtherType, past the 802.1Q tag if there
/// is one; `None` if the frame is too short for its header (or for the tag it claims). Only one
/// 0x8100 tag is skipped; see [`TagStack`] for stacked tags.
pub fn l3(eth: &[u8]) -> Option<(usize, EthernetProtocol)> {
    let ethertype = EthernetFrame::new_checked(eth).ok()?.ethertype();
    if u16::from(ethertype) != TPID_8021Q {
        return Some((ETHERNET_HEADER_LEN, ethertype));
    }
    let tag = VlanTag::new_checked(&eth[MACS_LEN..]).ok()?;
    Some((ETHERNET_HEADER_LEN + VLAN_TAG_LEN, tag.ethertype()))
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
    let mut tag = VlanTag::new_unchecked(&mut buf[new + VNET_HDR_LEN + MACS_LEN..]);
    tag.set_tpid(TPID_8021Q);
    tag.set_tci(tci);
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
    let mut view = VlanTag::new_unchecked(&mut buf[tag..]);
    view.set_tpid(tpid);
    view.set_tci(tci);
    shift_offsets(&mut buf[..VNET_HDR_LEN], true);
    Some(len + VLAN_TAG_LEN)
}

/// Replaces the TCI of the tag in the frame `buf[start..]`, which carries one.
pub fn set_tci(buf: &mut [u8], start: usize, tci: u16) {
    VlanTag::new_unchecked(&mut buf[start + VNET_HDR_LEN + MACS_LEN..]).set_tci(tci);
}

#[cfg(test)]
mod tests;
