//! Network namespaces for the nftables tests: every test creates its own
//! (`sw-enf-<pid>-<n>`), runs nft inside it and deletes it on drop, also
//! after a panic. The root namespace's ruleset is never touched.
//!
//! When namespaces cannot be created (not root, no `ip`, no `nft`) a test
//! prints `SKIPPED: <reason>` and passes — unless `STADTWACHE_REQUIRE_NETNS=1`
//! (set by CI), then it fails.

#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use stadtwache_enforce::NftConfig;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of our own, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace with `lo` up, or why not.
    pub fn new() -> Result<Self, String> {
        let name = format!("sw-enf-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        // A test process killed before its drops ran leaves its namespaces
        // behind; one of a later run with the same pid would then fail to be
        // created. No live process uses this name (the pid is ours): remove it.
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(std::process::Stdio::null()).status();
        run_ok("ip", &["netns", "add", &name]).map_err(|e| format!("cannot create a network namespace: {e}"))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        Ok(ns)
    }

    /// The enforcer configuration that runs nft in this namespace.
    pub fn config(&self) -> NftConfig {
        NftConfig { command: self.nft_command(), ..NftConfig::default() }
    }

    pub fn nft_command(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name, "nft"].iter().map(|s| s.to_string()).collect()
    }

    /// `nft ARGS` in this namespace; panics (with nft's stderr) on failure.
    pub fn nft(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, "nft"];
        all.extend_from_slice(args);
        run_ok("ip", &all).unwrap_or_else(|e| panic!("nft {args:?} in {}: {e}", self.name))
    }

    /// `nft ARGS` that may fail: Ok(stdout) or Err(stderr).
    pub fn try_nft(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name, "nft"];
        all.extend_from_slice(args);
        run_ok("ip", &all)
    }

    /// `ip -n NS ARGS`; panics on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ok("ip", &all).unwrap_or_else(|e| panic!("ip {all:?}: {e}"));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Runs a program; Ok(stdout) on success, Err(stderr or spawn error).
pub fn run_ok(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog).args(args).output().map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{prog} {args:?}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A namespace in which nft works, or `None` after printing `SKIPPED`
/// (and failing if `STADTWACHE_REQUIRE_NETNS=1`).
pub fn netns_or_skip() -> Option<Netns> {
    let why = match Netns::new() {
        Ok(ns) => match ns.try_nft(&["list", "ruleset"]) {
            Ok(_) => return Some(ns),
            Err(e) => format!("nft does not run in a network namespace: {e}"),
        },
        Err(e) => e,
    };
    println!("SKIPPED: {why}");
    if std::env::var("STADTWACHE_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("STADTWACHE_REQUIRE_NETNS=1 but {why}");
    }
    None
}
