//! Model-based test of `follow::FileFollower`: random sequences of appends
//! (sometimes ending in a partial line), rename rotations, copytruncates
//! (copy then truncate, nothing written in between), restarts from the last
//! committed checkpoint, and polls (committed or not, as a daemon that
//! crashes before its transaction), run in a temp dir against an in-memory
//! model of every file generation.
//!
//! Asserted at the end: every line of every generation was handed out and
//! committed exactly once, in order within its generation, and generations
//! in the order they were created (one logical log).

use proptest::prelude::*;
use stadtwache_acquire::follow::{Checkpoint, FileFollower, FollowConfig, FollowedLine};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

const MAX_LINE: usize = 200;

#[derive(Clone, Debug)]
enum Op {
    /// Append `n` lines to the live file, then maybe the start of a line;
    /// `long`: one of the lines is over the cap (skipped by the follower).
    Append { n: usize, partial: bool, long: bool },
    /// The writer has not reopened yet: append to the file just renamed away
    /// (only right after a rename rotation, before any poll or restart).
    LateAppend { n: usize },
    /// logrotate `create`: shift `.N` → `.N+1`, rename the live file to `.1`,
    /// create an empty live file.
    Rotate,
    /// logrotate `copytruncate`: shift, copy the live file to `.1`, truncate it.
    CopyTruncate,
    /// logrotate's `rotate N`: delete the oldest rotated file, if all its
    /// lines were committed (its inode may then be reused by a new file).
    Expire,
    /// One poll; `commit`: store the checkpoint (else the daemon "crashes"
    /// before its transaction at the next restart).
    Poll { commit: bool },
    /// Drop the follower, make a new one from the last committed checkpoint.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, any::<bool>(), prop::bool::weighted(0.1)).prop_map(|(n, partial, long)| Op::Append { n, partial, long }),
        1 => (1..3usize).prop_map(|n| Op::LateAppend { n }),
        1 => Just(Op::Rotate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Expire),
        4 => Just(Op::Poll { commit: true }),
        1 => Just(Op::Poll { commit: false }),
        1 => Just(Op::Restart),
    ]
}

/// Which paths the follower is given.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Only `app.log`; rotated files are found by `rotated_suffixes`.
    LiveOnly,
    /// `app.log*`: rotated files are followed too.
    WideGlob,
}

#[derive(Clone, Debug)]
struct Params {
    layout: Layout,
    read_budget: usize,
    fingerprint_len: usize,
}

fn params() -> impl Strategy<Value = Params> {
    (
        prop_oneof![Just(Layout::LiveOnly), Just(Layout::WideGlob)],
        prop_oneof![Just(29usize), Just(1 << 20)],
        prop_oneof![Just(16usize), Just(256)],
    )
        .prop_map(|(layout, read_budget, fingerprint_len)| Params { layout, read_budget, fingerprint_len })
}

struct Gen {
    content: Vec<u8>,
    lines_written: usize,
    /// Rotated away: its trailing partial line is final.
    closed: bool,
}

struct World {
    dir: PathBuf,
    live: PathBuf,
    /// Generation ids at `.1`, `.2`, …
    rotated: Vec<usize>,
    live_gen: usize,
    gens: Vec<Gen>,
    tick: u64,
    /// The generation just renamed away, while its writer may still write.
    late: Option<usize>,
}

impl World {
    fn new(dir: PathBuf) -> World {
        let live = dir.join("app.log");
        File::create(&live).unwrap();
        let mut w = World {
            dir,
            live,
            rotated: Vec::new(),
            live_gen: 0,
            gens: vec![Gen { content: Vec::new(), lines_written: 0, closed: false }],
            tick: 0,
            late: None,
        };
        w.touch(&w.live.clone());
        w
    }

    /// Strictly increasing modification times (real ones are too coarse in a
    /// test that writes thousands of times a second).
    fn touch(&mut self, p: &Path) {
        self.tick += 1;
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + self.tick);
        OpenOptions::new().append(true).open(p).unwrap().set_modified(t).unwrap();
    }

    fn rotated_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("app.log.{}", i + 1))
    }

    fn append(&mut self, n: usize, partial: bool, long: bool) {
        let g = self.live_gen;
        let path = self.live.clone();
        self.write(g, &path, n, partial, long);
    }

    fn late_append(&mut self, n: usize) {
        if let Some(g) = self.late {
            let path = self.rotated_path(0);
            self.write(g, &path, n, false, false);
        }
    }

    fn write(&mut self, g: usize, path: &Path, n: usize, partial: bool, long: bool) {
        let mut data = String::new();
        for i in 0..n {
            let k = self.gens[g].lines_written;
            self.gens[g].lines_written += 1;
            let pad = if long && i == 0 { "x".repeat(MAX_LINE) } else { "some padding to make the line longer".into() };
            data.push_str(&format!("g{g} n{k} {pad}\n"));
        }
        if partial {
            let k = self.gens[g].lines_written;
            self.gens[g].lines_written += 1;
            data.push_str(&format!("g{g} n{k} half-"));
        }
        if data.is_empty() {
            return;
        }
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(data.as_bytes()).unwrap();
        drop(f);
        self.gens[g].content.extend_from_slice(data.as_bytes());
        self.touch(path);
    }

    fn shift(&mut self) {
        for i in (0..self.rotated.len()).rev() {
            std::fs::rename(self.rotated_path(i), self.rotated_path(i + 1)).unwrap();
        }
    }

    fn new_gen(&mut self) {
        self.gens[self.live_gen].closed = true;
        self.rotated.insert(0, self.live_gen);
        self.gens.push(Gen { content: Vec::new(), lines_written: 0, closed: false });
        self.live_gen = self.gens.len() - 1;
    }

    fn rotate(&mut self) {
        self.shift();
        std::fs::rename(&self.live, self.rotated_path(0)).unwrap();
        File::create(&self.live).unwrap();
        self.touch(&self.live.clone());
        self.new_gen();
        self.late = Some(self.rotated[0]);
    }

    fn copytruncate(&mut self) {
        self.shift();
        let content = std::fs::read(&self.live).unwrap();
        let copy = self.rotated_path(0);
        std::fs::write(&copy, content).unwrap();
        self.touch(&copy);
        OpenOptions::new().write(true).open(&self.live).unwrap().set_len(0).unwrap();
        self.touch(&self.live.clone());
        self.new_gen();
    }

    /// Lines the follower must have handed out by the end.
    fn expected(&self, layout: Layout) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.gens {
            let text = String::from_utf8(g.content.clone()).unwrap();
            let mut parts: Vec<&str> = text.split('\n').collect();
            let last = parts.pop().unwrap_or("");
            // Lines over the cap are skipped (and counted).
            out.extend(parts.iter().filter(|s| s.len() <= MAX_LINE).map(|s| s.to_string()));
            // A rotated file's last partial line is handed out when the file
            // is closed; with the wide glob it is still followed, so it waits.
            if g.closed && !last.is_empty() && last.len() <= MAX_LINE && matches!(layout, Layout::LiveOnly) {
                out.push(last.to_string());
            }
        }
        out
    }
}

fn gen_of(line: &str) -> usize {
    line[1..line.find(' ').unwrap()].parse().unwrap()
}

fn seq_of(line: &str) -> usize {
    let rest = &line[line.find(" n").unwrap() + 2..];
    rest[..rest.find(' ').unwrap_or(rest.len())].parse().unwrap()
}

struct TempDir(PathBuf);
impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "sw-follow-model-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn make(world: &World, p: &Params, cps: Vec<Checkpoint>) -> FileFollower {
    let pattern = match p.layout {
        Layout::LiveOnly => world.live.to_str().unwrap().to_string(),
        Layout::WideGlob => format!("{}*", world.live.to_str().unwrap()),
    };
    let cfg = FollowConfig {
        use_inotify: false,
        rotate_wait: Duration::ZERO,
        rotated_suffixes: vec![".[0-9]*".into()],
        read_budget: p.read_budget,
        fingerprint_len: p.fingerprint_len,
        max_line: MAX_LINE,
        ..FollowConfig::default()
    };
    FileFollower::new(vec![pattern], cfg, cps).unwrap()
}

/// Run one case; returns a description of the first violation.
fn run(p: &Params, ops: &[Op]) -> Result<usize, String> {
    let tmp = TempDir::new();
    let mut world = World::new(tmp.0.clone());
    let mut committed_cp: Vec<Checkpoint>;
    let mut committed: Vec<FollowedLine> = Vec::new();
    let mut uncommitted: Vec<FollowedLine> = Vec::new();
    // The daemon's first start: it polls and commits at once. (Files at
    // rotated names at the first poll are history and not read; what the
    // follower must deliver starts here.)
    let mut f = make(&world, p, Vec::new());
    committed.extend(f.poll_once());
    committed_cp = f.checkpoint();
    let mut log = Vec::new();
    for op in ops {
        log.push(format!("{op:?}"));
        match op {
            Op::Append { n, partial, long } => world.append(*n, *partial, *long),
            Op::LateAppend { n } => world.late_append(*n),
            Op::Rotate => world.rotate(),
            Op::CopyTruncate => {
                world.late = None;
                world.copytruncate()
            }
            Op::Poll { commit } => {
                world.late = None;
                uncommitted.extend(f.poll_once());
                if *commit {
                    committed.append(&mut uncommitted);
                    committed_cp = f.checkpoint();
                }
            }
            Op::Expire => {
                let want = world.expected(p.layout);
                if let Some(&g) = world.rotated.last() {
                    let prefix = format!("g{g} ");
                    // Every line handed out, a trailing partial one included
                    // (which the wide glob only hands out on a timeout).
                    let content = &world.gens[g].content;
                    let partial = !content.is_empty() && !content.ends_with(b"\n");
                    // (Over-cap lines are never handed out: nothing tells the
                    // model whether the follower got past them.)
                    let long = content.split(|&b| b == b'\n').any(|l| l.len() > MAX_LINE);
                    let done = !long
                        && (!partial || matches!(p.layout, Layout::LiveOnly))
                        && want
                            .iter()
                            .filter(|l| l.starts_with(&prefix))
                            .all(|l| committed.iter().any(|c| &c.text == l));
                    if done && world.late != Some(g) {
                        std::fs::remove_file(world.rotated_path(world.rotated.len() - 1)).unwrap();
                        world.rotated.pop();
                    }
                }
            }
            Op::Restart => {
                world.late = None;
                uncommitted.clear();
                drop(f);
                f = make(&world, p, committed_cp.clone());
            }
        }
    }
    // Drain: poll until nothing is left (the next commit covers the lines
    // of earlier uncommitted polls too).
    committed.append(&mut uncommitted);
    for _ in 0..10_000 {
        committed.extend(f.poll_once());
        committed_cp = f.checkpoint();
        if !f.has_backlog() {
            break;
        }
    }
    committed.extend(f.poll_once());
    let _ = committed_cp;

    let got: Vec<String> = committed.iter().map(|l| l.text.clone()).collect();
    let want = world.expected(p.layout);
    let ctx = || format!("\nops: {log:?}\nstats: {:?}", f.stats());
    let mut sg = got.clone();
    sg.sort();
    for w in sg.windows(2) {
        if w[0] == w[1] {
            return Err(format!("line handed out twice: {:?}\ngot {got:?}{}", w[0], ctx()));
        }
    }
    let mut sw = want.clone();
    sw.sort();
    if sg != sw {
        let missing: Vec<_> = sw.iter().filter(|x| !sg.contains(x)).collect();
        let extra: Vec<_> = sg.iter().filter(|x| !sw.contains(x)).collect();
        return Err(format!("missing {missing:?}\nextra {extra:?}\ngot {got:?}{}", ctx()));
    }
    // In order within each generation, generations in creation order.
    let mut last: Option<(usize, usize)> = None;
    for l in &got {
        let key = (gen_of(l), seq_of(l));
        if let Some(prev) = last
            && key <= prev
        {
            return Err(format!("out of order: {key:?} after {prev:?}\ngot {got:?}{}", ctx()));
        }
        last = Some(key);
    }
    Ok(got.len())
}

/// Cases: 400 by default, `PROPTEST_CASES` to run more.
#[test]
fn every_line_exactly_once_in_order() {
    use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let (n_cases, n_ops, n_lines) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let strategy = (params(), prop::collection::vec(op(), 1..60));
    let result = runner.run(&strategy, |(p, ops)| {
        n_cases.fetch_add(1, Ordering::Relaxed);
        n_ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
        let lines = run(&p, &ops).map_err(|e| TestCaseError::fail(format!("{p:?}: {e}")))?;
        n_lines.fetch_add(lines as u64, Ordering::Relaxed);
        Ok(())
    });
    eprintln!(
        "follow model: {} cases run, {} operations, {} lines checked exactly once",
        n_cases.into_inner(),
        n_ops.into_inner(),
        n_lines.into_inner()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
