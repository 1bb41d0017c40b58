use super::*;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "sw-follow-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn pattern(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn append(p: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

fn cfg() -> FollowConfig {
    FollowConfig { use_inotify: false, rotate_wait: Duration::ZERO, ..FollowConfig::default() }
}

fn follower(d: &TempDir, name: &str, cps: Vec<Checkpoint>) -> FileFollower {
    FileFollower::new(vec![d.pattern(name)], cfg(), cps).unwrap()
}

fn texts(v: Vec<FollowedLine>) -> Vec<String> {
    v.into_iter().map(|l| l.text).collect()
}

#[test]
fn appends_are_followed_and_a_partial_line_waits_for_its_newline() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "one\ntw");
    let mut f = follower(&d, "a.log", vec![]);
    let v = f.poll_once();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].text, "one");
    assert_eq!(v[0].line_offset_end, 4);
    assert_eq!(f.checkpoint()[0].offset, 4);
    assert_eq!(f.stats().files[0].lag, 2);
    assert!(f.poll_once().is_empty());
    append(&p, "o\r\nthree\n");
    assert_eq!(texts(f.poll_once()), vec!["two", "three"]);
    assert_eq!(f.checkpoint()[0].offset, 15);
    let st = f.stats();
    assert_eq!((st.lines, st.bytes, st.files[0].lag), (3, 15, 0));
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_before_the_new_one() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "1\n");
    let mut f = follower(&d, "a.log", vec![]);
    assert_eq!(texts(f.poll_once()), vec!["1"]);
    append(&p, "2\n3");
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "new1\n");
    assert_eq!(texts(f.poll_once()), vec!["2", "3", "new1"]);
    let st = f.stats();
    assert_eq!((st.rotations, st.partial_lines, st.files_closed), (1, 1, 1));
    assert_eq!(st.files.len(), 1);
    // The closed file stays in the checkpoints at its end while it is at a
    // rotated name, so a restart does not read it again.
    let cp = f.checkpoint();
    assert_eq!(cp.len(), 2);
    assert_eq!(cp[0].offset, 5);
    let mut f = follower(&d, "a.log", cp);
    assert!(f.poll_once().is_empty());
}

#[test]
fn a_rotated_file_stays_open_for_late_writers_during_rotate_wait() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "1\n");
    let config = FollowConfig { rotate_wait: Duration::from_secs(5), ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    let t0 = Instant::now();
    f.poll_once_at(t0);
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "new1\n");
    assert_eq!(texts(f.poll_once_at(t0)), vec!["new1"]);
    append(&d.path("a.log.1"), "late\n");
    assert_eq!(texts(f.poll_once_at(t0 + Duration::from_secs(1))), vec!["late"]);
    assert_eq!(f.stats().files.len(), 2);
    f.poll_once_at(t0 + Duration::from_secs(6));
    assert_eq!(f.stats().files.len(), 1);
}

#[test]
fn copytruncate_reads_the_unread_tail_from_the_copy_then_the_new_content() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "first line of the file, long enough to fingerprint\n");
    let mut f = follower(&d, "a.log", vec![]);
    assert_eq!(f.poll_once().len(), 1);
    append(&p, "unread\n");
    std::fs::copy(&p, d.path("a.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    append(&p, "after\n");
    assert_eq!(texts(f.poll_once()), vec!["unread", "after"]);
    let st = f.stats();
    assert_eq!((st.truncations, st.truncations_recovered), (1, 1));
    assert_eq!(st.files.len(), 1);
    assert_eq!(st.files[0].offset, 6);
}

#[test]
fn copytruncate_without_a_copy_restarts_at_zero_and_says_so() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "aaaa\nbbbb\n");
    let mut f = follower(&d, "a.log", vec![]);
    f.poll_once();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    append(&p, "c\n");
    assert_eq!(texts(f.poll_once()), vec!["c"]);
    let st = f.stats();
    assert_eq!((st.truncations, st.truncations_unrecovered), (1, 1));
    assert_eq!(st.issues.len(), 1);
}

#[test]
fn truncated_and_regrown_past_the_offset_is_caught_by_the_fingerprint() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "old 1\n");
    let mut f = follower(&d, "a.log", vec![]);
    f.poll_once();
    std::fs::write(&p, "NEW 1\nNEW 2\n").unwrap();
    assert_eq!(texts(f.poll_once()), vec!["NEW 1", "NEW 2"]);
    assert_eq!(f.stats().truncations, 1);
}

#[test]
fn files_appearing_later_and_deleted_files() {
    let d = TempDir::new();
    let mut f = FileFollower::new(vec![d.pattern("*.log")], cfg(), vec![]).unwrap();
    assert!(f.poll_once().is_empty());
    append(&d.path("b.log"), "b1\n");
    assert_eq!(texts(f.poll_once()), vec!["b1"]);
    append(&d.path("b.log"), "b2\n");
    std::fs::remove_file(d.path("b.log")).unwrap();
    assert_eq!(texts(f.poll_once()), vec!["b2"]);
    let st = f.stats();
    assert_eq!((st.deletions, st.files_closed), (1, 1));
    assert!(f.checkpoint().is_empty());
    append(&d.path("b.log"), "again\n");
    assert_eq!(texts(f.poll_once()), vec!["again"]);
}

#[test]
fn resume_at_the_saved_offset_and_find_a_rotated_file_by_identity() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "1\n2\n");
    let mut f = follower(&d, "a.log", vec![]);
    assert_eq!(f.poll_once().len(), 2);
    let cp = f.checkpoint();
    drop(f);
    append(&p, "3\n");
    let mut f = follower(&d, "a.log", cp);
    assert_eq!(texts(f.poll_once()), vec!["3"]);
    let cp = f.checkpoint();
    drop(f);
    // Rotated while we were down: finish a.log.1, then the new a.log.
    append(&p, "4\n");
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "n1\n");
    let mut f = follower(&d, "a.log", cp);
    assert_eq!(texts(f.poll_once()), vec!["4", "n1"]);
    assert_eq!(f.stats().resumed, 1);
}

#[test]
fn a_checkpoint_whose_file_is_gone_is_a_counted_miss() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "1\n");
    let mut f = follower(&d, "a.log", vec![]);
    f.poll_once();
    let cp = f.checkpoint();
    drop(f);
    std::fs::rename(&p, d.path("elsewhere")).unwrap();
    append(&p, "n\n");
    let mut f = follower(&d, "a.log", cp);
    assert_eq!(texts(f.poll_once()), vec!["n"]);
    let st = f.stats();
    assert_eq!(st.resume_misses, 1);
    assert!(st.issues[0].message.contains("not found"));
}

#[test]
fn inode_reuse_is_detected_by_the_fingerprint() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "old content 1\nold content 2\n");
    let mut f = follower(&d, "a.log", vec![]);
    f.poll_once();
    let mut cp = f.checkpoint();
    drop(f);
    // Simulate a new file that got the same inode: same identity, other bytes.
    std::fs::write(&p, "brand new file with more bytes than before\n").unwrap();
    cp[0].file = FileId::of(&std::fs::metadata(&p).unwrap());
    let mut f = follower(&d, "a.log", cp);
    assert_eq!(texts(f.poll_once()), vec!["brand new file with more bytes than before"]);
}

#[test]
fn checkpoint_before_the_first_poll_is_the_saved_one() {
    let cp = vec![Checkpoint {
        path: "/nonexistent/x".into(),
        file: FileId { dev: 1, ino: 2 },
        fingerprint: b"abc".to_vec(),
        offset: 3,
        after: None,
        modified_ns: 0,
    }];
    let f = FileFollower::new(vec!["/nonexistent/x".into()], cfg(), cp.clone()).unwrap();
    assert_eq!(f.checkpoint(), cp);
}

#[test]
fn caps_counters_and_the_read_budget() {
    let d = TempDir::new();
    let p = d.path("a.log");
    let mut data = b"ok\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 5000));
    data.extend(b"\nbad \xff\n");
    for i in 0..100 {
        data.extend(format!("line {i}\n").as_bytes());
    }
    std::fs::write(&p, &data).unwrap();
    let config = FollowConfig { max_line: 1000, read_budget: 512, ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    let mut all = Vec::new();
    let mut polls = 0;
    loop {
        all.extend(texts(f.poll_once()));
        polls += 1;
        if !f.has_backlog() {
            break;
        }
    }
    assert!(polls > 10, "{polls}");
    assert_eq!(all.len(), 102);
    assert_eq!(all[1], "bad \u{fffd}");
    let st = f.stats();
    assert_eq!((st.oversize, st.invalid_utf8, st.lines), (1, 1, 103));
    assert_eq!(st.bytes, data.len() as u64);
}

#[test]
fn partial_line_timeout_hands_out_an_idle_partial_line() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "a\nhalf");
    let config = FollowConfig { partial_line_timeout: Some(Duration::from_secs(2)), ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    let t0 = Instant::now();
    assert_eq!(texts(f.poll_once_at(t0)), vec!["a"]);
    assert!(f.poll_once_at(t0 + Duration::from_secs(1)).is_empty());
    let v = f.poll_once_at(t0 + Duration::from_secs(3));
    assert_eq!((v[0].text.as_str(), v[0].partial), ("half", true));
    assert_eq!(f.checkpoint()[0].offset, 6);
}

#[test]
fn compressed_matches_are_skipped_and_counted_once() {
    let d = TempDir::new();
    std::fs::write(d.path("a.log.2.gz"), [0x1f, 0x8b, 8, 0, 1, 2]).unwrap();
    append(&d.path("a.log"), "x\n");
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], cfg(), vec![]).unwrap();
    assert_eq!(texts(f.poll_once()), vec!["x"]);
    f.poll_once();
    assert_eq!(f.stats().skipped_compressed, 1);
}

#[test]
fn a_glob_covering_rotated_names_reads_each_line_once() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "1\n");
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], cfg(), vec![]).unwrap();
    assert_eq!(texts(f.poll_once()), vec!["1"]);
    append(&p, "2\n");
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "n1\n");
    assert_eq!(texts(f.poll_once()), vec!["2", "n1"]);
    assert_eq!(f.checkpoint().len(), 2);
    // Restart: both resumed, nothing again.
    let cp = f.checkpoint();
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], cfg(), cp).unwrap();
    assert!(f.poll_once().is_empty());
}

#[test]
fn a_copy_seen_before_its_truncation_is_deferred_then_used() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "a line long enough for a full fingerprint comparison\n");
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], cfg(), vec![]).unwrap();
    assert_eq!(f.poll_once().len(), 1);
    append(&p, "tail\n");
    std::fs::copy(&p, d.path("a.log.1")).unwrap();
    // Poll between the copy and the truncate: the copy is not read as new.
    assert_eq!(texts(f.poll_once()), vec!["tail"]);
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    append(&p, "after\n");
    assert_eq!(texts(f.poll_once()), vec!["after"]);
    let st = f.stats();
    assert_eq!((st.copies_deferred, st.truncations, st.truncations_recovered), (1, 1, 1));
}

#[test]
fn invalid_patterns_are_errors() {
    assert!(FileFollower::new(vec!["/var/log/[".into()], cfg(), vec![]).is_err());
}

/// Found by the model test: with a small read budget, an empty generation
/// rotated between two polls did not hold back the next one, so lines of the
/// newest file came before the rest of the oldest.
#[test]
fn regression_empty_intermediate_generation_does_not_unblock_the_next() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let config = FollowConfig { read_budget: 29, rotated_suffixes: vec![".[0-9]*".into()], ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    f.poll_once();
    append(&p, "g0 n0 some padding to make the line longer\n");
    append(&p, "g0 n1 some padding to make the line longer\n");
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    std::fs::write(&p, "").unwrap();
    std::fs::rename(d.path("a.log.1"), d.path("a.log.2")).unwrap();
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "g2 n0\n");
    let mut all = Vec::new();
    loop {
        all.extend(texts(f.poll_once()));
        if !f.has_backlog() {
            break;
        }
    }
    let gens: Vec<&str> = all.iter().map(|l| &l[..2]).collect();
    assert_eq!(gens, vec!["g0", "g0", "g2"]);
}

/// Found by the model test: the copy found after a copytruncate did not
/// inherit what the truncated file was waiting for (a rotated file still
/// being drained), so the copy's lines overtook the older file's last line.
#[test]
fn regression_copy_of_a_truncated_file_waits_for_what_the_file_waited_for() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let config =
        FollowConfig { read_budget: 29, fingerprint_len: 16, rotated_suffixes: vec![".[0-9]*".into()], ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    f.poll_once();
    append(&p, "g0 n0 some padding to make the line longer\ng0 n1 half-");
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "g1 n0 some padding to make the line longer\n");
    let mut all = texts(f.poll_once());
    // copytruncate of the new file while the old one is still being read.
    std::fs::rename(d.path("a.log.1"), d.path("a.log.2")).unwrap();
    std::fs::copy(&p, d.path("a.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    loop {
        all.extend(texts(f.poll_once()));
        if !f.has_backlog() {
            break;
        }
    }
    let heads: Vec<&str> = all.iter().map(|l| &l[..5]).collect();
    assert_eq!(heads, vec!["g0 n0", "g0 n1", "g1 n0"]);
}

fn set_mtime(p: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
    std::fs::OpenOptions::new().append(true).open(p).unwrap().set_modified(t).unwrap();
}

/// Found by the model test: a copytruncate copy of content we never saw (the
/// file was empty at our last look), followed by a rename rotation before the
/// next poll, was read after the newer content of the renamed file.
#[test]
fn regression_unseen_copy_older_than_the_rotated_file_goes_first() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], cfg(), vec![]).unwrap();
    f.poll_once();
    append(&p, "g0 n0\n");
    set_mtime(&p, 1);
    std::fs::copy(&p, d.path("a.log.1")).unwrap();
    set_mtime(&d.path("a.log.1"), 2);
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    append(&p, "g1 n0\n");
    set_mtime(&p, 3);
    std::fs::rename(d.path("a.log.1"), d.path("a.log.2")).unwrap();
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "g2 n0\n");
    set_mtime(&p, 4);
    assert_eq!(texts(f.poll_once()), vec!["g0 n0", "g1 n0", "g2 n0"]);
}

/// Found by the model test: a restart lost the order between a rotated file
/// still being read and the new file waiting for it (now `Checkpoint::after`).
#[test]
fn regression_restart_keeps_the_order_between_generations() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let config = FollowConfig { read_budget: 29, ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], config.clone(), vec![]).unwrap();
    f.poll_once();
    append(&p, "g0 n0 some padding to make the line longer\ng0 n1 some padding to make the line longer\n");
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "g1 n0\n");
    let mut all = texts(f.poll_once());
    let cp = f.checkpoint();
    assert!(cp.iter().any(|c| c.after.is_some()), "{cp:?}");
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], config, cp).unwrap();
    loop {
        all.extend(texts(f.poll_once()));
        if !f.has_backlog() {
            break;
        }
    }
    let heads: Vec<&str> = all.iter().map(|l| &l[..5]).collect();
    assert_eq!(heads, vec!["g0 n0", "g0 n1", "g1 n0"]);
}

/// Found by the model test: a copytruncate while we were down, of content we
/// had not read, left the copy at a rotated name that the restart took for
/// history (now `Checkpoint::modified_ns`).
#[test]
fn regression_restart_reads_rotated_files_newer_than_the_checkpoint() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    set_mtime(&p, 1);
    std::fs::write(d.path("a.log.1"), "history\n").unwrap();
    set_mtime(&d.path("a.log.1"), 0);
    let mut f = follower(&d, "a.log", vec![]);
    assert!(f.poll_once().is_empty());
    let cp = f.checkpoint();
    drop(f);
    append(&p, "unseen\n");
    std::fs::rename(d.path("a.log.1"), d.path("a.log.2")).unwrap();
    std::fs::copy(&p, d.path("a.log.1")).unwrap();
    set_mtime(&d.path("a.log.1"), 2);
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    set_mtime(&p, 3);
    let mut f = follower(&d, "a.log", cp);
    assert_eq!(texts(f.poll_once()), vec!["unseen"]);
}

#[test]
fn wait_wakes_up_on_a_write_under_inotify_and_not_at_all_with_a_backlog() {
    let d = TempDir::new();
    let p = d.path("a.log");
    append(&p, "1\n2\n");
    let config = FollowConfig { use_inotify: true, poll_interval: Duration::from_secs(30), read_budget: 2, ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    f.poll_once();
    assert!(f.has_backlog());
    let start = Instant::now();
    f.wait();
    assert!(start.elapsed() < Duration::from_secs(5));
    f.poll_once();
    f.poll_once();
    assert!(!f.has_backlog());
    if f.stats().watch != Some(WatchMode::Inotify) {
        return; // no inotify here: wait() sleeps the poll interval.
    }
    let p2 = p.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        append(&p2, "3\n");
    });
    let start = Instant::now();
    f.wait();
    assert!(start.elapsed() < Duration::from_secs(20));
    writer.join().unwrap();
    assert_eq!(texts(f.poll_once()), vec!["3"]);
}

/// Found by the model test: a writer that appended to the renamed file after
/// a newer generation was written made the older file look newer by its
/// modification time; generations are now ordered by their rotated names.
#[test]
fn regression_late_write_to_a_rotated_file_does_not_reorder_generations() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let config = FollowConfig { rotated_suffixes: vec![".[0-9]*".into()], ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, vec![]).unwrap();
    f.poll_once();
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    append(&p, "g1 n0 half-");
    set_mtime(&p, 3);
    append(&d.path("a.log.1"), "g0 n0\n");
    set_mtime(&d.path("a.log.1"), 4);
    for (from, to) in [("a.log.1", "a.log.2"), ("a.log", "a.log.1")] {
        std::fs::rename(d.path(from), d.path(to)).unwrap();
    }
    std::fs::write(&p, "").unwrap();
    set_mtime(&p, 5);
    assert_eq!(texts(f.poll_once()), vec!["g0 n0", "g1 n0 half-"]);
}

/// Found by the model test: after a restart, a rotated file we had read to
/// its end and closed, but that a late write had made newer than the
/// checkpoint, was read again. Closed files now stay in the checkpoints.
#[test]
fn regression_restart_does_not_reread_a_closed_rotated_file_written_late() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let mut f = follower(&d, "a.log", vec![]);
    f.poll_once();
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    std::fs::write(&p, "").unwrap();
    set_mtime(&p, 2);
    append(&d.path("a.log.1"), "late\n");
    set_mtime(&d.path("a.log.1"), 3);
    assert_eq!(texts(f.poll_once()), vec!["late"]);
    let cp = f.checkpoint();
    let mut f = follower(&d, "a.log", cp);
    assert!(f.poll_once().is_empty());
}

/// Found by the model test: after ten rotations between two polls,
/// `a.log.10` was taken for a rotated name of `a.log.1` and read out of order.
#[test]
fn regression_a_log_10_is_a_rotated_name_of_a_log_not_of_a_log_1() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let config = FollowConfig { read_budget: 29, ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log*")], config, vec![]).unwrap();
    f.poll_once();
    append(&p, "g0 n0 some padding to make the line longer\n");
    for g in 1..=10 {
        for i in (1..g).rev() {
            std::fs::rename(d.path(&format!("a.log.{i}")), d.path(&format!("a.log.{}", i + 1))).unwrap();
        }
        std::fs::rename(&p, d.path("a.log.1")).unwrap();
        std::fs::write(&p, "").unwrap();
        if g == 5 {
            append(&p, "g5 n0 some padding to make the line longer\n");
        }
    }
    let mut all = Vec::new();
    loop {
        all.extend(texts(f.poll_once()));
        if !f.has_backlog() {
            break;
        }
    }
    let heads: Vec<&str> = all.iter().map(|l| &l[..5]).collect();
    assert_eq!(heads, vec!["g0 n0", "g5 n0"]);
}

/// Found by the model test: a restart lost the order through generations
/// that were empty at the checkpoint (not resumed, found again as new), so
/// the newest file was read before the rest of the oldest.
#[test]
fn regression_restart_keeps_the_order_through_empty_generations() {
    let d = TempDir::new();
    let p = d.path("a.log");
    std::fs::write(&p, "").unwrap();
    let config = FollowConfig { read_budget: 29, ..cfg() };
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config.clone(), vec![]).unwrap();
    f.poll_once();
    append(&p, "g0 n0 some padding to make the line longer\ng0 n1 some padding to make the line longer\n");
    set_mtime(&p, 1);
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    std::fs::write(&p, "").unwrap();
    set_mtime(&p, 2);
    std::fs::rename(d.path("a.log.1"), d.path("a.log.2")).unwrap();
    std::fs::rename(&p, d.path("a.log.1")).unwrap();
    std::fs::write(&p, "").unwrap();
    set_mtime(&p, 3);
    // One poll: part of g0 read; g1 (empty) and g2 (empty) wait behind it.
    let mut all = texts(f.poll_once());
    let cp = f.checkpoint();
    drop(f);
    append(&p, "g2 n0\n");
    set_mtime(&p, 4);
    let mut f = FileFollower::new(vec![d.pattern("a.log")], config, cp).unwrap();
    loop {
        all.extend(texts(f.poll_once()));
        if !f.has_backlog() {
            break;
        }
    }
    let heads: Vec<&str> = all.iter().map(|l| &l[..5]).collect();
    assert_eq!(heads, vec!["g0 n0", "g0 n1", "g2 n0"]);
}
