//! The `acquire` stage for lines piped into the daemon (`tail -F x | stadtwache`,
//! or any `Read`): a thread reads capped lines ([`crate::LineReader`]: a line
//! over `max_line` is skipped and counted, invalid UTF-8 replaced and
//! counted, a read error ends the input and is recorded) and hands them to
//! the caller's bounded `SyncSender`, waiting when it is full (a pipe can
//! wait; nothing is dropped).
//!
//! A read blocked on an input that never ends cannot be interrupted:
//! [`StreamHandle::shutdown`] stops handing out lines and returns at once;
//! the thread ends at the input's next line or its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Input, ReadStats};

/// One line read from the stream, without its terminator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLine {
    /// 1-based line number (oversize lines count too).
    pub number: u64,
    pub text: String,
    /// Invalid UTF-8 was replaced.
    pub replaced: bool,
}

/// Counters of a stream source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Lines read, bytes, oversize, invalid UTF-8 and read errors, as the
    /// offline reader counts them.
    pub read: ReadStats,
    pub delivered: u64,
    /// Waiting for queue room when shut down.
    pub dropped_shutdown: u64,
    /// The input has ended (end of file, or a read error in `read`).
    pub ended: bool,
}

struct Shared {
    stop: AtomicBool,
    stats: Mutex<StreamStats>,
}

/// Start reading lines; see the module documentation.
pub struct StreamSource;

impl StreamSource {
    /// Read standard input.
    pub fn spawn_stdin(max_line: usize, sender: SyncSender<StreamLine>) -> std::io::Result<StreamHandle> {
        Self::spawn(Input::from_reader("<stdin>", std::io::stdin()), max_line, sender)
    }

    /// Read any input (a pipe, a socket, a test's bytes).
    pub fn spawn(input: Input, max_line: usize, sender: SyncSender<StreamLine>) -> std::io::Result<StreamHandle> {
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), stats: Mutex::new(StreamStats::default()) });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("stream-{}", input.name))
            .spawn(move || run(&sh, input, max_line, &sender))?;
        Ok(StreamHandle { shared, thread: Some(thread) })
    }
}

fn run(sh: &Shared, input: Input, max_line: usize, sender: &SyncSender<StreamLine>) {
    let mut lines = input.lines(max_line);
    'read: while let Some(line) = lines.next() {
        let mut item = StreamLine { number: line.number, text: line.text.into_owned(), replaced: line.replaced };
        let mut wait = Duration::from_micros(100);
        loop {
            match sender.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    if sh.stop.load(Ordering::Relaxed) {
                        sh.stats.lock().unwrap_or_else(|e| e.into_inner()).dropped_shutdown += 1;
                        break 'read;
                    }
                    item = back;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(20));
                }
                Err(TrySendError::Disconnected(_)) => break 'read,
            }
        }
        let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.delivered += 1;
        st.read = lines.stats().clone();
        drop(st);
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
    st.read = lines.into_stats();
    st.ended = true;
}

/// The running source.
pub struct StreamHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StreamHandle {
    pub fn stats(&self) -> StreamStats {
        self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stop handing out lines; waits for the thread only if it is not
    /// blocked reading (see the module documentation).
    pub fn shutdown(mut self) -> StreamStats {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn lines_capped_counted_and_backpressured_through_a_real_pipe() {
        // A real pipe: a child writes, we read its stdout.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("for i in $(seq 1 300); do echo \"line $i\"; done; head -c 5000 /dev/zero | tr '\\0' x; echo; printf 'caf\\351\\nlast'")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = sync_channel(4);
        let h = StreamSource::spawn(Input::from_reader("sh", out), 1000, tx).unwrap();
        let got: Vec<StreamLine> = rx.iter().collect(); // ends when the thread drops the sender
        child.wait().unwrap();
        assert_eq!(got.len(), 302);
        assert_eq!(got[299].text, "line 300");
        assert_eq!((got[300].text.as_str(), got[300].replaced, got[300].number), ("caf\u{fffd}", true, 302));
        assert_eq!(got[301].text, "last");
        let st = h.shutdown();
        assert!(st.ended);
        assert_eq!((st.delivered, st.read.lines, st.read.oversize, st.read.invalid_utf8), (302, 303, 1, 1));
    }
}
