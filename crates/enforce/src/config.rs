//! Configuration of [`NftEnforcer`](crate::NftEnforcer).

use serde::{Deserialize, Serialize};

use crate::EnforceError;

/// How the nftables enforcer talks to the kernel (`[enforce.nftables]` in the
/// daemon configuration). Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NftConfig {
    /// Name of our table (family `inet`). Letters, digits and `_`, starting
    /// with a letter, at most 64 characters. Default `"stadtwache"`.
    pub table: String,
    /// Drop banned sources in an `input` hook chain (traffic to this host).
    /// Default `true`.
    pub input: bool,
    /// Drop banned sources in a `forward` hook chain (traffic routed through
    /// this host, e.g. to containers). Default `true`.
    pub forward: bool,
    /// Priority of our chains. Lower runs earlier; the distribution's
    /// `filter` chains use 0, so the default `-10` drops before them (an
    /// `accept` there cannot let a banned source through). Range -400..=400.
    pub priority: i32,
    /// Add a `counter` to each drop rule (packets/bytes dropped, visible in
    /// `nft list table inet stadtwache`). Default `true`.
    pub counter: bool,
    /// The nft command, program first. Default `["nft"]`. Prefix it to run
    /// elsewhere, e.g. `["ip", "netns", "exec", "ns1", "nft"]`. We append
    /// `-f -` (script on stdin) or `-j list table …`.
    pub command: Vec<String>,
    /// A kernel element whose remaining time differs from the desired one by
    /// more than this many seconds is rewritten by `reconcile`. Default 60.
    pub timeout_tolerance_secs: u64,
    /// Kill nft when it runs longer than this. Default 60000 (60 s).
    pub timeout_ms: u64,
    /// Refuse nft output (listings) larger than this. Default 512 MiB
    /// (a listing of one million elements is about 60 MB).
    pub max_output_bytes: usize,
    /// At most this many extra transactions to isolate elements nft refuses
    /// when a batch fails for an element-level reason. Default 256.
    pub max_split_transactions: usize,
    /// How a ban of an element that is already in a set gets its new timeout.
    /// Default `auto`.
    pub refresh: Refresh,
}

/// How to reset the timeout of an element that is already in a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    /// Probe the kernel once (at the first `ensure`, with two throwaway sets
    /// in our table): use `add` if a re-`add` replaces timeouts there, else
    /// `replace`.
    #[default]
    Auto,
    /// A plain `add element … { x timeout T }`: newer kernels (seen on 6.18)
    /// replace the timeout of an existing element, also permanent ↔ timed.
    Add,
    /// `add {x}`, `delete {x}`, `add {x timeout T}` in the transaction: works
    /// everywhere, about three times the work.
    Replace,
}

impl Default for NftConfig {
    fn default() -> Self {
        Self {
            table: "stadtwache".to_string(),
            input: true,
            forward: true,
            priority: -10,
            counter: true,
            command: vec!["nft".to_string()],
            timeout_tolerance_secs: 60,
            timeout_ms: 60_000,
            max_output_bytes: 512 << 20,
            max_split_transactions: 256,
            refresh: Refresh::Auto,
        }
    }
}

impl NftConfig {
    /// Check the values the script generator relies on.
    pub fn validate(&self) -> Result<(), EnforceError> {
        let t = self.table.as_bytes();
        if t.is_empty()
            || t.len() > 64
            || !t[0].is_ascii_alphabetic()
            || !t.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Err(EnforceError::Config(format!(
                "table {:?}: letters, digits and _ only, starting with a letter, at most 64",
                crate::cap_text(&self.table, 80)
            )));
        }
        if !(-400..=400).contains(&self.priority) {
            return Err(EnforceError::Config(format!("priority {} outside -400..=400", self.priority)));
        }
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(EnforceError::Config("command is empty".to_string()));
        }
        if self.timeout_ms == 0 {
            return Err(EnforceError::Config("timeout_ms is 0".to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: NftConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, NftConfig::default());
        c.validate().unwrap();
        assert!(serde_json::from_str::<NftConfig>(r#"{"tabel":"x"}"#).is_err());
        let c: NftConfig =
            serde_json::from_str(r#"{"table":"sw2","forward":false,"priority":-5,"refresh":"replace"}"#).unwrap();
        assert_eq!((c.table.as_str(), c.forward, c.priority, c.input), ("sw2", false, -5, true));
        assert_eq!(c.refresh, Refresh::Replace);
        assert!(serde_json::from_str::<NftConfig>(r#"{"refresh":"sometimes"}"#).is_err());
    }

    #[test]
    fn validation() {
        for table in ["", "1abc", "a b", "a;delete table inet x", "a-b", &"a".repeat(65)] {
            let c = NftConfig { table: table.to_string(), ..NftConfig::default() };
            assert!(c.validate().is_err(), "{table:?} accepted");
        }
        assert!(NftConfig { priority: 1000, ..NftConfig::default() }.validate().is_err());
        assert!(NftConfig { command: vec![], ..NftConfig::default() }.validate().is_err());
        assert!(NftConfig { timeout_ms: 0, ..NftConfig::default() }.validate().is_err());
    }
}
