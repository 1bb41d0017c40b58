//! DecisionIndex against a real SqliteStore: incremental refresh, gaps, prefixes.

use std::net::IpAddr;

use stadtwache_api::DecisionIndex;
use stadtwache_core::{Duration, Key, Timestamp};
use stadtwache_store::{ChangeCursor, DecisionRef, NewDecision, Origin, SqliteStore, Store};

fn t(s: i64) -> Timestamp {
    Timestamp::from_secs(1_795_774_500 + s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ban(store: &mut SqliteStore, value: &str, prefix: Option<u8>, until: Option<i64>) -> i64 {
    let d = NewDecision::new(Key::Ip(ip(value)), prefix, Origin::Rule, t(0), until.map(t));
    store.insert_decision(&d).unwrap().0
}

#[test]
fn incremental_refresh_applies_new_and_deleted_and_records_freshness() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let index = DecisionIndex::new();
    assert!(index.is_stale(t(0), Duration::from_secs(10)), "never refreshed");
    assert_eq!(index.last_refresh(), None);
    let a = ban(&mut store, "198.51.100.7", None, Some(100));
    ban(&mut store, "10.0.0.0", Some(8), None);
    let r = index.refresh(&store, t(1)).unwrap();
    assert!(r.rebuilt);
    assert_eq!((r.upserted, index.len()), (2, 2));
    assert_eq!(index.last_refresh(), Some(t(1)));
    assert!(!index.is_stale(t(11), Duration::from_secs(10)));
    assert!(index.is_stale(t(12), Duration::from_secs(10)));
    assert_eq!(index.lookup(ip("198.51.100.7"), t(2)).unwrap().id.0, a);
    assert_eq!(index.lookup(ip("10.200.1.1"), t(2)).unwrap().value(), "10.0.0.0/8");
    assert!(index.lookup(ip("11.0.0.1"), t(2)).is_none());
    // A more specific ban inside the /8 is found first; both by lookup_all.
    let b = ban(&mut store, "10.1.2.3", None, None);
    store.delete_decisions(&DecisionRef::Id(stadtwache_store::DecisionId(a)), t(3)).unwrap();
    let r = index.refresh(&store, t(3)).unwrap();
    assert!(!r.rebuilt);
    assert_eq!((r.upserted, r.removed), (1, 1));
    assert!(index.lookup(ip("198.51.100.7"), t(3)).is_none());
    assert_eq!(index.lookup(ip("10.1.2.3"), t(3)).unwrap().id.0, b);
    let all: Vec<String> = index.lookup_all(ip("10.1.2.3"), t(3)).iter().map(|d| d.value()).collect();
    assert_eq!(all, ["10.1.2.3", "10.0.0.0/8"]);
    // A refresh with nothing new still counts as fresh.
    let r = index.refresh(&store, t(4)).unwrap();
    assert_eq!((r.upserted, r.removed), (0, 0));
    assert_eq!(index.last_refresh(), Some(t(4)));
}

#[test]
fn expired_by_time_is_not_matched_even_before_the_store_expires_it() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    ban(&mut store, "2001:db8::", Some(32), Some(10));
    let index = DecisionIndex::new();
    index.refresh(&store, t(0)).unwrap();
    assert!(index.lookup(ip("2001:db8:ffff::1"), t(10)).is_some());
    assert!(index.lookup(ip("2001:db8:ffff::1"), t(11)).is_none());
    assert!(index.lookup(ip("2001:db9::1"), t(0)).is_none());
    store.expire(t(11)).unwrap();
    index.refresh(&store, t(11)).unwrap();
    assert_eq!(index.len(), 0);
}

#[test]
fn simulated_and_text_decisions_are_not_indexed_and_mapped_v6_is_v4() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut sim = NewDecision::new(Key::Ip(ip("192.0.2.1")), None, Origin::Rule, t(0), None);
    sim.simulated = true;
    store.insert_decision(&sim).unwrap();
    store.insert_decision(&NewDecision::new(Key::Text("root".into()), None, Origin::Rule, t(0), None)).unwrap();
    ban(&mut store, "::ffff:192.0.2.9", None, None);
    let index = DecisionIndex::new();
    index.refresh(&store, t(0)).unwrap();
    assert_eq!(index.len(), 1);
    assert!(index.lookup(ip("192.0.2.1"), t(0)).is_none(), "simulated");
    assert!(index.lookup(ip("192.0.2.9"), t(0)).is_some());
    assert!(index.lookup(ip("::ffff:192.0.2.9"), t(0)).is_some());
}

#[test]
fn a_gap_rebuilds_from_start() {
    // The index followed one database; the daemon then points it at a
    // replaced one whose change log is shorter than the index's cursor.
    let mut old = SqliteStore::open_in_memory().unwrap();
    for i in 0..5 {
        ban(&mut old, &format!("198.51.100.{i}"), None, None);
    }
    let index = DecisionIndex::new();
    index.refresh(&old, t(0)).unwrap();
    assert_eq!(index.len(), 5);
    assert!(index.cursor() > ChangeCursor(1));
    let mut new = SqliteStore::open_in_memory().unwrap();
    ban(&mut new, "203.0.113.1", None, None);
    let r = index.refresh(&new, t(1)).unwrap();
    assert!(r.rebuilt, "gap → rebuild");
    assert_eq!(index.len(), 1);
    assert!(index.lookup(ip("198.51.100.1"), t(1)).is_none());
    assert!(index.lookup(ip("203.0.113.1"), t(1)).is_some());
    assert_eq!(index.cursor(), ChangeCursor(1));
}

#[test]
fn lookup_range_contains_and_inside() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    ban(&mut store, "10.0.0.0", Some(8), None);
    ban(&mut store, "10.1.0.0", Some(16), None);
    ban(&mut store, "10.1.2.3", None, None);
    ban(&mut store, "10.2.0.1", None, None);
    let index = DecisionIndex::new();
    index.refresh(&store, t(0)).unwrap();
    let vals =
        |v: Vec<std::sync::Arc<stadtwache_api::IndexedDecision>>| v.iter().map(|d| d.value()).collect::<Vec<_>>();
    assert_eq!(vals(index.lookup_range(ip("10.1.2.0"), 24, true, t(0))), ["10.1.0.0/16", "10.0.0.0/8"]);
    assert_eq!(vals(index.lookup_range(ip("10.1.0.0"), 16, false, t(0))), ["10.1.0.0/16", "10.1.2.3"]);
    assert_eq!(vals(index.lookup_range(ip("10.0.0.0"), 8, false, t(0))).len(), 4);
    assert_eq!(index.all(t(0)).len(), 4);
}
