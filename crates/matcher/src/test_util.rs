//! Helpers shared by the crate's unit tests.

/// A small deterministic generator (xorshift64): `next(n)` is in `0..n`.
pub(crate) fn xorshift(mut rng: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    }
}
