//! vswitch's core: where a frame goes ([`bridge`]) and the checked views of the bytes it is
//! made of ([`wire`]). Pure: time is passed in, nothing reads a clock, a socket or a file, and
//! the crate depends on nothing that could (quinn-proto's split from quinn). The `vswitch`
//! crate re-exports both modules.

#![forbid(unsafe_code)]

pub mod bridge;
pub mod wire;
