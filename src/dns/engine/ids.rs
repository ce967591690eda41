//! Query IDs.

/// Small fast PRNG for query IDs (xorshift64*), seeded from getrandom(2).
/// Why libc: nix (0.30) has no `getrandom`, and this one call does not
/// warrant a dependency of its own.
#[derive(Debug)]
pub(super) struct IdSource(u64);

impl IdSource {
    pub(super) fn new() -> Self {
        let mut seed = [0u8; 8];
        // SAFETY: the buffer is valid for 8 writable bytes.
        let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
        let mut value = u64::from_ne_bytes(seed);
        if got != 8 || value == 0 {
            // Why a fallback: getrandom can be unavailable in odd sandboxes;
            // IDs only need to be unpredictable enough to not collide.
            value = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15)
                | 1;
        }
        IdSource(value)
    }

    pub(super) fn next_u16(&mut self) -> u16 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
    }
}
