//! A flag that SIGINT and SIGTERM raise instead of killing the process, for a client that must
//! finish what it writes (a capture file ends on a whole block).

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set the returned flag (and interrupt blocking calls) from now on.
pub fn interrupt_flag() -> std::io::Result<&'static AtomicBool> {
    let action = SigAction::new(SigHandler::Handler(note), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; no other
        // handler is replaced that the program relies on.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(&INTERRUPTED)
}
