//! [`NftEnforcer`]: bans as elements of nftables sets, one `nft -f -` transaction per call.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{ApplyStats, Ban, Drift, EnforceError, Enforcer, Health, NftConfig, Refresh, Target, cap_text};

/// Longest element timeout we write, in seconds (about 3.2 years): nft 1.0.6
/// refuses `timeout 100000000s` ("value too large"). Longer bans are written
/// with this timeout; `reconcile` compares against the capped value.
pub const MAX_TIMEOUT_SECS: u64 = 99_999_999;

/// Bytes of nft's standard error kept in errors.
pub const STDERR_CAP: usize = 4096;

/// Our four sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SetKind {
    V4,
    V6,
    V4Net,
    V6Net,
}

impl SetKind {
    const ALL: [SetKind; 4] = [SetKind::V4, SetKind::V6, SetKind::V4Net, SetKind::V6Net];

    fn of(t: &Target) -> Self {
        match (t.is_ipv4(), t.prefix().is_some()) {
            (true, false) => SetKind::V4,
            (false, false) => SetKind::V6,
            (true, true) => SetKind::V4Net,
            (false, true) => SetKind::V6Net,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SetKind::V4 => "v4",
            SetKind::V6 => "v6",
            SetKind::V4Net => "v4net",
            SetKind::V6Net => "v6net",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    fn decl(self) -> &'static str {
        match self {
            SetKind::V4 => "type ipv4_addr; flags timeout;",
            SetKind::V6 => "type ipv6_addr; flags timeout;",
            SetKind::V4Net => "type ipv4_addr; flags interval,timeout;",
            SetKind::V6Net => "type ipv6_addr; flags interval,timeout;",
        }
    }

    fn ip_match(self) -> &'static str {
        match self {
            SetKind::V4 | SetKind::V4Net => "ip saddr",
            SetKind::V6 | SetKind::V6Net => "ip6 saddr",
        }
    }
}

/// One element operation of a transaction.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Ban: `timeout` in seconds (`None` = permanent). `fresh` = known to be
    /// absent, so a plain `add` suffices; otherwise add/delete/add resets the timeout.
    Add { set: SetKind, target: Target, timeout: Option<u64>, fresh: bool },
    /// Remove if present.
    Remove { set: SetKind, target: Target },
}

impl Op {
    fn target(&self) -> Target {
        match *self {
            Op::Add { target, .. } | Op::Remove { target, .. } => target,
        }
    }
}

/// Seconds written for a remaining time: rounded up, at least 1, at most
/// [`MAX_TIMEOUT_SECS`]; `None` for a zero duration (already over).
fn timeout_secs(d: Duration) -> Option<u64> {
    if d.is_zero() {
        return None;
    }
    let ms = d.as_millis();
    let secs = ms.div_ceil(1000).max(1);
    Some(u64::try_from(secs).unwrap_or(u64::MAX).min(MAX_TIMEOUT_SECS))
}

/// Deduplicated bans: target → timeout seconds (`None` = permanent). A
/// permanent ban beats any timed one, otherwise the longest wins. Keeps the
/// first-seen order. Returns the bans and the number of expired ones skipped.
pub(crate) fn merge_bans(bans: &[Ban]) -> (Vec<(Target, Option<u64>)>, usize) {
    let mut index: HashMap<Target, usize> = HashMap::with_capacity(bans.len());
    let mut out: Vec<(Target, Option<u64>)> = Vec::with_capacity(bans.len());
    let mut skipped = 0;
    for b in bans {
        let t = match b.expires {
            None => None,
            Some(d) => match timeout_secs(d) {
                Some(s) => Some(s),
                None => {
                    skipped += 1;
                    continue;
                }
            },
        };
        match index.get(&b.target) {
            Some(&i) => {
                let cur = &mut out[i].1;
                *cur = match (*cur, t) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(a.max(b)),
                };
            }
            None => {
                index.insert(b.target, out.len());
                out.push((b.target, t));
            }
        }
    }
    (out, skipped)
}

/// Writes an address the way nft reads it (IPv6 prefixes in brackets are not needed).
fn write_target(s: &mut String, t: &Target) {
    // Display of IpAddr and the prefix are both valid nft syntax.
    let _ = write!(s, "{t}");
}

/// The enforcer that writes into nftables. See the crate documentation.
#[derive(Debug)]
pub struct NftEnforcer {
    config: NftConfig,
    health: Health,
    /// Targets our successful transactions left in their set (expired ones
    /// included). A ban of a target not in here is written as a plain `add`
    /// (a third of the work of add/delete/add); if it was there after all
    /// (added by someone else, or before a restart without reconcile), it
    /// keeps its old timeout until the next `reconcile` retimes it.
    written: HashSet<Target>,
    /// Whether a plain re-`add` replaces an element's timeout: from the
    /// configuration, or probed at the first `ensure` (`None` = not yet).
    readd_replaces: Option<bool>,
}

/// Result of one nft run.
struct RunOutput {
    stdout: Vec<u8>,
}

impl NftEnforcer {
    /// An enforcer with `config` (validated). Runs nothing yet.
    pub fn new(config: NftConfig) -> Result<Self, EnforceError> {
        config.validate()?;
        let readd_replaces = match config.refresh {
            Refresh::Auto => None,
            Refresh::Add => Some(true),
            Refresh::Replace => Some(false),
        };
        Ok(Self { config, health: Health::default(), written: HashSet::new(), readd_replaces })
    }

    /// The configuration.
    pub fn config(&self) -> &NftConfig {
        &self.config
    }

    /// Whether a ban of an element already present is written as a plain
    /// `add` (`Some(true)`) or add/delete/add (`Some(false)`); `None` until
    /// the first `ensure` has probed the kernel ([`Refresh::Auto`]).
    pub fn readd_replaces_timeouts(&self) -> Option<bool> {
        self.readd_replaces
    }

    /// Does a re-`add` replace timeouts (longer, shorter, permanent ↔ timed)
    /// in a hash and an interval set? Two throwaway sets in our table,
    /// removed again whatever happens.
    fn probe_readd(&mut self) -> Result<bool, EnforceError> {
        let t = self.config.table.clone();
        let sets = [
            ("probeh", "", ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]),
            ("proben", "interval,", ["192.0.2.16/28", "192.0.2.32/28", "192.0.2.48/28", "192.0.2.64/28"]),
        ];
        // Before → after: longer, shorter, permanent → timed, timed → permanent.
        let steps = [
            (" timeout 1000s", " timeout 3000s"),
            (" timeout 3000s", " timeout 1000s"),
            ("", " timeout 2000s"),
            (" timeout 1000s", ""),
        ];
        let (mut first, mut second, mut cleanup) = (String::new(), String::new(), String::new());
        for (name, flags, elems) in sets {
            let _ = writeln!(first, "add set inet {t} {name} {{ type ipv4_addr; flags {flags}timeout; }}");
            let before: Vec<String> = elems.iter().zip(steps).map(|(e, (b, _))| format!("{e}{b}")).collect();
            let after: Vec<String> = elems.iter().zip(steps).map(|(e, (_, a))| format!("{e}{a}")).collect();
            let _ = writeln!(first, "add element inet {t} {name} {{ {} }}", before.join(", "));
            let _ = writeln!(second, "add element inet {t} {name} {{ {} }}", after.join(", "));
            let _ = writeln!(cleanup, "add set inet {t} {name} {{ type ipv4_addr; flags {flags}timeout; }}");
            let _ = writeln!(cleanup, "delete set inet {t} {name}");
        }
        let result = (|| {
            self.transact(first)?;
            self.transact(second)?;
            let mut ok = true;
            for (name, _, elems) in sets {
                let out = self.run(&["-j", "list", "set", "inet", &t, name], None)?;
                let listed = parse_set_elements(&out.stdout)?;
                let get = |e: &str| listed.iter().find(|(x, _)| x.to_string() == e).map(|(_, r)| *r);
                ok &= matches!(get(elems[0]), Some(Some(r)) if r > 2000)
                    && matches!(get(elems[1]), Some(Some(r)) if r <= 1000)
                    && matches!(get(elems[2]), Some(Some(r)) if r <= 2000)
                    && get(elems[3]) == Some(None);
            }
            Ok(ok)
        })();
        let cleaned = self.transact(cleanup);
        let ok = result?;
        cleaned?;
        Ok(ok)
    }

    fn command_text(&self) -> String {
        self.config.command.join(" ")
    }

    /// Runs the configured command with `args`, `stdin` as its input,
    /// enforcing the time limit and the output caps.
    fn run(&self, args: &[&str], stdin: Option<Vec<u8>>) -> Result<RunOutput, EnforceError> {
        let cmd = &self.config.command;
        let spawn_err =
            |e: std::io::Error| EnforceError::Spawn { command: self.command_text(), message: e.to_string() };
        let mut child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let deadline = Instant::now() + Duration::from_millis(self.config.timeout_ms);
        let timeout = || EnforceError::Timeout { command: self.command_text(), timeout_ms: self.config.timeout_ms };

        // Plain threads, not scoped ones: a process that nft leaves behind
        // holding the pipes (or a wrapper's child) must not block us past the
        // deadline; such threads end when the pipes close.
        if let (Some(mut w), Some(data)) = (child.stdin.take(), stdin) {
            // A write error means nft exited early; its status tells why.
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let max_out = self.config.max_output_bytes;
        for (is_out, pipe) in [
            (true, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
            (false, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let cap = if is_out { max_out } else { STDERR_CAP };
                let _ = tx.send((is_out, read_capped(pipe, cap)));
            });
        }
        drop(tx);

        let mut nap = Duration::from_micros(200);
        let status = loop {
            match child.try_wait().map_err(spawn_err)? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(timeout());
                }
                None => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(10));
                }
            }
        };
        let (mut stdout, mut stderr) = ((Vec::new(), false), (Vec::new(), false));
        for _ in 0..2 {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok((true, r)) => stdout = r,
                Ok((false, r)) => stderr = r,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(timeout()),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr.0);
            return Err(EnforceError::Nft { status: status.to_string(), stderr: cap_text(text.trim(), STDERR_CAP) });
        }
        if stdout.1 {
            return Err(EnforceError::OutputTooLarge(max_out));
        }
        Ok(RunOutput { stdout: stdout.0 })
    }

    /// Creates or repairs table, sets and chains (one transaction).
    fn ensure_layout(&mut self) -> Result<(), EnforceError> {
        match self.transact(self.ensure_script()) {
            // A set of ours with another type or flags (an older layout, or
            // made by hand) cannot be changed in place: replace the whole
            // table in one transaction. Its elements are gone until the next
            // `reconcile` restores them.
            Err(EnforceError::Nft { stderr, .. }) if stderr.contains("File exists") => {
                let t = &self.config.table;
                let script = format!("add table inet {t}\ndelete table inet {t}\n{}", self.ensure_script());
                self.written.clear();
                self.transact(script)
            }
            other => other,
        }
    }

    /// Runs `script` as one transaction, updating the health counters.
    fn transact(&mut self, script: String) -> Result<(), EnforceError> {
        self.health.transactions += 1;
        match self.run(&["-f", "-"], Some(script.into_bytes())) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.health.failures += 1;
                self.health.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn ensure_script(&self) -> String {
        let t = &self.config.table;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "add table inet {t} {{ comment \"managed by stadtwache; removed by stadtwache firewall remove\"; }}"
        );
        for k in SetKind::ALL {
            let _ = writeln!(s, "add set inet {t} {} {{ {} }}", k.name(), k.decl());
        }
        for (chain, on) in [("input", self.config.input), ("forward", self.config.forward)] {
            // Create-if-missing, then empty and delete: a chain whose hook
            // spec changed (priority) cannot be altered in place. In one
            // transaction, so there is no moment without the drop rules.
            let _ = writeln!(s, "add chain inet {t} {chain}");
            let _ = writeln!(s, "flush chain inet {t} {chain}");
            let _ = writeln!(s, "delete chain inet {t} {chain}");
            if on {
                let _ = writeln!(
                    s,
                    "add chain inet {t} {chain} {{ type filter hook {chain} priority {}; policy accept; }}",
                    self.config.priority
                );
                for k in SetKind::ALL {
                    let counter = if self.config.counter { " counter" } else { "" };
                    let _ = writeln!(s, "add rule inet {t} {chain} {} @{}{counter} drop", k.ip_match(), k.name());
                }
            }
        }
        s
    }

    /// The script for `ops`: all removals, then all additions, per set.
    fn ops_script(&self, ops: &[Op]) -> String {
        let t = &self.config.table;
        let mut s = String::with_capacity(ops.len() * 40 + 256);
        let line =
            |s: &mut String, verb: &str, set: SetKind, items: &mut dyn Iterator<Item = (Target, Option<u64>)>| {
                let mut first = true;
                for (target, timeout) in items {
                    if first {
                        let _ = write!(s, "{verb} element inet {t} {} {{ ", set.name());
                        first = false;
                    } else {
                        s.push_str(", ");
                    }
                    write_target(s, &target);
                    if let Some(secs) = timeout {
                        let _ = write!(s, " timeout {secs}s");
                    }
                }
                if !first {
                    s.push_str(" }\n");
                }
            };
        for set in SetKind::ALL {
            let removes = || {
                ops.iter().filter_map(move |o| match *o {
                    Op::Remove { set: k, target } if k == set => Some((target, None)),
                    _ => None,
                })
            };
            line(&mut s, "add", set, &mut removes());
            line(&mut s, "delete", set, &mut removes());
        }
        for set in SetKind::ALL {
            let refresh = || {
                ops.iter().filter_map(move |o| match *o {
                    Op::Add { set: k, target, fresh: false, .. } if k == set => Some((target, None)),
                    _ => None,
                })
            };
            line(&mut s, "add", set, &mut refresh());
            line(&mut s, "delete", set, &mut refresh());
            line(
                &mut s,
                "add",
                set,
                &mut ops.iter().filter_map(|o| match *o {
                    Op::Add { set: k, target, timeout, .. } if k == set => Some((target, timeout)),
                    _ => None,
                }),
            );
        }
        s
    }

    /// Runs `ops` in one transaction; if nft refuses it for an element-level
    /// reason, splits it in halves (within `budget` extra transactions) to
    /// apply every element it can and report the others in `stats.rejected`.
    fn run_ops(&mut self, ops: &[Op], stats: &mut ApplyStats, budget: &mut usize) -> Result<(), EnforceError> {
        if ops.is_empty() {
            return Ok(());
        }
        stats.transactions += 1;
        let script = self.ops_script(ops);
        match self.transact(script) {
            Ok(()) => {
                for op in ops {
                    match *op {
                        Op::Add { target, .. } => {
                            stats.added += 1;
                            self.written.insert(target);
                        }
                        Op::Remove { set, target } => {
                            stats.removed += 1;
                            if set == SetKind::of(&target) {
                                self.written.remove(&target);
                            }
                        }
                    }
                }
                self.health.elements_added += ops.iter().filter(|o| matches!(o, Op::Add { .. })).count() as u64;
                self.health.elements_removed += ops.iter().filter(|o| matches!(o, Op::Remove { .. })).count() as u64;
                Ok(())
            }
            Err(e) if element_level(&e) => {
                if let [op] = ops {
                    match op {
                        // `add {x}` overlapped an element: x itself was not there.
                        Op::Remove { .. } if overlap(&e) => stats.removed += 1,
                        _ => {
                            self.health.elements_rejected += 1;
                            stats.rejected.push((op.target(), nft_message(&e)));
                        }
                    }
                    return Ok(());
                }
                if *budget < 2 {
                    let msg = format!("not isolated (split budget used up): {}", nft_message(&e));
                    for op in ops {
                        self.health.elements_rejected += 1;
                        stats.rejected.push((op.target(), msg.clone()));
                    }
                    return Ok(());
                }
                *budget -= 2;
                let (a, b) = ops.split_at(ops.len() / 2);
                self.run_ops(a, stats, budget)?;
                self.run_ops(b, stats, budget)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `ops`, repairing a missing table once (ensure + retry).
    fn run_ops_repairing(&mut self, ops: &[Op], stats: &mut ApplyStats) -> Result<(), EnforceError> {
        let mut budget = self.config.max_split_transactions;
        match self.run_ops(ops, stats, &mut budget) {
            Err(e) if missing_object(&e) => {
                self.ensure()?;
                let mut retry = ApplyStats { transactions: stats.transactions, ..ApplyStats::default() };
                self.run_ops(ops, &mut retry, &mut budget)?;
                *stats = ApplyStats { skipped_expired: stats.skipped_expired, ..retry };
                Ok(())
            }
            other => other,
        }
    }

    /// The kernel's view of our table: elements per set, and whether the
    /// chains and rules are as configured.
    fn snapshot(&mut self) -> Result<Snapshot, EnforceError> {
        let t = self.config.table.clone();
        let out = match self.run(&["-j", "list", "table", "inet", &t], None) {
            Ok(o) => o,
            Err(e) => {
                self.health.failures += 1;
                self.health.last_error = Some(e.to_string());
                return Err(e);
            }
        };
        parse_listing(&out.stdout, &self.config)
    }
}

/// Reads all of `r`, keeping at most `cap` bytes; `true` when more came.
fn read_capped(r: Option<Box<dyn Read + Send>>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut r) = r else { return (Vec::new(), false) };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut over = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                if n > room {
                    over = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, over)
}

fn nft_message(e: &EnforceError) -> String {
    match e {
        EnforceError::Nft { stderr, .. } => {
            // The first "Error: …" line is the reason; the rest echoes the script.
            let line = stderr.lines().find(|l| l.contains("Error:")).unwrap_or(stderr);
            cap_text(line.trim(), 300)
        }
        other => other.to_string(),
    }
}

fn overlap(e: &EnforceError) -> bool {
    matches!(e, EnforceError::Nft { stderr, .. } if stderr.contains("overlap") || stderr.contains("conflicting"))
}

/// nft refused the batch because of (some of) its elements, not because
/// of the table or the command.
fn element_level(e: &EnforceError) -> bool {
    overlap(e) || matches!(e, EnforceError::Nft { stderr, .. } if stderr.contains("value too large"))
}

/// nft says the table or a set does not exist.
fn missing_object(e: &EnforceError) -> bool {
    matches!(e, EnforceError::Nft { stderr, .. } if stderr.contains("No such file or directory"))
}

/// What `list table -j` shows of our table.
#[derive(Debug, Default)]
struct Snapshot {
    /// (set, target, remaining seconds or `None` = permanent).
    elements: Vec<(SetKind, Target, Option<u64>)>,
    unparsed: usize,
    /// Our sets, chains and rules are all there as configured.
    structure_ok: bool,
}

#[derive(Deserialize)]
struct JsonRoot {
    nftables: Vec<JsonItem>,
}

#[derive(Deserialize)]
struct JsonItem {
    #[serde(default)]
    set: Option<JsonSet>,
    #[serde(default)]
    chain: Option<JsonChain>,
    #[serde(default)]
    rule: Option<JsonRule>,
}

#[derive(Deserialize)]
struct JsonSet {
    name: String,
    #[serde(default)]
    elem: Vec<JsonElem>,
}

#[derive(Deserialize)]
struct JsonChain {
    name: String,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    prio: Option<i64>,
}

#[derive(Deserialize)]
struct JsonRule {
    chain: String,
}

/// An element: `"1.2.3.4"`, `{"prefix": …}`, or `{"elem": {"val": …, "timeout": s, "expires": s}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonElem {
    // Wrapped first: `Plain` would take any object through `JsonVal::Other`.
    Wrapped { elem: JsonElemInner },
    Plain(JsonVal),
}

#[derive(Deserialize)]
struct JsonElemInner {
    val: JsonVal,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    expires: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonVal {
    Addr(String),
    Prefix { prefix: JsonPrefix },
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct JsonPrefix {
    addr: String,
    len: u8,
}

impl JsonVal {
    fn target(&self) -> Option<Target> {
        match self {
            JsonVal::Addr(a) => a.parse::<IpAddr>().ok().map(Target::addr),
            JsonVal::Prefix { prefix } => Target::new(prefix.addr.parse().ok()?, Some(prefix.len)).ok(),
            JsonVal::Other(_) => None,
        }
    }
}

impl JsonElem {
    /// The target and remaining seconds (`None` = permanent), if we can read it.
    fn parse(&self) -> Option<(Target, Option<u64>)> {
        let (val, remaining) = match self {
            JsonElem::Plain(v) => (v, None),
            JsonElem::Wrapped { elem } => (&elem.val, elem.expires.or(elem.timeout)),
        };
        Some((val.target()?, remaining))
    }
}

/// The readable elements of every set in a `nft -j list set …` output.
fn parse_set_elements(bytes: &[u8]) -> Result<Vec<(Target, Option<u64>)>, EnforceError> {
    let root: JsonRoot =
        serde_json::from_slice(bytes).map_err(|e| EnforceError::Parse(cap_text(&e.to_string(), 300)))?;
    Ok(root.nftables.into_iter().filter_map(|i| i.set).flat_map(|s| s.elem).filter_map(|e| e.parse()).collect())
}

fn parse_listing(bytes: &[u8], config: &NftConfig) -> Result<Snapshot, EnforceError> {
    let root: JsonRoot =
        serde_json::from_slice(bytes).map_err(|e| EnforceError::Parse(cap_text(&e.to_string(), 300)))?;
    let mut snap = Snapshot::default();
    let mut sets_seen = 0;
    let mut chains: HashMap<String, (Option<String>, Option<i64>)> = HashMap::new();
    let mut rules: HashMap<String, usize> = HashMap::new();
    for item in root.nftables {
        if let Some(set) = item.set {
            let Some(kind) = SetKind::from_name(&set.name) else { continue };
            sets_seen += 1;
            for e in set.elem {
                match e.parse() {
                    Some((t, remaining)) => snap.elements.push((kind, t, remaining)),
                    None => snap.unparsed += 1,
                }
            }
        }
        if let Some(c) = item.chain {
            chains.insert(c.name, (c.hook, c.prio));
        }
        if let Some(r) = item.rule {
            *rules.entry(r.chain).or_default() += 1;
        }
    }
    let chain_ok = |name: &str, on: bool| match chains.get(name) {
        None => !on,
        Some((hook, prio)) => {
            on && hook.as_deref() == Some(name)
                && *prio == Some(i64::from(config.priority))
                && rules.get(name).copied().unwrap_or(0) == SetKind::ALL.len()
        }
    };
    snap.structure_ok = sets_seen == SetKind::ALL.len()
        && chain_ok("input", config.input)
        && chain_ok("forward", config.forward)
        && chains.len() == usize::from(config.input) + usize::from(config.forward);
    Ok(snap)
}

impl Enforcer for NftEnforcer {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn ensure(&mut self) -> Result<(), EnforceError> {
        self.ensure_layout()?;
        if self.readd_replaces.is_none() {
            // A probe that cannot run is a "no": add/delete/add works everywhere
            // (the failure is in `health().last_error`).
            let replaces = match self.probe_readd() {
                Ok(r) => r,
                Err(e) => {
                    self.health.last_error = Some(format!("probing timeout replacement: {e}"));
                    false
                }
            };
            self.readd_replaces = Some(replaces);
        }
        Ok(())
    }

    fn apply(&mut self, add: &[Ban], remove: &[Target]) -> Result<ApplyStats, EnforceError> {
        let (bans, skipped) = merge_bans(add);
        let banned: HashSet<Target> = bans.iter().map(|b| b.0).collect();
        let mut seen = HashSet::with_capacity(remove.len());
        let mut ops: Vec<Op> = Vec::with_capacity(bans.len() + remove.len());
        for t in remove {
            if !banned.contains(t) && seen.insert(*t) {
                ops.push(Op::Remove { set: SetKind::of(t), target: *t });
            }
        }
        for (target, timeout) in bans {
            let fresh = self.readd_replaces == Some(true) || !self.written.contains(&target);
            ops.push(Op::Add { set: SetKind::of(&target), target, timeout, fresh });
        }
        let mut stats = ApplyStats { skipped_expired: skipped, ..ApplyStats::default() };
        self.run_ops_repairing(&ops, &mut stats)?;
        Ok(stats)
    }

    fn list(&mut self) -> Result<Vec<(Target, Option<Duration>)>, EnforceError> {
        let snap = self.snapshot()?;
        Ok(snap.elements.into_iter().map(|(_, t, r)| (t, r.map(Duration::from_secs))).collect())
    }

    fn reconcile(&mut self, desired: &[Ban]) -> Result<Drift, EnforceError> {
        self.health.reconciles += 1;
        let snap = match self.snapshot() {
            Ok(s) => s,
            Err(e) if missing_object(&e) => Snapshot::default(),
            Err(e) => return Err(e),
        };
        if !snap.structure_ok {
            self.ensure()?;
        }
        let (bans, _) = merge_bans(desired);
        let want: HashMap<Target, Option<u64>> = bans.iter().copied().collect();
        let mut have: HashMap<Target, Option<u64>> = HashMap::with_capacity(snap.elements.len());
        let mut ops = Vec::new();
        let mut drift = Drift { unparsed: snap.unparsed, ..Drift::default() };
        for (set, target, remaining) in snap.elements {
            if set != SetKind::of(&target) || !want.contains_key(&target) {
                // Not desired, or in the wrong set (written by hand): remove from where it is.
                drift.extra += 1;
                ops.push(Op::Remove { set, target });
            } else {
                have.insert(target, remaining);
            }
        }
        let tol = self.config.timeout_tolerance_secs;
        for (target, timeout) in bans {
            let set = SetKind::of(&target);
            match have.get(&target) {
                None => {
                    drift.missing += 1;
                    ops.push(Op::Add { set, target, timeout, fresh: true });
                }
                Some(&remaining) => {
                    let differs = match (timeout, remaining) {
                        (None, None) => false,
                        (Some(want), Some(have)) => want.abs_diff(have) > tol,
                        _ => true,
                    };
                    if differs {
                        drift.retimed += 1;
                        ops.push(Op::Add { set, target, timeout, fresh: self.readd_replaces == Some(true) });
                    }
                }
            }
        }
        let mut stats = ApplyStats::default();
        self.run_ops_repairing(&ops, &mut stats)?;
        drift.total = want.len() - stats.rejected.iter().filter(|(t, _)| want.contains_key(t)).count();
        self.written = want.into_keys().collect();
        for (t, _) in &stats.rejected {
            self.written.remove(t);
        }
        drift.rejected = stats.rejected;
        self.health.drift_missing += drift.missing as u64;
        self.health.drift_extra += drift.extra as u64;
        self.health.drift_retimed += drift.retimed as u64;
        Ok(drift)
    }

    fn remove_all(&mut self) -> Result<(), EnforceError> {
        let t = &self.config.table;
        // `add` first, so that a missing table is no error (1.0.6 has no `destroy`).
        let script = format!("add table inet {t}\ndelete table inet {t}\n");
        self.written.clear();
        self.transact(script)
    }

    fn health(&self) -> Health {
        self.health.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn timeouts_round_up_and_cap() {
        assert_eq!(timeout_secs(Duration::ZERO), None);
        assert_eq!(timeout_secs(Duration::from_millis(1)), Some(1));
        assert_eq!(timeout_secs(Duration::from_millis(1500)), Some(2));
        assert_eq!(timeout_secs(Duration::from_secs(600)), Some(600));
        assert_eq!(timeout_secs(Duration::from_secs(u64::MAX)), Some(MAX_TIMEOUT_SECS));
    }

    #[test]
    fn merge_keeps_longest_and_permanent() {
        let a = t("1.2.3.4");
        let b = t("10.0.0.0/8");
        let bans = [
            Ban::new(a, Duration::from_secs(10)),
            Ban::new(b, Duration::from_secs(10)),
            Ban::new(a, Duration::from_secs(30)),
            Ban::permanent(b),
            Ban::new(b, Duration::from_secs(99)),
            Ban::new(t("2001:db8::1"), Duration::ZERO),
        ];
        let (m, skipped) = merge_bans(&bans);
        assert_eq!(m, vec![(a, Some(30)), (b, None)]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn script_shape() {
        let e = NftEnforcer::new(NftConfig::default()).unwrap();
        let ops = [
            Op::Remove { set: SetKind::V4, target: t("9.9.9.9") },
            Op::Add { set: SetKind::V4, target: t("1.2.3.4"), timeout: Some(600), fresh: false },
            Op::Add { set: SetKind::V6Net, target: t("2001:db8::/48"), timeout: None, fresh: true },
            Op::Add { set: SetKind::V4, target: t("5.6.7.8"), timeout: None, fresh: true },
        ];
        let s = e.ops_script(&ops);
        assert_eq!(
            s,
            "add element inet stadtwache v4 { 9.9.9.9 }\n\
             delete element inet stadtwache v4 { 9.9.9.9 }\n\
             add element inet stadtwache v4 { 1.2.3.4 }\n\
             delete element inet stadtwache v4 { 1.2.3.4 }\n\
             add element inet stadtwache v4 { 1.2.3.4 timeout 600s, 5.6.7.8 }\n\
             add element inet stadtwache v6net { 2001:db8::/48 }\n"
        );
        let ens = e.ensure_script();
        assert!(ens.contains("add rule inet stadtwache input ip6 saddr @v6net counter drop\n"), "{ens}");
        assert!(ens.contains("type filter hook forward priority -10; policy accept;"), "{ens}");
    }

    #[test]
    fn disabled_hook_is_deleted_not_created() {
        let e = NftEnforcer::new(NftConfig { forward: false, counter: false, ..NftConfig::default() }).unwrap();
        let s = e.ensure_script();
        assert!(s.contains("delete chain inet stadtwache forward\n"));
        assert!(!s.contains("hook forward"));
        assert!(!s.contains("counter"));
    }

    #[test]
    fn mutated_listings_never_panic() {
        let good = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"name": "v4", "elem": ["5.5.5.5",
            {"elem": {"val": "1.2.3.4", "timeout": 600, "expires": 599}}]}}, {"set": {"name": "v6net", "elem": [
            {"elem": {"val": {"prefix": {"addr": "2001:db8::", "len": 48}}, "timeout": 60, "expires": 59}}]}},
            {"chain": {"name": "input", "hook": "input", "prio": -10}}, {"rule": {"chain": "input"}}]}"#;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const SPECIAL: &[u8] = br#"{}[]":,0123456789-./abcdef "#;
        let mut parsed = 0;
        for _ in 0..10_000 {
            let mut b = good.to_vec();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() % b.len() as u64) as usize;
                match rnd() % 3 {
                    0 => b[i] = SPECIAL[(rnd() % SPECIAL.len() as u64) as usize],
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, (rnd() % 256) as u8),
                }
            }
            if let Ok(snap) = parse_listing(&b, &NftConfig::default()) {
                parsed += 1;
                assert!(snap.elements.len() <= 3);
            }
            let _ = parse_set_elements(&b);
        }
        assert!(parsed > 0, "no mutation parsed at all: the test exercises nothing but the error path");
    }

    #[test]
    fn listing_parses_defensively() {
        let json = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "stadtwache"}},
            {"set": {"family": "inet", "name": "v4", "table": "stadtwache", "type": "ipv4_addr",
              "elem": ["5.5.5.5", {"elem": {"val": "1.2.3.4", "timeout": 600, "expires": 599}}, {"elem": {"val": "x"}}]}},
            {"set": {"family": "inet", "name": "v4net", "table": "stadtwache", "elem": [
              {"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 8}}, "timeout": 60, "expires": 59}},
              {"prefix": {"addr": "11.0.0.0", "len": 8}}, {"range": ["1.0.0.1", "1.0.0.3"]}]}},
            {"set": {"name": "v6", "table": "stadtwache"}},
            {"set": {"name": "v6net", "table": "stadtwache"}},
            {"set": {"name": "foreign", "table": "stadtwache", "elem": ["1.1.1.1"]}}]}"#;
        let snap = parse_listing(json, &NftConfig::default()).unwrap();
        assert_eq!(
            snap.elements,
            vec![
                (SetKind::V4, t("5.5.5.5"), None),
                (SetKind::V4, t("1.2.3.4"), Some(599)),
                (SetKind::V4Net, t("10.0.0.0/8"), Some(59)),
                (SetKind::V4Net, t("11.0.0.0/8"), None),
            ]
        );
        assert_eq!(snap.unparsed, 2);
        assert!(!snap.structure_ok, "no chains listed");
        for bad in [&b"not json"[..], b"{}", b"{\"nftables\": 3}", b"[]"] {
            assert!(parse_listing(bad, &NftConfig::default()).is_err());
        }
    }
}
