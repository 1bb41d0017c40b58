//! [`DryRunEnforcer`]: counts and remembers, touches no firewall.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::nft::merge_bans;
use crate::{ApplyStats, Ban, Drift, EnforceError, Enforcer, Health, Target};

/// An enforcer that keeps the "kernel state" in memory: the daemon's default
/// when nftables is not enabled, and a stand-in for tests. Timeouts run on
/// the monotonic clock, like the kernel's.
#[derive(Debug, Default)]
pub struct DryRunEnforcer {
    /// Target → deadline (`None` = permanent).
    elements: HashMap<Target, Option<Instant>>,
    health: Health,
}

impl DryRunEnforcer {
    /// An empty one.
    pub fn new() -> Self {
        Self::default()
    }

    fn expire(&mut self, now: Instant) {
        self.elements.retain(|_, d| d.is_none_or(|d| d > now));
    }
}

impl Enforcer for DryRunEnforcer {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn ensure(&mut self) -> Result<(), EnforceError> {
        Ok(())
    }

    fn apply(&mut self, add: &[Ban], remove: &[Target]) -> Result<ApplyStats, EnforceError> {
        let now = Instant::now();
        self.expire(now);
        let (bans, skipped) = merge_bans(add);
        let mut stats = ApplyStats { skipped_expired: skipped, transactions: 1, ..ApplyStats::default() };
        let banned: std::collections::HashSet<Target> = bans.iter().map(|b| b.0).collect();
        for t in remove {
            if !banned.contains(t) {
                self.elements.remove(t);
                stats.removed += 1;
            }
        }
        for (t, secs) in bans {
            self.elements.insert(t, secs.map(|s| now + Duration::from_secs(s)));
            stats.added += 1;
        }
        self.health.transactions += 1;
        self.health.elements_added += stats.added as u64;
        self.health.elements_removed += stats.removed as u64;
        Ok(stats)
    }

    fn list(&mut self) -> Result<Vec<(Target, Option<Duration>)>, EnforceError> {
        let now = Instant::now();
        self.expire(now);
        let mut v: Vec<_> =
            self.elements.iter().map(|(t, d)| (*t, d.map(|d| d.saturating_duration_since(now)))).collect();
        v.sort();
        Ok(v)
    }

    fn reconcile(&mut self, desired: &[Ban]) -> Result<Drift, EnforceError> {
        let now = Instant::now();
        self.expire(now);
        self.health.reconciles += 1;
        let (bans, _) = merge_bans(desired);
        let want: HashMap<Target, Option<u64>> = bans.iter().copied().collect();
        let mut drift =
            Drift { extra: self.elements.keys().filter(|t| !want.contains_key(t)).count(), ..Drift::default() };
        self.elements.retain(|t, _| want.contains_key(t));
        for (t, secs) in bans {
            let deadline = secs.map(|s| now + Duration::from_secs(s));
            match self.elements.get(&t) {
                None => drift.missing += 1,
                Some(&have) => {
                    let differs = match (have, deadline) {
                        (None, None) => false,
                        (Some(a), Some(b)) => a.max(b) - a.min(b) > Duration::from_secs(60),
                        _ => true,
                    };
                    if !differs {
                        continue;
                    }
                    drift.retimed += 1;
                }
            }
            self.elements.insert(t, deadline);
        }
        drift.total = self.elements.len();
        self.health.transactions += 1;
        self.health.drift_missing += drift.missing as u64;
        self.health.drift_extra += drift.extra as u64;
        self.health.drift_retimed += drift.retimed as u64;
        Ok(drift)
    }

    fn remove_all(&mut self) -> Result<(), EnforceError> {
        self.elements.clear();
        Ok(())
    }

    fn health(&self) -> Health {
        self.health.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_reconciles() {
        let mut e = DryRunEnforcer::new();
        let a: Target = "1.2.3.4".parse().unwrap();
        let b: Target = "2001:db8::/48".parse().unwrap();
        let st = e.apply(&[Ban::new(a, Duration::from_secs(600)), Ban::permanent(b)], &[]).unwrap();
        assert_eq!(st.added, 2);
        let l = e.list().unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.iter().any(|(t, r)| *t == b && r.is_none()));
        e.apply(&[], &[a]).unwrap();
        let d = e.reconcile(&[Ban::new(a, Duration::from_secs(600))]).unwrap();
        assert_eq!((d.missing, d.extra, d.retimed, d.total), (1, 1, 0, 1));
        assert!(e.reconcile(&[Ban::new(a, Duration::from_secs(600))]).unwrap().is_clean());
        assert_eq!(e.health().drift_missing, 1);
    }
}
