//! What is banned: an address or a prefix ([`Target`]) and for how long ([`Ban`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use crate::EnforceError;

/// An address or a network to drop traffic from.
///
/// Always normalised, so two `Target`s compare equal exactly when they cover
/// the same addresses and nftables lists them the same way:
/// - the host bits of a prefix are zero (`10.1.2.3/8` becomes `10.0.0.0/8`);
/// - a full-length prefix (`/32`, `/128`) is a plain address (`prefix == None`);
/// - an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, prefix ≥ 96) becomes the
///   IPv4 address (prefix − 96): packets from an IPv4 client carry an IPv4
///   source address at the firewall, so a mapped entry in the IPv6 set would
///   never match.
///
/// The fields are private so that an invalid target (prefix longer than the
/// address, host bits set) cannot exist; build one with [`Target::new`],
/// [`Target::addr`] or [`str::parse`] (`"1.2.3.4"`, `"2001:db8::/48"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    addr: IpAddr,
    prefix: Option<u8>,
}

impl Target {
    /// A target for `addr` with an optional prefix length (`None` = the address alone).
    ///
    /// Errors when the prefix is longer than the address (33+ for IPv4, 129+ for IPv6).
    pub fn new(addr: IpAddr, prefix: Option<u8>) -> Result<Self, EnforceError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if let Some(p) = prefix
            && p > max
        {
            return Err(EnforceError::InvalidTarget(format!("{addr}/{p}: prefix longer than {max}")));
        }
        Ok(Self::normalised(addr, prefix.unwrap_or(max)))
    }

    /// A target for a single address.
    pub fn addr(addr: IpAddr) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Self::normalised(addr, max)
    }

    fn normalised(addr: IpAddr, prefix: u8) -> Self {
        match addr {
            IpAddr::V4(a) => {
                let p = prefix.min(32);
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
                let a = Ipv4Addr::from(u32::from(a) & mask);
                Self { addr: IpAddr::V4(a), prefix: (p < 32).then_some(p) }
            }
            IpAddr::V6(a) => {
                if prefix >= 96
                    && let Some(v4) = a.to_ipv4_mapped()
                {
                    return Self::normalised(IpAddr::V4(v4), prefix - 96);
                }
                let p = prefix.min(128);
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - u32::from(p)) };
                let a = Ipv6Addr::from(u128::from(a) & mask);
                Self { addr: IpAddr::V6(a), prefix: (p < 128).then_some(p) }
            }
        }
    }

    /// The (network) address.
    pub fn ip(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, `None` for a single address.
    pub fn prefix(&self) -> Option<u8> {
        self.prefix
    }

    /// True for an IPv4 target.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// True when the target covers `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let other = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => ip,
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (IpAddr::V6(_), IpAddr::V4(_)) => return false,
        };
        let max = if self.is_ipv4() { 32 } else { 128 };
        Self::normalised(other, self.prefix.unwrap_or(max)).addr == self.addr
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{p}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl FromStr for Target {
    type Err = EnforceError;

    /// `"1.2.3.4"`, `"10.0.0.0/8"`, `"2001:db8::1"`, `"2001:db8::/32"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EnforceError::InvalidTarget(crate::cap_text(s, 80));
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => {
                // u8 parsing accepts "+8"; nftables and humans write plain digits.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (a, Some(p.parse::<u8>().map_err(|_| bad())?))
            }
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        Target::new(addr, p)
    }
}

impl From<IpAddr> for Target {
    fn from(addr: IpAddr) -> Self {
        Target::addr(addr)
    }
}

impl From<Ipv4Addr> for Target {
    fn from(addr: Ipv4Addr) -> Self {
        Target::addr(IpAddr::V4(addr))
    }
}

impl From<Ipv6Addr> for Target {
    fn from(addr: Ipv6Addr) -> Self {
        Target::addr(IpAddr::V6(addr))
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A ban to enforce: a target and its remaining time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ban {
    /// What to drop.
    pub target: Target,
    /// Remaining time of the ban, counted from the moment it is applied;
    /// `None` = permanent. A zero duration means "already over": such a ban
    /// is skipped (counted in [`ApplyStats::skipped_expired`](crate::ApplyStats)).
    pub expires: Option<Duration>,
}

impl Ban {
    /// A ban of `target` for `remaining`.
    pub fn new(target: Target, remaining: Duration) -> Self {
        Self { target, expires: Some(remaining) }
    }

    /// A permanent ban of `target`.
    pub fn permanent(target: Target) -> Self {
        Self { target, expires: None }
    }

    /// The ban of a stored decision that ends at `until` (microseconds since
    /// the Unix epoch, like `stadtwache_core::Timestamp`; `None` = permanent),
    /// seen at `now`. `None` when it is already over.
    pub fn until_unix_micros(target: Target, until: Option<i64>, now: i64) -> Option<Self> {
        match until {
            None => Some(Self::permanent(target)),
            Some(end) if end > now => {
                let micros = u64::try_from(i128::from(end) - i128::from(now)).unwrap_or(u64::MAX);
                Some(Self::new(target, Duration::from_micros(micros)))
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn normalises() {
        assert_eq!(t("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(t("10.1.2.3/32").to_string(), "10.1.2.3");
        assert_eq!(t("10.1.2.3/32"), t("10.1.2.3"));
        assert_eq!(t("2001:db8::1/128"), t("2001:db8::1"));
        assert_eq!(t("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
        assert_eq!(t("::ffff:1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(t("::ffff:1.2.3.4/120").to_string(), "1.2.3.0/24");
        assert_eq!(t("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(t("::/0").to_string(), "::/0");
    }

    #[test]
    fn rejects_bad_input() {
        for s in ["", "1.2.3.4/33", "::/129", "1.2.3.4/", "1.2.3.4/+8", "1.2.3", "x/8", "1.2.3.4/8/8", "1.2.3.4/0008"] {
            assert!(s.parse::<Target>().is_err(), "{s:?} accepted");
        }
        assert!(Target::new("1.2.3.4".parse().unwrap(), Some(33)).is_err());
    }

    #[test]
    fn random_text_never_panics_and_round_trips() {
        let alphabet = b"0123456789abcdef:./x ";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut ok = 0;
        for _ in 0..50_000 {
            let mut s = String::new();
            for _ in 0..1 + (x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            }
            if let Ok(t) = s.parse::<Target>() {
                ok += 1;
                assert_eq!(t.to_string().parse::<Target>().unwrap(), t, "{s:?}");
            }
        }
        assert!(ok > 0);
    }

    #[test]
    fn contains() {
        assert!(t("10.0.0.0/8").contains("10.200.1.1".parse().unwrap()));
        assert!(!t("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(t("10.0.0.0/8").contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!t("2001:db8::/32").contains("10.0.0.1".parse().unwrap()));
        assert!(t("1.2.3.4").contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn ban_from_a_deadline() {
        let a = t("1.2.3.4");
        assert_eq!(Ban::until_unix_micros(a, None, 5), Some(Ban::permanent(a)));
        assert_eq!(Ban::until_unix_micros(a, Some(5_000_000), 2_000_000), Some(Ban::new(a, Duration::from_secs(3))));
        assert_eq!(Ban::until_unix_micros(a, Some(5), 5), None);
        assert_eq!(Ban::until_unix_micros(a, Some(i64::MIN), i64::MAX), None);
        assert_eq!(
            Ban::until_unix_micros(a, Some(i64::MAX), i64::MIN),
            Some(Ban::new(a, Duration::from_micros(u64::MAX)))
        );
    }

    #[test]
    fn serde_round_trip() {
        let v: Vec<Target> = serde_json::from_str(r#"["1.2.3.4","2001:db8::/48"]"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["1.2.3.4","2001:db8::/48"]"#);
        assert!(serde_json::from_str::<Target>(r#""1.2.3.4/40""#).is_err());
    }
}
