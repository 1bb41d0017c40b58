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

/// `count` texts of up to `max_len - 1` bytes drawn from `alphabet` (ASCII).
pub(crate) fn random_texts(
    rng: &mut impl FnMut(u64) -> u64,
    alphabet: &[u8],
    count: usize,
    max_len: u64,
) -> Vec<String> {
    (0..count)
        .map(|_| {
            let n = rng(max_len) as usize;
            (0..n).map(|_| alphabet[rng(alphabet.len() as u64) as usize] as char).collect()
        })
        .collect()
}

/// `count` mutations of randomly picked `seeds`: one to three bytes each
/// replaced, removed or inserted (from `alphabet`, ASCII).
pub(crate) fn mutated_texts(
    rng: &mut impl FnMut(u64) -> u64,
    seeds: &[&str],
    alphabet: &[u8],
    count: usize,
) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut s: Vec<u8> = seeds[rng(seeds.len() as u64) as usize].bytes().collect();
            for _ in 0..1 + rng(3) {
                let k = rng(s.len() as u64 + 1) as usize;
                let c = alphabet[rng(alphabet.len() as u64) as usize];
                match rng(3) {
                    0 if k < s.len() => s[k] = c,
                    1 if k < s.len() => {
                        s.remove(k);
                    }
                    _ => s.insert(k, c),
                }
            }
            String::from_utf8(s).expect("ASCII mutations of ASCII seeds")
        })
        .collect()
}
