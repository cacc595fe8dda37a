//! The frame in flight: one reusable buffer the ports read into and send from, reshaped in place
//! (802.1Q tag pushed or popped) for each egress port's VLAN mode.

use crate::bridge::Egress;
use crate::wire::vlan::{self as tag, VLAN_TAG_LEN};
use crate::wire::{ETHERNET_HEADER_LEN, FRAME_BUF_LEN, VNET_HDR_LEN};

/// The one frame buffer. A frame is read in after [`VLAN_TAG_LEN`] bytes of headroom, so a tag
/// can be pushed by moving the 24 bytes in front of it (virtio-net header and MACs) instead of
/// the whole frame; between two egress ports the frame is only re-shaped if their tagging
/// differs.
pub(super) struct FrameBuf {
    bytes: Box<[u8]>,
    /// Where the frame (its virtio-net header) starts now.
    start: usize,
    len: usize,
    /// Priority and DEI bits of the tag the frame arrived with, kept when a tag is pushed.
    prio: u16,
    /// The frame carries its (outer) 802.1Q tag now. Kept as state rather than read from the
    /// bytes: a frame with two tags must lose only one on its way to an access port.
    tagged: bool,
}

impl FrameBuf {
    pub(super) fn new() -> FrameBuf {
        FrameBuf {
            bytes: vec![0; VLAN_TAG_LEN + FRAME_BUF_LEN].into_boxed_slice(),
            start: VLAN_TAG_LEN,
            len: 0,
            prio: 0,
            tagged: false,
        }
    }

    /// Where a port reads the next frame to.
    pub(super) fn recv_area(&mut self) -> &mut [u8] {
        &mut self.bytes[VLAN_TAG_LEN..]
    }

    /// Puts a frame the switch made itself (an Ethernet frame, complete) in the buffer.
    pub(super) fn load(&mut self, eth: &[u8]) {
        let start = VLAN_TAG_LEN;
        self.bytes[start..start + VNET_HDR_LEN].fill(0);
        self.bytes[start + VNET_HDR_LEN..start + VNET_HDR_LEN + eth.len()].copy_from_slice(eth);
        self.received(VNET_HDR_LEN + eth.len());
    }

    /// Puts a frame read earlier (virtio-net header + Ethernet) back in the buffer.
    pub(super) fn reload(&mut self, frame: &[u8]) {
        self.recv_area()[..frame.len()].copy_from_slice(frame);
        self.received(frame.len());
    }

    /// Takes note of a frame of `len` bytes just read into [`FrameBuf::recv_area`].
    pub(super) fn received(&mut self, len: usize) {
        self.start = VLAN_TAG_LEN;
        self.len = len;
        let tci = tag::tci(self.eth());
        self.prio = tci.map_or(0, |tci| tci & 0xf000);
        self.tagged = tci.is_some();
    }

    pub(super) fn frame(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    /// The Ethernet frame, after the virtio-net header (empty if the frame is shorter).
    pub(super) fn eth(&self) -> &[u8] {
        self.frame().get(VNET_HDR_LEN..).unwrap_or(&[])
    }

    /// Tags or untags the frame as a port that sends `vlan` frames `egress` wants it. Returns
    /// `false`, leaving the frame as it was, when untagging would bare another VLAN tag: the
    /// frame would leave in a VLAN other than its own.
    #[must_use]
    pub(super) fn shape(&mut self, egress: Egress, vlan: u16) -> bool {
        match (egress, self.tagged) {
            (Egress::Untagged, true) => {
                // The EtherType behind the tag that would go.
                let at = ETHERNET_HEADER_LEN + VLAN_TAG_LEN - 2;
                let inner = self.eth().get(at..at + 2);
                if inner.is_some_and(|t| tag::is_tpid(u16::from_be_bytes([t[0], t[1]]))) {
                    return false;
                }
                self.start = tag::pop(&mut self.bytes, self.start, self.len);
                self.len -= VLAN_TAG_LEN;
                self.tagged = false;
            }
            (Egress::Tagged, false) => {
                self.start = tag::push(&mut self.bytes, self.start, self.len, self.prio | vlan);
                self.len += VLAN_TAG_LEN;
                self.tagged = true;
            }
            // A priority-tagged frame (VID 0) joining a VLAN keeps its priority.
            (Egress::Tagged, true) => {
                if let Some(tci) = tag::tci(self.eth())
                    && tag::vid(tci) != vlan
                {
                    tag::set_tci(&mut self.bytes, self.start, (tci & 0xf000) | vlan);
                }
            }
            (Egress::Untagged, false) => {}
        }
        true
    }
}
