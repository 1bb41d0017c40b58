//! Discrete-event scheduler shared by all generators.
//!
//! Actors (sessions, attack campaigns, spawners) wake up at a time, emit
//! lines stamped at or after that time, and name their next wake-up time.
//! Lines wait in a min-heap and are written only once no actor can still
//! produce an earlier line, so output timestamps are non-decreasing by
//! construction. Ties are broken by insertion order, which keeps the
//! output a pure function of the seed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, Write};

use crate::time::SyslogClock;

/// Where an actor step puts its output.
pub struct Sink<A> {
    lines: Vec<(i64, String)>,
    spawned: Vec<(i64, A)>,
    /// Total lines pushed so far (including lines not yet written).
    pub generated: u64,
}

impl<A> Sink<A> {
    fn new() -> Self {
        Sink { lines: Vec::new(), spawned: Vec::new(), generated: 0 }
    }

    /// Queues a line for time `t` (clamped to the current step's time).
    #[inline]
    pub fn line(&mut self, t: i64, body: String) {
        self.generated += 1;
        self.lines.push((t, body));
    }

    /// Schedules a new actor to first wake up at `t`.
    #[inline]
    pub fn spawn(&mut self, t: i64, actor: A) {
        self.spawned.push((t, actor));
    }
}

/// A generator: a set of actor kinds and the shared state they draw from.
pub trait World {
    type Actor;
    /// Runs one step of `actor` at `now`. Returns the next wake-up time
    /// (clamped to be `>= now`) or `None` when the actor is finished.
    fn step(&mut self, actor: &mut Self::Actor, now: i64, sink: &mut Sink<Self::Actor>) -> Option<i64>;
}

/// How a queued line body is turned into an output line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// Prefix `Mmm dd HH:MM:SS ` (classic syslog).
    Syslog,
    /// The body is already a complete line.
    None,
}

struct Sched<A> {
    t: i64,
    seq: u64,
    actor: A,
}

impl<A> PartialEq for Sched<A> {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl<A> Eq for Sched<A> {}
impl<A> PartialOrd for Sched<A> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<A> Ord for Sched<A> {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// Summary of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub lines: u64,
    pub first_t: Option<i64>,
    pub last_t: Option<i64>,
}

/// Runs `world` from the `initial` actors until `limit` lines were written
/// or all actors finished.
pub fn run<W: World, O: Write + ?Sized>(
    world: &mut W,
    initial: Vec<(i64, W::Actor)>,
    limit: u64,
    stamp: Stamp,
    out: &mut O,
) -> io::Result<RunStats> {
    let mut actors: BinaryHeap<Sched<W::Actor>> = BinaryHeap::new();
    let mut pending: BinaryHeap<Reverse<(i64, u64, String)>> = BinaryHeap::new();
    let mut seq = 0u64;
    for (t, actor) in initial {
        actors.push(Sched { t, seq, actor });
        seq += 1;
    }
    let mut sink = Sink::new();
    let mut clock = SyslogClock::default();
    let mut stats = RunStats::default();
    if limit == 0 {
        return Ok(stats);
    }
    loop {
        let horizon = actors.peek().map_or(i64::MAX, |s| s.t);
        while let Some(Reverse((t, _, _))) = pending.peek() {
            if *t > horizon {
                break;
            }
            let Reverse((t, _, body)) = pending.pop().expect("peeked");
            if stamp == Stamp::Syslog {
                out.write_all(clock.get(t))?;
                out.write_all(b" ")?;
            }
            out.write_all(body.as_bytes())?;
            out.write_all(b"\n")?;
            stats.lines += 1;
            stats.first_t.get_or_insert(t);
            stats.last_t = Some(t);
            if stats.lines >= limit {
                return Ok(stats);
            }
        }
        let Some(mut s) = actors.pop() else {
            // No actor left and every pending line was written.
            return Ok(stats);
        };
        let now = s.t;
        if let Some(next) = world.step(&mut s.actor, now, &mut sink) {
            s.t = next.max(now);
            s.seq = seq;
            seq += 1;
            actors.push(s);
        }
        for (t, body) in sink.lines.drain(..) {
            pending.push(Reverse((t.max(now), seq, body)));
            seq += 1;
        }
        for (t, actor) in sink.spawned.drain(..) {
            actors.push(Sched { t: t.max(now), seq, actor });
            seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ticker;
    impl World for Ticker {
        type Actor = (u32, i64);
        fn step(&mut self, a: &mut (u32, i64), now: i64, sink: &mut Sink<(u32, i64)>) -> Option<i64> {
            // Emit a line now and one "late" line, interleaving actors.
            sink.line(now, format!("{} at {now}", a.0));
            sink.line(now + 7, format!("{} late {}", a.0, now + 7));
            Some(now + a.1)
        }
    }

    #[test]
    fn interleaves_in_time_order() {
        let mut out = Vec::new();
        let st = run(&mut Ticker, vec![(0, (1, 3)), (1, (2, 5))], 100, Stamp::None, &mut out).unwrap();
        assert_eq!(st.lines, 100);
        let text = String::from_utf8(out).unwrap();
        let times: Vec<i64> = text.lines().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
        assert_eq!(times.len(), 100);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
}
