//! The invariants the fuzz targets check: one function per target ([`TARGETS`]), taking the
//! fuzzer's bytes and panicking when vswitch breaks a promise it makes — not only when it
//! panics by itself. The libFuzzer targets (`fuzz/fuzz_targets/`, nightly) call these, and so
//! does `tests/fuzz_replay.rs`, which runs every committed corpus file through them on stable
//! Rust: CI's regression step.
//!
//! Inputs are decoded by hand ([`Input`]): every byte string is an input, and reading past its
//! end gives zeros, so every mutation the fuzzer makes reaches the code under test.

mod bridge;
mod coalesce;
mod config;
mod control;
mod offload;
mod spec;
mod stream;
mod vhost;
mod vlan;
mod vnet;

pub use bridge::bridge;
pub use coalesce::coalesce;
pub use config::{config_file, remove_config_file};
pub use control::control_request;
pub use offload::offload;
pub use spec::port_spec;
pub use stream::stream_framing;
pub use vhost::vhost_user;
pub use vlan::vlan;
pub use vnet::vnet;

/// A target's check: panics when the input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every target: its name (its corpus is `fuzz/corpus/NAME/`, its libFuzzer binary
/// `fuzz/fuzz_targets/NAME.rs`) and its check.
pub const TARGETS: [(&str, Check); 10] = [
    ("bridge", bridge),
    ("offload", offload),
    ("coalesce", coalesce),
    ("vnet", vnet),
    ("vlan", vlan),
    ("stream_framing", stream_framing),
    ("port_spec", port_spec),
    ("config_file", config_file),
    ("control_request", control_request),
    ("vhost_user", vhost_user),
];

/// The fuzzer's bytes, read front to back; past the end every read gives zeros.
pub(crate) struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub(crate) fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn bit(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number below `n` (at most 256).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Up to `n` bytes (fewer at the end).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
