//! A checked view of the `virtio_net_hdr` that TAPs opened with `IFF_VNET_HDR` put in front of
//! every frame, in its 12-byte form with `num_buffers` (`virtio_net_hdr_mrg_rxbuf`).
//!
//! The header tells whether the frame still needs work the receiver would normally do in
//! hardware: a checksum to complete (`NEEDS_CSUM` with `csum_start`/`csum_offset`) or a GSO
//! super-frame to cut into `gso_size` segments. The switch passes it through between ports that
//! understand it and must finish the work before a frame goes to a port that does not.
//!
//! The legacy header uses the host's byte order (a TAP without `TUNSETVNETLE/BE`), so the fields
//! are read and written native-endian.

use std::fmt;

/// Length of the header in front of every frame the switch moves, for every port kind.
pub const VNET_HDR_LEN: usize = 12;

/// `flags` bit: the checksum at `csum_start + csum_offset` is partial and must be completed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags` bit: the checksum was already verified by the sender.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the TCP segments carry ECN's CWR on the first segment only.
pub const GSO_ECN: u8 = 0x80;

mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Range<usize> = 2..4;
    pub const GSO_SIZE: Range<usize> = 4..6;
    pub const CSUM_START: Range<usize> = 6..8;
    pub const CSUM_OFFSET: Range<usize> = 8..10;
    // 10..12 is `num_buffers`, which the switch neither reads nor sets.
}

/// The buffer is shorter than a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer shorter than the {VNET_HDR_LEN}-byte virtio-net header")]
pub struct Truncated;

/// A read/write view of a `virtio_net_hdr_mrg_rxbuf` at the start of a buffer; the frame itself
/// follows it ([`VnetHeader::payload`]).
#[derive(Clone, Copy)]
pub struct VnetHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VnetHeader<T> {
    /// Wraps a buffer without checking its length; accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        VnetHeader { buffer }
    }

    /// Wraps a buffer after checking that it holds at least a whole header.
    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < VNET_HDR_LEN {
            return Err(Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    fn u16_at(&self, range: std::ops::Range<usize>) -> u16 {
        let bytes = &self.buffer.as_ref()[range];
        u16::from_ne_bytes([bytes[0], bytes[1]])
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// Length of the headers in front of the GSO payload (a hint; may be 0).
    pub fn hdr_len(&self) -> u16 {
        self.u16_at(field::HDR_LEN)
    }

    /// Payload bytes per segment of a GSO super-frame.
    pub fn gso_size(&self) -> u16 {
        self.u16_at(field::GSO_SIZE)
    }

    /// Where checksumming starts, counted from the start of the Ethernet frame.
    pub fn csum_start(&self) -> u16 {
        self.u16_at(field::CSUM_START)
    }

    /// Where, after `csum_start`, the completed checksum is stored.
    pub fn csum_offset(&self) -> u16 {
        self.u16_at(field::CSUM_OFFSET)
    }

    pub fn needs_csum(&self) -> bool {
        self.flags() & F_NEEDS_CSUM != 0
    }

    /// The GSO type without the ECN bit.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type() & !GSO_ECN
    }

    pub fn is_gso(&self) -> bool {
        self.gso_kind() != GSO_NONE
    }

    /// A frame whose bytes are final: no checksum to complete, no segmentation to do. Such a
    /// frame can go to any port, including one that knows nothing of virtio-net headers.
    pub fn is_complete(&self) -> bool {
        !self.needs_csum() && !self.is_gso()
    }

    /// The frame after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VNET_HDR_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VnetHeader<T> {
    fn set_u16_at(&mut self, range: std::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_ne_bytes());
    }

    /// Zeroes the header: a complete frame with nothing left to do.
    pub fn clear(&mut self) {
        self.buffer.as_mut()[..VNET_HDR_LEN].fill(0);
    }

    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    pub fn set_gso_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = value;
    }

    pub fn set_hdr_len(&mut self, value: u16) {
        self.set_u16_at(field::HDR_LEN, value);
    }

    pub fn set_gso_size(&mut self, value: u16) {
        self.set_u16_at(field::GSO_SIZE, value);
    }

    pub fn set_csum_start(&mut self, value: u16) {
        self.set_u16_at(field::CSUM_START, value);
    }

    pub fn set_csum_offset(&mut self, value: u16) {
        self.set_u16_at(field::CSUM_OFFSET, value);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[VNET_HDR_LEN..]
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for VnetHeader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VnetHeader")
            .field("flags", &self.flags())
            .field("gso_type", &self.gso_type())
            .field("hdr_len", &self.hdr_len())
            .field("gso_size", &self.gso_size())
            .field("csum_start", &self.csum_start())
            .field("csum_offset", &self.csum_offset())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ne(v: u16) -> [u8; 2] {
        v.to_ne_bytes()
    }

    /// A TCPv4 super-frame header as a TAP hands it over: partial checksum at the TCP header
    /// (14 + 20 bytes in), checksum field 16 bytes into TCP, 1448-byte segments.
    fn tso_header() -> Vec<u8> {
        let mut bytes = vec![F_NEEDS_CSUM, GSO_TCPV4 | GSO_ECN];
        bytes.extend_from_slice(&ne(66));
        bytes.extend_from_slice(&ne(1448));
        bytes.extend_from_slice(&ne(34));
        bytes.extend_from_slice(&ne(16));
        bytes.extend_from_slice(&ne(1));
        bytes.extend_from_slice(&[0xaa; 4]);
        bytes
    }

    #[test]
    fn reads_every_field() {
        let bytes = tso_header();
        let hdr = VnetHeader::new_checked(&bytes[..]).unwrap();
        assert_eq!(hdr.flags(), F_NEEDS_CSUM);
        assert_eq!(hdr.gso_type(), GSO_TCPV4 | GSO_ECN);
        assert_eq!(hdr.gso_kind(), GSO_TCPV4);
        assert_eq!(hdr.hdr_len(), 66);
        assert_eq!(hdr.gso_size(), 1448);
        assert_eq!(hdr.csum_start(), 34);
        assert_eq!(hdr.csum_offset(), 16);
        assert!(hdr.needs_csum() && hdr.is_gso() && !hdr.is_complete());
        assert_eq!(hdr.payload(), &[0xaa; 4]);
    }

    #[test]
    fn rejects_short_buffers() {
        assert_eq!(
            VnetHeader::new_checked(&[0u8; 11][..]).unwrap_err(),
            Truncated
        );
        assert!(VnetHeader::new_checked(&[0u8; 12][..]).is_ok());
    }

    #[test]
    fn zero_header_is_complete() {
        let bytes = [0u8; VNET_HDR_LEN];
        let hdr = VnetHeader::new_checked(&bytes[..]).unwrap();
        assert!(hdr.is_complete());
        assert!(hdr.payload().is_empty());
    }

    #[test]
    fn ecn_bit_alone_is_not_gso() {
        let mut bytes = [0u8; VNET_HDR_LEN];
        bytes[1] = GSO_ECN;
        assert!(VnetHeader::new_checked(&bytes[..]).unwrap().is_complete());
    }

    #[test]
    fn setters_round_trip_and_clear() {
        let mut bytes = [0u8; VNET_HDR_LEN + 2];
        let mut hdr = VnetHeader::new_checked(&mut bytes[..]).unwrap();
        hdr.set_flags(F_DATA_VALID);
        hdr.set_gso_type(GSO_TCPV6);
        hdr.set_hdr_len(86);
        hdr.set_gso_size(1428);
        hdr.set_csum_start(54);
        hdr.set_csum_offset(16);
        hdr.payload_mut().copy_from_slice(&[7, 8]);
        assert_eq!(
            (hdr.flags(), hdr.gso_kind(), hdr.hdr_len(), hdr.gso_size()),
            (F_DATA_VALID, GSO_TCPV6, 86, 1428)
        );
        assert_eq!((hdr.csum_start(), hdr.csum_offset()), (54, 16));
        hdr.clear();
        assert!(hdr.is_complete());
        assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8]);
    }

    #[test]
    fn udp_gso_kinds_are_gso() {
        for kind in [GSO_UDP, GSO_UDP_L4] {
            let mut bytes = [0u8; VNET_HDR_LEN];
            bytes[1] = kind;
            assert!(VnetHeader::new_checked(&bytes[..]).unwrap().is_gso());
        }
    }
}
