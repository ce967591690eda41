//! Ctrl-C and SIGTERM as a request to stop: long-running commands (`stats
//! --watch`, `probe`, `lab run`) finish what they measured and report it
//! instead of dying mid-write.
//!
//! The command layer installs the handler ([`install`]) and passes [`STOP`]
//! down as a plain `&AtomicBool` (`stats --watch`, `lab run`, the probe
//! engine); no core module installs a handler itself.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the signal handler; polled by the loops that can stop early.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`STOP`].
pub fn install() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action =
        SigAction::new(SigHandler::Handler(on_stop_signal), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
