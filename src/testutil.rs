//! Helpers shared by unit tests.

/// `len` pseudo-random bytes from a xorshift32 generator: deterministic
/// garbage for "never panics on any input" tests.
pub fn pseudo_random_bytes(state: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 17;
            *state ^= *state << 5;
            *state as u8
        })
        .collect()
}
