//! fail2ban `ignoreip`: addresses, CIDR networks (IPv4, IPv6, IPv4-mapped
//! IPv6) and plain text keys.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde::Serialize;
use stadtwache_core::Key;

use crate::PolicyError;

/// One allowlist entry as written, with its parsed form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AllowEntry {
    /// The text as written in the configuration.
    pub text: String,
    #[serde(skip)]
    kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum EntryKind {
    V4 { net: u32, plen: u8 },
    V6 { net: u128, plen: u8 },
    Text(Arc<str>),
}

/// fail2ban's `ignoreip`. Nothing overrides it: [`crate::Decider`] never bans
/// a key that matches, and never aggregates a ban to an IPv6 prefix that
/// overlaps an entry.
///
/// * Entries are separated by white space and/or commas (as in `jail.conf`).
/// * `1.2.3.4`, `::1`, `[2001:db8::1]`: one address; `10.0.0.0/8`,
///   `2001:db8::/32`: a network (host bits are masked off, as fail2ban does);
///   `192.168.0.0/255.255.0.0`: a network with a netmask.
/// * IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address, both in entries
///   and in keys (fail2ban converts them the same way). A mapped network
///   `::ffff:10.0.0.0/104` also covers the IPv4 network `10.0.0.0/8` (fail2ban
///   keeps it IPv6; covering more is the safe side of an allowlist).
/// * Anything else that does not look like an address is a plain text key
///   matched exactly against [`Key::Text`] (user names, …). fail2ban would
///   resolve host names through DNS; a pure crate cannot, so a host name only
///   matches a text key spelled the same way — resolve names in the CLI.
/// * Text that looks like an address but is not one (`300.1.2.3`,
///   `1.2.3.4/33`, `2001:db8::/129`, `10.0.0.0/255.0.255.0`) is an error
///   with a `C02x` code and the offending text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

fn mask4(plen: u8) -> u32 {
    if plen == 0 { 0 } else { u32::MAX << (32 - u32::from(plen.min(32))) }
}

fn mask6(plen: u8) -> u128 {
    if plen == 0 { 0 } else { u128::MAX << (128 - u32::from(plen.min(128))) }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; other addresses unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address a key stands for, if any (text keys holding an address count).
pub(crate) fn key_ip(key: &Key) -> Option<IpAddr> {
    match key {
        Key::Ip(ip) => Some(canonical_ip(*ip)),
        Key::Text(t) => parse_ip(t).map(canonical_ip),
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    s.parse().ok()
}

fn looks_like_address(s: &str) -> bool {
    let dotted = s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    let colons = s.matches(':').count() >= 2 && s.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    dotted || colons || s.starts_with('[')
}

fn netmask_to_plen(mask: &str, text: &str) -> Result<u8, PolicyError> {
    let bad = || PolicyError::InvalidNetmask { text: text.to_string() };
    let (bits, width) = match mask.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(m) => (u128::from(u32::from(m)) << 96, 32u32),
        IpAddr::V6(m) => (u128::from(m), 128u32),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 || ones > width {
        return Err(bad());
    }
    Ok(ones as u8)
}

impl AllowEntry {
    /// Parses one entry (see [`Allowlist`]).
    pub fn parse(text: &str) -> Result<AllowEntry, PolicyError> {
        let t = text.trim();
        let entry = |kind| AllowEntry { text: t.to_string(), kind };
        if let Some((addr, mask)) = t.split_once('/') {
            let ip = parse_ip(addr).ok_or_else(|| PolicyError::InvalidAddress { text: t.to_string() })?;
            let plen = if mask.contains('.') || mask.contains(':') {
                netmask_to_plen(mask, t)?
            } else {
                mask.parse::<u8>().map_err(|_| PolicyError::InvalidPrefix { text: t.to_string() })?
            };
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if plen > max {
                return Err(PolicyError::InvalidPrefix { text: t.to_string() });
            }
            return Ok(match ip {
                IpAddr::V4(v4) => entry(EntryKind::V4 { net: u32::from(v4) & mask4(plen), plen }),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) if plen >= 96 => {
                        let p4 = plen - 96;
                        entry(EntryKind::V4 { net: u32::from(v4) & mask4(p4), plen: p4 })
                    }
                    _ => entry(EntryKind::V6 { net: u128::from(v6) & mask6(plen), plen }),
                },
            });
        }
        if let Some(ip) = parse_ip(t) {
            return Ok(match canonical_ip(ip) {
                IpAddr::V4(v4) => entry(EntryKind::V4 { net: u32::from(v4), plen: 32 }),
                IpAddr::V6(v6) => entry(EntryKind::V6 { net: u128::from(v6), plen: 128 }),
            });
        }
        if t.is_empty() || looks_like_address(t) {
            return Err(PolicyError::InvalidAddress { text: t.to_string() });
        }
        Ok(entry(EntryKind::Text(Arc::from(t))))
    }

    fn matches(&self, key: &Key, ip: Option<IpAddr>) -> bool {
        match (&self.kind, ip) {
            (EntryKind::V4 { net, plen }, Some(IpAddr::V4(a))) => u32::from(a) & mask4(*plen) == *net,
            (EntryKind::V6 { net, plen }, Some(IpAddr::V6(a))) => u128::from(a) & mask6(*plen) == *net,
            (EntryKind::Text(t), _) => matches!(key, Key::Text(k) if **k == **t),
            _ => false,
        }
    }

    /// Whether this entry shares an address with the network `net/plen`.
    fn overlaps(&self, ip: IpAddr, plen: u8) -> bool {
        match (&self.kind, ip) {
            (EntryKind::V4 { net, plen: p }, IpAddr::V4(a)) => {
                let m = mask4((*p).min(plen));
                u32::from(a) & m == *net & m
            }
            (EntryKind::V6 { net, plen: p }, IpAddr::V6(a)) => {
                let m = mask6((*p).min(plen));
                u128::from(a) & m == *net & m
            }
            _ => false,
        }
    }
}

impl Allowlist {
    pub fn new() -> Self {
        Allowlist::default()
    }

    /// Parses an `ignoreip` value: entries separated by white space and/or
    /// commas. Empty entries are skipped, exact duplicates kept once.
    pub fn parse(spec: &str) -> Result<Allowlist, PolicyError> {
        let mut list = Allowlist::new();
        for tok in spec.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()) {
            list.add(tok)?;
        }
        Ok(list)
    }

    /// Adds one entry.
    pub fn add(&mut self, entry: &str) -> Result<(), PolicyError> {
        let e = AllowEntry::parse(entry)?;
        if !self.entries.iter().any(|x| x.kind == e.kind) {
            self.entries.push(e);
        }
        Ok(())
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry covering `key`, if any.
    pub fn matches(&self, key: &Key) -> Option<&AllowEntry> {
        let ip = key_ip(key);
        self.entries.iter().find(|e| e.matches(key, ip))
    }

    /// The first entry sharing an address with `net/plen`, if any.
    pub fn overlaps(&self, net: IpAddr, plen: u8) -> Option<&AllowEntry> {
        self.entries.iter().find(|e| e.overlaps(net, plen))
    }
}

/// The network address of `ip/plen`.
pub(crate) fn network(ip: IpAddr, plen: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask4(plen))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask6(plen))),
    }
}
