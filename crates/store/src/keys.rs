//! Bouncer keys: random generation, salted SHA-256, constant-time compare.

use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// Random bytes in a generated key (printed as twice as many hex digits).
pub const KEY_BYTES: usize = 32;
/// Shortest key accepted from an operator (bytes).
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted (bytes); longer keys never authenticate.
pub const MAX_KEY_LEN: usize = 1024;
pub(crate) const SALT_BYTES: usize = 16;

pub(crate) fn random_bytes<const N: usize>(op: &'static str) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Random { op, what: e.to_string() })?;
    Ok(buf)
}

/// A new key: [`KEY_BYTES`] random bytes as lower-case hex.
pub(crate) fn generate_key() -> Result<String> {
    let bytes: [u8; KEY_BYTES] = random_bytes("add_bouncer")?;
    Ok(hex(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `SHA-256(salt ‖ key)`.
pub(crate) fn hash_key(salt: &[u8], key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Equal contents, in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_hex_and_hashes_are_salted() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_eq!(a.len(), 2 * KEY_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(hash_key(b"salt-1", &a), hash_key(b"salt-2", &a));
        assert_eq!(hash_key(b"s", &a), hash_key(b"s", &a));
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
