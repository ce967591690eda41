//! CI's strict mode and the skip log, shared by the integration tests
//! (`tests/common`), `tests/generated.rs` and the crate's root-only unit
//! tests (`src/testutil.rs` includes this file). Only std here.
//!
//! Strict mode: whenever `CI` is set to anything but `false` or `0` (any
//! case; empty counts as unset), a test that cannot run fails instead of
//! skipping, and `CTDIAG_BLESS` is refused.
//!
//! The skip log: a test that returns early (not root, a tool missing)
//! appends one line, `binary::test<TAB>reason`, to the file named by
//! `CTDIAG_SKIP_LOG` (`.ci/test` sets it, clears it before the run and
//! lists it after), else to `skipped-tests.log` in the integration tests'
//! `CARGO_TARGET_TMPDIR`.

// Each includer uses a different subset.
#![allow(dead_code)]

use std::io::Write;

/// Whether a value of `CI` turns strict mode on: set, not empty, and not
/// `false` or `0` in any case (surrounding blanks ignored).
pub fn strict(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
    }
}

/// Whether this run is in CI's strict mode (see [`strict`]).
pub fn is_ci() -> bool {
    let value = std::env::var_os("CI");
    strict(value.as_ref().map(|v| v.to_string_lossy()).as_deref())
}

/// `CI`'s value as it appears in messages.
pub fn ci_value() -> String {
    std::env::var_os("CI").map(|v| v.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Where skips are recorded, if anywhere.
fn skip_log() -> Option<std::path::PathBuf> {
    match std::env::var_os("CTDIAG_SKIP_LOG") {
        Some(path) if !path.is_empty() => Some(path.into()),
        _ => option_env!("CARGO_TARGET_TMPDIR")
            .map(|dir| std::path::Path::new(dir).join("skipped-tests.log")),
    }
}

/// The running test as `binary::test`: the test binary's name without
/// cargo's hash, and the test thread's name (libtest names it after the
/// test).
pub fn current_test() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|name| match name.rsplit_once('-') {
            Some((stem, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => stem.to_string(),
            _ => name,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("?"))
}

/// Prints why the running test is skipped and appends it to the skip log.
/// A log that cannot be written is said on stderr, never a panic.
pub fn record_skip(reason: &str) {
    let test = current_test();
    eprintln!("skipped {test}: {reason}");
    let Some(path) = skip_log() else { return };
    // One write per line, opened for appending: tests running at once in
    // one binary, and binaries one after the other, do not mix lines.
    let line = format!("{test}\t{}\n", reason.replace(['\n', '\t'], " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot record the skip in {}: {e}", path.display());
    }
}
