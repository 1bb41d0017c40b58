//! Wake-ups for the follower: inotify on the watched directories where the
//! kernel offers it, plain sleeping otherwise.
//!
//! inotify is only a hint that something changed. The follower never trusts
//! events for correctness: every poll re-scans the patterns and `fstat`s every
//! open file, so a missed or coalesced event (queue overflow, network file
//! systems, a directory created after we looked) costs at most one poll
//! interval of latency, never a line.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the follower is woken up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// inotify on the parent directories, and the poll interval as a safety net.
    Inotify,
    /// Polling at the configured interval only (inotify disabled or unavailable;
    /// the reason says which).
    Polling { reason: String },
}

/// Cap on inotify watches held by one follower (each costs kernel memory and
/// counts against `fs.inotify.max_user_watches`).
const MAX_WATCHES: usize = 1024;

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use std::collections::HashMap;
    use std::os::fd::OwnedFd;

    pub struct Watcher {
        fd: Option<OwnedFd>,
        watched: HashMap<PathBuf, i32>,
        pub mode: WatchMode,
        pub watch_errors: u64,
    }

    impl Watcher {
        pub fn new(enabled: bool) -> Watcher {
            if !enabled {
                return Watcher::polling("inotify disabled by configuration".into());
            }
            match inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK) {
                Ok(fd) => Watcher { fd: Some(fd), watched: HashMap::new(), mode: WatchMode::Inotify, watch_errors: 0 },
                Err(e) => Watcher::polling(format!("inotify_init failed: {e}")),
            }
        }

        fn polling(reason: String) -> Watcher {
            Watcher { fd: None, watched: HashMap::new(), mode: WatchMode::Polling { reason }, watch_errors: 0 }
        }

        /// Watch a directory (idempotent). Failures are counted; polling
        /// still covers the directory.
        pub fn watch_dir(&mut self, dir: &Path) {
            let Some(fd) = &self.fd else { return };
            if self.watched.contains_key(dir) || self.watched.len() >= MAX_WATCHES {
                return;
            }
            let flags = WatchFlags::MODIFY
                | WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::ATTRIB
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::ONLYDIR;
            match inotify::add_watch(fd, dir, flags) {
                Ok(wd) => {
                    self.watched.insert(dir.to_path_buf(), wd);
                }
                Err(_) => self.watch_errors += 1,
            }
        }

        /// Forget watches whose directory went away (the kernel dropped them),
        /// so that a re-created directory is watched again.
        pub fn prune(&mut self) {
            self.watched.retain(|dir, _| dir.is_dir());
        }

        /// Block until an event arrives or `timeout` passes; drain the queue.
        /// Returns whether an event arrived.
        pub fn wait(&mut self, timeout: Duration) -> bool {
            let Some(fd) = &self.fd else {
                std::thread::sleep(timeout);
                return false;
            };
            let ts = Timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            let ready = match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(n) => n > 0,
                Err(_) => {
                    std::thread::sleep(timeout);
                    false
                }
            };
            if ready {
                // The events' content does not matter: the next poll rescans.
                let mut buf = [0u8; 4096];
                while let Ok(n) = rustix::io::read(fd, &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
            ready
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub struct Watcher {
        pub mode: WatchMode,
        pub watch_errors: u64,
    }

    impl Watcher {
        pub fn new(_enabled: bool) -> Watcher {
            Watcher { mode: WatchMode::Polling { reason: "inotify is Linux only".into() }, watch_errors: 0 }
        }
        pub fn watch_dir(&mut self, _dir: &Path) {}
        pub fn prune(&mut self) {}
        pub fn wait(&mut self, timeout: Duration) -> bool {
            std::thread::sleep(timeout);
            false
        }
    }
}

pub(crate) use imp::Watcher;

/// The directory to watch for a pattern: its longest leading run of path
/// components without glob metacharacters, minus the file name when the
/// whole pattern is literal.
pub(crate) fn static_dir(pattern: &str) -> PathBuf {
    let path = Path::new(pattern);
    let mut dir = PathBuf::new();
    let comps: Vec<_> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        if i + 1 == comps.len() || s.contains(['*', '?', '[']) {
            break;
        }
        dir.push(c);
    }
    if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_dir_stops_at_the_first_glob_component() {
        assert_eq!(static_dir("/var/log/auth.log"), PathBuf::from("/var/log"));
        assert_eq!(static_dir("/var/log/*/x.log"), PathBuf::from("/var/log"));
        assert_eq!(static_dir("/var/log/nginx/*.log"), PathBuf::from("/var/log/nginx"));
        assert_eq!(static_dir("auth.log"), PathBuf::from("."));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn inotify_wakes_up_on_a_write_in_a_watched_directory() {
        let dir = std::env::temp_dir().join(format!("sw-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Watcher::new(true);
        if w.mode != WatchMode::Inotify {
            return; // no inotify in this sandbox: the polling path is what runs.
        }
        w.watch_dir(&dir);
        assert!(!w.wait(Duration::from_millis(10)));
        std::fs::write(dir.join("a.log"), b"x\n").unwrap();
        assert!(w.wait(Duration::from_secs(5)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
