//! Stage-1 enforcement: drop traffic from banned addresses with nftables.
//!
//! The daemon hands bans to an [`Enforcer`]: [`NftEnforcer`] writes them into
//! an nftables table of our own, [`DryRunEnforcer`] only counts them (the
//! default when nftables is not enabled, so the daemon runs without `nft`).
//!
//! # What we create (and nothing else)
//!
//! One table, `inet stadtwache` by default ([`NftConfig::table`]):
//!
//! ```text
//! table inet stadtwache {
//!     comment "managed by stadtwache; removed by `stadtwache firewall remove`"
//!     set v4    { type ipv4_addr; flags timeout; }            # single IPv4 addresses
//!     set v6    { type ipv6_addr; flags timeout; }            # single IPv6 addresses
//!     set v4net { type ipv4_addr; flags interval,timeout; }   # IPv4 prefixes
//!     set v6net { type ipv6_addr; flags interval,timeout; }   # IPv6 prefixes
//!     chain input   { type filter hook input priority -10; policy accept;
//!                     ip saddr @v4 counter drop; ip saddr @v4net counter drop
//!                     ip6 saddr @v6 counter drop; ip6 saddr @v6net counter drop }
//!     chain forward { type filter hook forward priority -10; policy accept; (same rules) }
//! }
//! ```
//!
//! Design decisions, each checked against nftables 1.0.6 on Linux 6.x:
//! - **Hash sets for addresses, interval sets for prefixes.** Almost every ban
//!   is one address. A plain `timeout` set is a hash: O(1) lookup, no overlap
//!   rules. An `interval` set rejects an element that overlaps an existing one
//!   (`Error: interval overlaps with an existing one`) and the whole
//!   transaction with it, so an address inside a banned prefix could not be
//!   banned on its own there. With separate sets it can: unbanning the prefix
//!   later leaves the address banned with its own timeout. No `auto-merge`:
//!   merged elements could no longer be removed one by one.
//! - **Per-element timeouts**, written in whole seconds (rounded up), capped at
//!   [`MAX_TIMEOUT_SECS`] (nft 1.0.6 refuses `100000000s` with "value too
//!   large"). A ban without expiry is an element without `timeout`: a
//!   permanent element in a timeout set is allowed.
//! - **One `nft -f -` process per call** ([`Enforcer::apply`],
//!   [`Enforcer::reconcile`]): the script goes to nft's stdin and the kernel
//!   applies it as one transaction — all of it or nothing.
//! - **Idempotent scripts.** `add element` of an existing element succeeds;
//!   `delete element` of a missing one fails the transaction (nft 1.0.6 has no
//!   `destroy`). So a removal is written `add element …{x}` then
//!   `delete element …{x}`.
//! - **A repeated ban resets the timeout.** Newer kernels (seen on 6.18)
//!   replace an existing element's timeout on a plain re-`add` — longer,
//!   shorter, permanent ↔ timed; older ones keep the old one. The first
//!   [`Enforcer::ensure`] probes this with two throwaway sets in our table
//!   ([`Refresh::Auto`]). Where it holds, every ban is one `add`. Elsewhere a
//!   ban of a target this enforcer has written (or found in `reconcile`) and
//!   not removed since is written `add {x}`, `delete {x}`, `add {x timeout
//!   T}` — exact whether `x` is still there or has just expired, about three
//!   times the work — and any other ban a plain `add`; should such a target
//!   be in the kernel after all (someone else added it), it keeps its old
//!   timeout until the next `reconcile` retimes it ([`Drift::retimed`]).
//! - **One bad element does not lose the others.** [`Target`] cannot hold an
//!   invalid address, but a prefix can still conflict with one in the kernel.
//!   When nft rejects a transaction for an element-level reason, the batch is
//!   split in halves and retried (bounded number of extra transactions), and
//!   the elements that fail alone are reported in [`ApplyStats::rejected`].
//!   A removal that fails alone because of an overlap was not in the set.
//! - **Layout changes**: `ensure` resets our chains in one transaction
//!   (create-if-missing, flush, delete, re-create), so a new priority or hook
//!   set takes effect with no moment without the drop rules. A set of ours
//!   with another type or flags cannot be altered: nft says "File exists",
//!   and `ensure` then replaces the whole table atomically; `reconcile`
//!   restores the elements.
//! - **Missing table repaired**: when nft says a set does not exist (someone
//!   deleted our table), `apply` runs [`Enforcer::ensure`] once and retries.
//! - **Untrusted output**: nft's stdout is capped ([`NftConfig::max_output_bytes`]),
//!   stderr is kept to [`STDERR_CAP`] bytes, the JSON listing is parsed with
//!   typed serde structures and unknown element shapes are counted, not trusted.
//! - [`Enforcer::remove_all`] deletes our table and nothing else (`add table`
//!   + `delete table` in one transaction, so a missing table is no error).
//!
//! # Scale (measured with `examples/nft_bench.rs`; figures in `BENCHMARKS.md` here)
//!
//! 100,000 new bans are one transaction of about 3.5 MB of script: 0.36 s of
//! CPU (nft + kernel), 0.4–1.0 s wall on a loaded 2-core machine. Restoring
//! them after a restart (`ensure` + `reconcile` into an empty table) takes
//! 0.4 s CPU, about 1 s wall; `list`/`reconcile` of 100,000 elements 0.7 s
//! CPU, nearly all of it inside `nft -j list` (our parsing: 0.03 s).
//! Listing grows faster than linearly with the set size (its kernel part
//! quadratically; the netlink dump apparently re-walks the set for every
//! chunk it returns): 200,000
//! elements took 2.3 s of CPU, 400,000 took 7.5 s. With more than a few
//! hundred thousand bans raise [`NftConfig::timeout_ms`] and reconcile less
//! often.
//!
//! # Daemon wiring
//!
//! ```text
//! start:     enforcer.ensure()?; enforcer.reconcile(&store.active_bans())?;
//! each tick: enforcer.apply(&new_bans, &unbans)   // one transaction per tick
//! every N minutes: enforcer.reconcile(&store.active_bans())  // repairs drift, counts it
//! `stadtwache firewall remove`: enforcer.remove_all()
//! ```

mod config;
mod dryrun;
mod nft;
mod target;

use std::time::Duration;

pub use config::{NftConfig, Refresh};
pub use dryrun::DryRunEnforcer;
pub use nft::{MAX_TIMEOUT_SECS, NftEnforcer, STDERR_CAP};
pub use target::{Ban, Target};

/// Errors of the enforcement layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnforceError {
    /// A text is not an address or prefix (or the prefix is too long).
    #[error("invalid ban target: {0}")]
    InvalidTarget(String),
    /// The configuration is unusable.
    #[error("invalid nftables configuration: {0}")]
    Config(String),
    /// The nft command could not be started or talked to.
    #[error("cannot run {command:?}: {message}")]
    Spawn {
        /// The command line (program and arguments).
        command: String,
        /// The OS error.
        message: String,
    },
    /// nft ran longer than [`NftConfig::timeout_ms`] and was killed.
    #[error("{command:?} did not finish within {timeout_ms} ms (killed)")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit that was exceeded.
        timeout_ms: u64,
    },
    /// nft exited unsuccessfully; `stderr` is nft's message, capped.
    #[error("nft failed ({status}): {stderr}")]
    Nft {
        /// Exit status as text.
        status: String,
        /// nft's standard error, at most [`STDERR_CAP`] bytes.
        stderr: String,
    },
    /// nft's output exceeded [`NftConfig::max_output_bytes`].
    #[error("nft output larger than {0} bytes")]
    OutputTooLarge(usize),
    /// nft's listing is not the JSON we expect.
    #[error("cannot parse nft output: {0}")]
    Parse(String),
}

/// What one [`Enforcer::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Bans written (after removing duplicates and expired ones).
    pub added: usize,
    /// Removals written (targets that may or may not have been present).
    pub removed: usize,
    /// Bans skipped because their remaining time was zero.
    pub skipped_expired: usize,
    /// nft transactions run (1 unless a batch had to be split).
    pub transactions: usize,
    /// Targets nftables refused on their own, with nft's message.
    pub rejected: Vec<(Target, String)>,
}

/// What a reconciliation found (and repaired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Desired bans that were not in the kernel (added).
    pub missing: usize,
    /// Kernel elements that are not desired (removed).
    pub extra: usize,
    /// Elements whose remaining time differed from the desired one by more
    /// than [`NftConfig::timeout_tolerance_secs`], or permanent on one side
    /// only (rewritten).
    pub retimed: usize,
    /// Kernel elements we could not read as a target (left alone).
    pub unparsed: usize,
    /// Elements in the kernel after the repair (= desired bans, minus rejected).
    pub total: usize,
    /// Bans nftables refused during the repair.
    pub rejected: Vec<(Target, String)>,
}

impl Drift {
    /// True when kernel and desired state agreed.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.retimed == 0
    }
}

/// Counters since the enforcer was created, for `health` endpoints and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Transactions run (successful or not).
    pub transactions: u64,
    /// Transactions nft refused or that could not run.
    pub failures: u64,
    /// Ban elements written.
    pub elements_added: u64,
    /// Removals written.
    pub elements_removed: u64,
    /// Targets refused by nftables on their own.
    pub elements_rejected: u64,
    /// Reconciliations run.
    pub reconciles: u64,
    /// Sum of [`Drift::missing`] over all reconciliations.
    pub drift_missing: u64,
    /// Sum of [`Drift::extra`].
    pub drift_extra: u64,
    /// Sum of [`Drift::retimed`].
    pub drift_retimed: u64,
    /// The last error, if any (cleared by nothing: it is history).
    pub last_error: Option<String>,
}

/// A firewall backend.
pub trait Enforcer: Send {
    /// Short name for logs (`"nftables"`, `"dry-run"`).
    fn name(&self) -> &'static str;

    /// Create our table, sets and chains if they do not exist, and reset our
    /// chains' rules to the configured ones. Idempotent; never touches banned
    /// elements.
    fn ensure(&mut self) -> Result<(), EnforceError>;

    /// Remove `remove`, then add `add`, in one transaction. Adding an
    /// existing ban resets its remaining time (see the crate docs for the one
    /// exception that `reconcile` repairs); removing an absent target is no
    /// error. A target in both lists ends up banned. Call `reconcile` once at
    /// start before the first `apply`.
    fn apply(&mut self, add: &[Ban], remove: &[Target]) -> Result<ApplyStats, EnforceError>;

    /// The banned targets in the kernel with their remaining time (`None` = permanent).
    fn list(&mut self) -> Result<Vec<(Target, Option<Duration>)>, EnforceError>;

    /// Make the kernel hold exactly `desired` (adding missing bans, removing
    /// extra elements, fixing remaining times) and report what differed.
    fn reconcile(&mut self, desired: &[Ban]) -> Result<Drift, EnforceError>;

    /// Remove everything we created. Nothing there is no error.
    fn remove_all(&mut self) -> Result<(), EnforceError>;

    /// Counters since creation.
    fn health(&self) -> Health;
}

/// At most `max` bytes of `s` (cut at a char boundary), with `…` when cut.
pub(crate) fn cap_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
