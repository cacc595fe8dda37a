//! Views of the bytes the switch moves, beyond what `smoltcp::wire` already has.
//!
//! Every frame inside the switch is one buffer: a [`VNET_HDR_LEN`]-byte virtio-net header
//! followed by the Ethernet frame. Ports that speak the header fill it in; the others zero it.
//! Untrusted bytes are read only through checked views (`new_checked`), so a short or garbled
//! frame is an error value, never a panic.

pub mod coalesce;
pub mod mac;
pub mod offload;
pub mod vlan;
pub mod vnet;

pub use mac::{MacAddr, ParseMacError};
pub use smoltcp::wire::{EthernetFrame, EthernetProtocol};
pub use vnet::{VNET_HDR_LEN, VnetHeader};

/// Bytes in an Ethernet header (destination, source, EtherType).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Largest Ethernet frame a port may hand over: a 64 KiB GSO super-frame (IP's 65535-byte limit)
/// behind an Ethernet header and two VLAN tags.
pub const MAX_FRAME_LEN: usize = 65535 + ETHERNET_HEADER_LEN + 8;

/// Size of a buffer that holds any frame with its virtio-net header.
pub const FRAME_BUF_LEN: usize = VNET_HDR_LEN + MAX_FRAME_LEN;
