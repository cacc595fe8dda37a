//! The only module with `unsafe`: ioctls on TAP file descriptors and interface sockets.
//!
//! Each `unsafe` block says why it is sound in a `// SAFETY:` comment. File descriptors are owned
//! (`File`/`OwnedFd`) from the moment a syscall returns them, so every error path closes them.

#![allow(unsafe_code)]

pub mod dgram;
pub mod ifreq;
pub mod netdev;
pub mod packet;
pub mod signal;
pub mod tun;
pub mod udp;

pub use ifreq::{IfName, InvalidIfName};
