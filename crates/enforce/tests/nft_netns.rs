//! NftEnforcer against real nftables, each test in its own network namespace.

mod common;

use std::time::Duration;

use common::netns_or_skip;
use stadtwache_enforce::{Ban, EnforceError, Enforcer, NftConfig, NftEnforcer, Refresh, Target};

fn t(s: &str) -> Target {
    s.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Sorted targets of `list()`.
fn listed(e: &mut NftEnforcer) -> Vec<String> {
    let mut v: Vec<String> = e.list().unwrap().into_iter().map(|(t, _)| t.to_string()).collect();
    v.sort();
    v
}

#[test]
fn ensure_is_idempotent_and_follows_the_hook_config() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    e.ensure().unwrap();
    let first = ns.nft(&["list", "table", "inet", "stadtwache"]);
    for set in ["set v4 ", "set v6 ", "set v4net ", "set v6net "] {
        assert!(first.contains(set), "{set} missing:\n{first}");
    }
    assert!(first.contains("type filter hook input priority filter - 10; policy accept;"), "{first}");
    assert!(first.contains("type filter hook forward priority filter - 10; policy accept;"), "{first}");
    assert_eq!(first.matches("drop").count(), 8, "{first}");
    assert!(first.contains("ip6 saddr @v6net counter packets 0 bytes 0 drop"), "{first}");

    // Elements survive ensure; the rules are not duplicated.
    e.apply(&[Ban::permanent(t("192.0.2.7"))], &[]).unwrap();
    e.ensure().unwrap();
    e.ensure().unwrap();
    let again = ns.nft(&["list", "table", "inet", "stadtwache"]);
    assert_eq!(again.matches("drop").count(), 8, "{again}");
    assert_eq!(listed(&mut e), ["192.0.2.7"]);

    // Another priority and no forward hook: the chains follow.
    let mut e2 = NftEnforcer::new(NftConfig { forward: false, priority: -20, counter: false, ..ns.config() }).unwrap();
    e2.ensure().unwrap();
    let changed = ns.nft(&["list", "table", "inet", "stadtwache"]);
    assert!(!changed.contains("hook forward"), "{changed}");
    assert!(changed.contains("type filter hook input priority -20; policy accept;"), "{changed}");
    assert_eq!(changed.matches("drop").count(), 4, "{changed}");
    assert!(!changed.contains("counter"), "{changed}");
    assert_eq!(listed(&mut e2), ["192.0.2.7"]);
}

#[test]
fn apply_adds_and_removes_v4_v6_prefixes_with_timeouts() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    e.ensure().unwrap();
    let bans = [
        Ban::new(t("192.0.2.1"), secs(600)),
        Ban::new(t("2001:db8::1"), secs(3600)),
        Ban::new(t("198.51.100.77/24"), secs(120)), // host bits are cleared
        Ban::new(t("2001:db8:beef::/48"), secs(60)),
        Ban::permanent(t("203.0.113.9")),
        Ban::new(t("203.0.113.10"), Duration::ZERO), // over: skipped
    ];
    let applied = std::time::Instant::now();
    let st = e.apply(&bans, &[]).unwrap();
    assert_eq!((st.added, st.removed, st.skipped_expired, st.transactions), (5, 0, 1, 1));
    assert!(st.rejected.is_empty(), "{:?}", st.rejected);

    let v4 = ns.nft(&["list", "set", "inet", "stadtwache", "v4"]);
    assert!(v4.contains("192.0.2.1 timeout 10m expires"), "{v4}");
    assert!(v4.contains("203.0.113.9"), "{v4}");
    assert!(!v4.contains("203.0.113.9 timeout"), "permanent element has a timeout: {v4}");
    assert!(!v4.contains("203.0.113.10"), "{v4}");
    let v4net = ns.nft(&["list", "set", "inet", "stadtwache", "v4net"]);
    assert!(v4net.contains("198.51.100.0/24 timeout 2m expires"), "{v4net}");
    let v6 = ns.nft(&["list", "set", "inet", "stadtwache", "v6"]);
    assert!(v6.contains("2001:db8::1 timeout 1h expires"), "{v6}");
    let v6net = ns.nft(&["list", "set", "inet", "stadtwache", "v6net"]);
    assert!(v6net.contains("2001:db8:beef::/48 timeout 1m expires"), "{v6net}");

    let list = e.list().unwrap();
    // What the kernel counted down since the apply: the time actually spent
    // (a fixed 5 s would fail if the nft calls above were that slow), plus 2 s
    // for rounding (the listing's whole seconds, the kernel's jiffies).
    let spent = secs(applied.elapsed().as_secs() + 2);
    assert_eq!(list.len(), 5);
    for (target, remaining) in &list {
        let want = bans.iter().find(|b| b.target == *target).unwrap().expires;
        match (want, remaining) {
            (None, None) => {}
            (Some(w), Some(r)) => assert!(*r <= w && *r + spent >= w, "{target}: {r:?} vs {w:?} ({spent:?} spent)"),
            other => panic!("{target}: {other:?}"),
        }
    }

    // Again, plus duplicates in one batch: no error, same content.
    let mut twice = bans.to_vec();
    twice.extend_from_slice(&bans);
    let st = e.apply(&twice, &[]).unwrap();
    assert_eq!(st.added, 5);
    assert_eq!(listed(&mut e).len(), 5);

    // Remove present and absent targets (absent v4, v6, prefix).
    let st = e
        .apply(&[], &[t("192.0.2.1"), t("2001:db8:beef::/48"), t("192.0.2.200"), t("2001:db8::99"), t("10.0.0.0/8")])
        .unwrap();
    assert_eq!((st.removed, st.transactions), (5, 1));
    assert!(st.rejected.is_empty(), "{:?}", st.rejected);
    assert_eq!(listed(&mut e), ["198.51.100.0/24", "2001:db8::1", "203.0.113.9"]);

    // A target both removed and added ends up banned.
    e.apply(&[Ban::new(t("192.0.2.5"), secs(60))], &[t("192.0.2.5")]).unwrap();
    assert!(listed(&mut e).contains(&"192.0.2.5".to_string()));
    let h = e.health();
    assert_eq!((h.failures, h.elements_added), (0, 11));
}

#[test]
fn a_repeated_ban_resets_the_timeout_with_add_delete_add() {
    repeated_ban_resets_the_timeout(Refresh::Replace);
}

#[test]
fn a_repeated_ban_resets_the_timeout_with_a_plain_add_where_the_kernel_does() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    assert_eq!(e.readd_replaces_timeouts(), None);
    e.ensure().unwrap();
    let probed = e.readd_replaces_timeouts().expect("probed at ensure");
    println!("kernel replaces timeouts on re-add: {probed}");
    // The probe left nothing behind.
    let table = ns.nft(&["list", "table", "inet", "stadtwache"]);
    assert!(!table.contains("probe"), "{table}");
    assert_eq!(e.health().failures, 0);
    if probed {
        repeated_ban_resets_the_timeout(Refresh::Add);
    }
}

fn repeated_ban_resets_the_timeout(refresh: Refresh) {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(NftConfig { refresh, ..ns.config() }).unwrap();
    e.ensure().unwrap();
    let a = t("192.0.2.1");
    let remaining = |e: &mut NftEnforcer| e.list().unwrap().into_iter().find(|(x, _)| *x == a).unwrap().1;
    e.apply(&[Ban::new(a, secs(600))], &[]).unwrap();
    e.apply(&[Ban::new(a, secs(60))], &[]).unwrap();
    assert!(remaining(&mut e).unwrap() <= secs(60));
    e.apply(&[Ban::new(a, secs(7200))], &[]).unwrap();
    assert!(remaining(&mut e).unwrap() > secs(7000));
    e.apply(&[Ban::permanent(a)], &[]).unwrap();
    assert_eq!(remaining(&mut e), None);
    e.apply(&[Ban::new(a, secs(30))], &[]).unwrap();
    assert!(remaining(&mut e).unwrap() <= secs(30));

    // The same in an interval set, next to adjacent prefixes (no merging).
    let p = t("198.51.100.0/24");
    let near = [Ban::new(t("198.51.99.0/24"), secs(600)), Ban::new(t("198.51.101.0/24"), secs(600))];
    e.apply(&near, &[]).unwrap();
    let rem_p = |e: &mut NftEnforcer| e.list().unwrap().into_iter().find(|(x, _)| *x == p).unwrap().1;
    e.apply(&[Ban::new(p, secs(600))], &[]).unwrap();
    e.apply(&[Ban::new(p, secs(60))], &[]).unwrap();
    assert!(rem_p(&mut e).unwrap() <= secs(60));
    e.apply(&[Ban::permanent(p)], &[]).unwrap();
    assert_eq!(rem_p(&mut e), None);
    e.apply(&[], &[p]).unwrap();
    assert_eq!(listed(&mut e), ["192.0.2.1", "198.51.101.0/24", "198.51.99.0/24"]);
}

#[test]
fn a_conflicting_prefix_is_rejected_alone() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    e.ensure().unwrap();
    e.apply(&[Ban::new(t("10.0.0.0/8"), secs(600))], &[]).unwrap();
    let batch: Vec<Ban> = ["10.1.0.0/16", "192.0.2.1", "11.0.0.0/8", "2001:db8::/32", "10.2.3.4"]
        .iter()
        .map(|s| Ban::new(t(s), secs(600)))
        .collect();
    let st = e.apply(&batch, &[]).unwrap();
    assert_eq!(st.rejected.len(), 1, "{st:?}");
    assert_eq!(st.rejected[0].0, t("10.1.0.0/16"));
    assert!(st.rejected[0].1.contains("overlaps"), "{:?}", st.rejected[0].1);
    assert_eq!(st.added, 4);
    assert!(st.transactions > 1);
    // An address inside a banned prefix lives in the address set: allowed.
    assert_eq!(listed(&mut e), ["10.0.0.0/8", "10.2.3.4", "11.0.0.0/8", "192.0.2.1", "2001:db8::/32"]);
    // Removing an absent prefix that overlaps a present one is no error.
    let st = e.apply(&[], &[t("10.1.0.0/16")]).unwrap();
    assert!(st.rejected.is_empty(), "{st:?}");
    assert_eq!(listed(&mut e).len(), 5);
    assert!(e.health().elements_rejected == 1);

    // Two conflicting prefixes in one batch ("conflicting intervals specified"): one is kept.
    e.apply(&[], &[t("10.0.0.0/8")]).unwrap();
    let batch: Vec<Ban> =
        ["172.16.0.0/12", "172.17.0.0/16", "192.0.2.99"].iter().map(|s| Ban::new(t(s), secs(600))).collect();
    let st = e.apply(&batch, &[]).unwrap();
    assert_eq!((st.added, st.rejected.len()), (2, 1), "{st:?}");
    let now = listed(&mut e);
    assert!(now.contains(&"192.0.2.99".to_string()));
    assert_eq!(now.iter().filter(|s| s.starts_with("172.1")).count(), 1, "{now:?}");
}

#[test]
fn apply_recreates_a_deleted_table() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    e.ensure().unwrap();
    ns.nft(&["delete", "table", "inet", "stadtwache"]);
    let st = e.apply(&[Ban::new(t("192.0.2.1"), secs(600))], &[]).unwrap();
    assert_eq!(st.added, 1);
    assert_eq!(listed(&mut e), ["192.0.2.1"]);
    assert!(ns.nft(&["list", "table", "inet", "stadtwache"]).contains("hook input"));
}

#[test]
fn reconcile_repairs_and_counts_drift() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    let mut desired: Vec<Ban> = (1..=50).map(|i| Ban::new(t(&format!("192.0.2.{i}")), secs(3600))).collect();
    desired.push(Ban::permanent(t("2001:db8::7")));
    desired.push(Ban::new(t("198.51.100.0/24"), secs(3600)));

    // Start: nothing there yet (no table at all).
    let d = e.reconcile(&desired).unwrap();
    assert_eq!((d.missing, d.extra, d.retimed, d.total), (52, 0, 0, 52));
    assert!(e.reconcile(&desired).unwrap().is_clean());

    // Drift by hand: flushed v4 set, a stray element, a changed timeout (10m,
    // not a few seconds: an element that expires before the reconcile below
    // reads the set -- a slow machine -- is missing, not retimed).
    ns.nft(&["flush", "set", "inet", "stadtwache", "v4"]);
    ns.nft(&["add", "element", "inet", "stadtwache", "v6", "{ 2001:db8::666 }"]);
    ns.nft(&["add", "element", "inet", "stadtwache", "v4net", "{ 203.0.113.1 }"]); // host in the prefix set
    ns.nft(&["delete", "element", "inet", "stadtwache", "v4net", "{ 198.51.100.0/24 }"]);
    ns.nft(&["add", "element", "inet", "stadtwache", "v4net", "{ 198.51.100.0/24 timeout 10m }"]);
    let d = e.reconcile(&desired).unwrap();
    assert_eq!((d.missing, d.extra, d.retimed, d.unparsed, d.total), (50, 2, 1, 0, 52), "{d:?}");
    assert_eq!(d.rejected, vec![]);
    let after = listed(&mut e);
    assert_eq!(after.len(), 52);
    assert!(!after.contains(&"2001:db8::666".to_string()) && !after.contains(&"203.0.113.1".to_string()));
    assert!(e.reconcile(&desired).unwrap().is_clean());

    // A deleted rule is repaired too (structure check), without touching elements.
    ns.nft(&["flush", "chain", "inet", "stadtwache", "input"]);
    assert!(e.reconcile(&desired).unwrap().is_clean());
    assert_eq!(ns.nft(&["list", "chain", "inet", "stadtwache", "input"]).matches("drop").count(), 4);

    let h = e.health();
    assert_eq!((h.reconciles, h.drift_missing, h.drift_extra, h.drift_retimed), (5, 102, 2, 1));

    // Desired state empty: everything is extra.
    let d = e.reconcile(&[]).unwrap();
    assert_eq!((d.extra, d.total), (52, 0));
    assert!(listed(&mut e).is_empty());
}

#[test]
fn remove_all_removes_our_table_only() {
    let Some(ns) = netns_or_skip() else { return };
    ns.nft(&["add", "table", "inet", "other"]);
    ns.nft(&["add", "set", "inet", "other", "v4", "{ type ipv4_addr; }"]);
    ns.nft(&["add", "element", "inet", "other", "v4", "{ 192.0.2.1 }"]);
    ns.nft(&["add", "table", "ip", "stadtwache"]); // same name, other family: not ours
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    e.ensure().unwrap();
    e.apply(&[Ban::new(t("192.0.2.1"), secs(600))], &[]).unwrap();
    e.remove_all().unwrap();
    let rules = ns.nft(&["list", "ruleset"]);
    assert!(!rules.contains("table inet stadtwache"), "{rules}");
    assert!(rules.contains("table inet other") && rules.contains("192.0.2.1"), "{rules}");
    assert!(rules.contains("table ip stadtwache"), "{rules}");
    e.remove_all().unwrap(); // nothing left: still fine
    // list on a missing table is an error that says so.
    match e.list() {
        Err(EnforceError::Nft { stderr, .. }) => assert!(stderr.contains("No such file"), "{stderr}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_ban_of_an_element_added_by_someone_else_is_retimed_by_reconcile() {
    let Some(ns) = netns_or_skip() else { return };
    let mut e = NftEnforcer::new(NftConfig { refresh: Refresh::Replace, ..ns.config() }).unwrap();
    e.ensure().unwrap();
    // (10m, far from the ban's 1h; a few seconds could run out before the
    // reconcile below on a slow machine: then the element is missing, not retimed)
    ns.nft(&["add", "element", "inet", "stadtwache", "v4", "{ 192.0.2.1 timeout 10m }"]);
    let ban = Ban::new(t("192.0.2.1"), secs(3600));
    e.apply(&[ban], &[]).unwrap();
    // A plain `add` (the enforcer did not know the element); on kernels that
    // do not replace timeouts on re-add, the element still has ~10m.
    let d = e.reconcile(&[ban]).unwrap();
    let remaining = e.list().unwrap()[0].1.unwrap();
    assert!(remaining > secs(3500), "{remaining:?}");
    assert_eq!((d.missing, d.extra), (0, 0));
    assert!(d.retimed <= 1);
    // Now it is known: the next ban resets the timeout through add/delete/add.
    e.apply(&[Ban::new(t("192.0.2.1"), secs(20))], &[]).unwrap();
    assert!(e.list().unwrap()[0].1.unwrap() <= secs(20));
}

#[test]
fn ensure_replaces_a_set_of_another_layout() {
    let Some(ns) = netns_or_skip() else { return };
    ns.nft(&["add", "table", "inet", "stadtwache"]);
    ns.nft(&["add", "set", "inet", "stadtwache", "v4", "{ type ipv4_addr; flags interval; }"]);
    ns.nft(&["add", "element", "inet", "stadtwache", "v4", "{ 192.0.2.0/24 }"]);
    let mut e = NftEnforcer::new(ns.config()).unwrap();
    e.ensure().unwrap();
    let v4 = ns.nft(&["list", "set", "inet", "stadtwache", "v4"]);
    assert!(v4.contains("flags timeout") && !v4.contains("interval"), "{v4}");
    let h = e.health();
    assert_eq!(h.failures, 1, "{h:?}");
    // reconcile puts the bans back
    let d = e.reconcile(&[Ban::new(t("192.0.2.0/24"), secs(60))]).unwrap();
    assert_eq!((d.missing, d.total), (1, 1));
}
