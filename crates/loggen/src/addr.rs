//! Public-looking source addresses. These are only text in generated logs;
//! nothing is ever sent to them.
//!
//! IPv4 avoids every special-purpose block (RFC 6890), in particular the
//! private/loopback ranges CrowdSec whitelists (10/8, 172.16/12,
//! 192.168/16, 127/8) and the documentation ranges. IPv6 addresses come from
//! 2000::/3 minus 2001::/16 (Teredo, documentation, ORCHID...) and 2002::/16
//! (6to4), and every 16-bit group is non-zero, so the textual form is
//! unambiguous (no `::` compression; RFC 5952 and `inet_ntop` agree).

use crate::rng::{Rng, mix64};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Special-purpose IPv4 blocks (network, prefix length) that generated
/// attacker or client addresses never fall into.
const V4_EXCLUDED: &[(u32, u32)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0A00_0000, 8),  // 10/8 private
    (0x6440_0000, 10), // 100.64/10 CGNAT
    (0x7F00_0000, 8),  // 127/8 loopback
    (0xA9FE_0000, 16), // 169.254/16 link-local
    (0xAC10_0000, 12), // 172.16/12 private
    (0xC000_0000, 24), // 192.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2/24 TEST-NET-1
    (0xC058_6300, 24), // 192.88.99/24 6to4 relay
    (0xC0A8_0000, 16), // 192.168/16 private
    (0xC612_0000, 15), // 198.18/15 benchmarking
    (0xC633_6400, 24), // 198.51.100/24 TEST-NET-2
    (0xCB00_7100, 24), // 203.0.113/24 TEST-NET-3
    (0xE000_0000, 4),  // 224/4 multicast
    (0xF000_0000, 4),  // 240/4 reserved + broadcast
];

/// `true` if the address is outside all special-purpose IPv4 blocks.
pub fn is_public_v4(a: u32) -> bool {
    V4_EXCLUDED.iter().all(|&(net, len)| (a >> (32 - len)) != (net >> (32 - len)))
}

/// Random public-looking IPv4 address.
pub fn random_v4(rng: &mut Rng) -> Ipv4Addr {
    loop {
        let a = rng.next_u64() as u32;
        if is_public_v4(a) {
            return Ipv4Addr::from(a);
        }
    }
}

/// `true` if the IPv6 address is one we are willing to generate.
pub fn is_public_v6(a: &Ipv6Addr) -> bool {
    let g = a.segments();
    (g[0] & 0xE000) == 0x2000 && g[0] != 0x2001 && g[0] != 0x2002 && g.iter().all(|&x| x != 0)
}

/// Random public-looking IPv6 address (global unicast, all groups non-zero).
pub fn random_v6(rng: &mut Rng) -> Ipv6Addr {
    // A handful of realistic-looking provider prefixes keep the output
    // plausible: 2a0x (RIPE), 240e (CN), 2600-26ff (ARIN), 2400-24ff (APNIC).
    loop {
        let mut g = [0u16; 8];
        g[0] = match rng.below(4) {
            0 => 0x2a00 + rng.below(16) as u16,
            1 => 0x240e,
            2 => 0x2600 + rng.below(256) as u16,
            _ => 0x2400 + rng.below(256) as u16,
        };
        for x in g.iter_mut().skip(1) {
            *x = 1 + rng.below(0xFFFF) as u16;
        }
        let a = Ipv6Addr::from(g);
        if is_public_v6(&a) {
            return a;
        }
    }
}

/// Random public-looking address, IPv6 with probability `v6_share`.
/// `n` distinct addresses, in the order `random_addr` first draws them.
pub fn distinct_addrs(rng: &mut Rng, n: usize, v6_share: f64) -> Vec<IpAddr> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = random_addr(rng, v6_share);
        if seen.insert(a) {
            out.push(a);
        }
    }
    out
}

pub fn random_addr(rng: &mut Rng, v6_share: f64) -> IpAddr {
    if v6_share > 0.0 && rng.chance(v6_share) { IpAddr::V6(random_v6(rng)) } else { IpAddr::V4(random_v4(rng)) }
}

/// Enumerates distinct public IPv4 addresses in a scrambled but
/// deterministic order (a bijection on `u32` filtered to public space).
#[derive(Clone, Debug)]
pub struct DistinctV4 {
    next: u64,
    key: u32,
}

impl DistinctV4 {
    pub fn new(key: u64) -> Self {
        DistinctV4 { next: 0, key: mix64(key) as u32 }
    }
}

/// Bijective scramble of a `u32` (odd multiply, xor-shift, add key).
#[inline]
fn scramble32(x: u32, key: u32) -> u32 {
    let mut v = x.wrapping_mul(0x9E37_79B1);
    v ^= v >> 15;
    v = v.wrapping_mul(0x85EB_CA77);
    v ^= v >> 13;
    v.wrapping_add(key)
}

impl Iterator for DistinctV4 {
    type Item = Ipv4Addr;
    fn next(&mut self) -> Option<Ipv4Addr> {
        while self.next <= u64::from(u32::MAX) {
            let v = scramble32(self.next as u32, self.key);
            self.next += 1;
            if is_public_v4(v) {
                return Some(Ipv4Addr::from(v));
            }
        }
        None
    }
}

/// Enumerates distinct public-looking IPv6 addresses (up to 65535² of them):
/// the last two groups encode a permuted counter, the first six are derived
/// from the counter's "provider" bucket.
#[derive(Clone, Debug)]
pub struct DistinctV6 {
    next: u64,
    key: u64,
}

const V6_SPACE: u64 = 65_535 * 65_535;

impl DistinctV6 {
    pub fn new(key: u64) -> Self {
        DistinctV6 { next: 0, key: mix64(key ^ 0x6666) }
    }
}

impl Iterator for DistinctV6 {
    type Item = Ipv6Addr;
    fn next(&mut self) -> Option<Ipv6Addr> {
        if self.next >= V6_SPACE {
            return None;
        }
        // 1_000_003 is prime and coprime to 65535 = 3*5*17*257: a bijection
        // of 0..V6_SPACE.
        let c = (self.next.wrapping_mul(1_000_003) + self.key % V6_SPACE) % V6_SPACE;
        self.next += 1;
        let mut r = Rng::new(self.key ^ mix64(c % 4096));
        let mut g = random_v6(&mut r).segments();
        g[6] = (c % 65_535 + 1) as u16;
        g[7] = (c / 65_535 + 1) as u16;
        Some(Ipv6Addr::from(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn v4_exclusions() {
        for s in [
            "10.1.2.3",
            "127.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.2.5",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "0.1.2.3",
        ] {
            let a: Ipv4Addr = s.parse().unwrap();
            assert!(!is_public_v4(u32::from(a)), "{s}");
        }
        for s in ["8.8.8.8", "172.15.0.1", "172.32.0.1", "185.1.2.3", "45.9.1.1"] {
            let a: Ipv4Addr = s.parse().unwrap();
            assert!(is_public_v4(u32::from(a)), "{s}");
        }
    }

    #[test]
    fn distinct_enumerators() {
        let v4: Vec<_> = DistinctV4::new(1).take(200_000).collect();
        let set: HashSet<_> = v4.iter().collect();
        assert_eq!(set.len(), v4.len());
        assert!(v4.iter().all(|a| is_public_v4(u32::from(*a))));
        let v6: Vec<_> = DistinctV6::new(1).take(200_000).collect();
        let set: HashSet<_> = v6.iter().collect();
        assert_eq!(set.len(), v6.len());
        assert!(v6.iter().all(is_public_v6));
        // No group is zero, so Display never compresses.
        assert!(v6.iter().all(|a| !a.to_string().contains("::")));
    }
}
