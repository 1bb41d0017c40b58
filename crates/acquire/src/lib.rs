//! The `acquire` stage for offline work: read lines from plain files, gzip
//! files (`.gz` or gzip magic) and standard input, with every untrusted read
//! capped.
//!
//! Bad input never stops the stream and is never silent:
//! - a line longer than the cap is skipped (its bytes are discarded without
//!   being buffered) and counted as `oversize`;
//! - invalid UTF-8 is replaced (U+FFFD, as fail2ban's `errors='replace'`) and
//!   the line is still processed, counted as `invalid_utf8`;
//! - a read error in the middle of an input (a truncated `.gz`, an I/O error)
//!   ends that input, keeps every line read before it, and is recorded in
//!   `read_errors` with the input name and line number.
//!
//! Only an input that cannot be opened at all is an error to the caller.

pub mod follow;
pub mod journald;
pub mod stdin;
pub mod syslog;

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Default cap on one line: 64 KiB. No log format we read legitimately
/// writes longer lines; a longer one is skipped and counted.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("I001: cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

/// Why part of an input was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub input: String,
    /// Lines read from this input before the error.
    pub after_line: u64,
    pub message: String,
}

/// Counters of one or more inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub lines: u64,
    pub bytes: u64,
    pub oversize: u64,
    pub invalid_utf8: u64,
    pub read_errors: Vec<ReadError>,
}

impl ReadStats {
    pub fn merge(&mut self, other: &ReadStats) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.oversize += other.oversize;
        self.invalid_utf8 += other.invalid_utf8;
        self.read_errors.extend(other.read_errors.iter().cloned());
    }
}

/// One line, without its terminator (`\n`, and a `\r` before it).
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based line number within its input.
    pub number: u64,
    pub text: Cow<'a, str>,
    /// The raw bytes were not valid UTF-8 and were replaced.
    pub replaced: bool,
}

/// An opened input: a name for messages and a byte stream.
pub struct Input {
    pub name: String,
    reader: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish()
    }
}

impl Input {
    /// Open a path (`-` = standard input). Gzip is recognised by its magic
    /// bytes, whatever the file is called.
    pub fn open(path: &Path) -> Result<Input, AcquireError> {
        if path.as_os_str() == "-" {
            return Ok(Input::from_reader("<stdin>", io::stdin()));
        }
        let open_err = |source| AcquireError::Open { path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(open_err)?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(open_err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory")));
        }
        let mut magic = [0u8; 2];
        let n = read_full(&mut file, &mut magic).map_err(open_err)?;
        let head = io::Cursor::new(magic[..n].to_vec());
        let name = path.display().to_string();
        if n == 2 && magic == [0x1f, 0x8b] {
            let dec = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_CHUNK, head.chain(file)));
            Ok(Input::from_reader(name, dec))
        } else {
            Ok(Input::from_reader(name, head.chain(file)))
        }
    }

    pub fn from_reader(name: impl Into<String>, reader: impl Read + Send + 'static) -> Input {
        Input { name: name.into(), reader: Box::new(reader) }
    }

    pub fn lines(self, max_line: usize) -> LineReader {
        LineReader::new(self, max_line)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Splits an input into capped lines without copying them when they are
/// valid UTF-8.
///
/// The complete lines of each read are checked as UTF-8 in one piece (one
/// `String::from_utf8` of the buffer, which then becomes that `String`
/// without a copy; the partial last line moves to the next buffer). A piece
/// that is not all UTF-8 is split line by line, each line checked and
/// replaced on its own, as are the rest of an oversize line and the last
/// line without a newline.
pub struct LineReader {
    input: Input,
    max_line: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Discarding the rest of an oversize line until the next newline.
    skipping: bool,
    stats: ReadStats,
    /// Length `buf` is kept at (reads go into `buf[end..]`).
    cap: usize,
    /// The complete lines of one read, all UTF-8 (empty, or ends with
    /// `\n`); `tpos`: where the next of them starts. Its allocation is the
    /// next `buf` once its lines are done.
    text: String,
    tpos: usize,
    /// `buf[..raw_until]` was checked and is not all UTF-8: its lines go
    /// one by one.
    raw_until: usize,
}

impl LineReader {
    pub fn new(input: Input, max_line: usize) -> Self {
        let max_line = max_line.max(1);
        let cap = READ_CHUNK.max(max_line + 1);
        LineReader {
            input,
            max_line,
            buf: vec![0; cap],
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
            stats: ReadStats::default(),
            cap,
            text: String::new(),
            tpos: 0,
            raw_until: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.input.name
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    pub fn into_stats(self) -> ReadStats {
        self.stats
    }

    /// Fill the buffer after compacting; returns false at end of input.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.raw_until = self.raw_until.saturating_sub(self.start);
            self.start = 0;
        }
        loop {
            match self.input.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.end += n;
                    self.stats.bytes += n as u64;
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.read_errors.push(ReadError {
                        input: self.input.name.clone(),
                        after_line: self.stats.lines,
                        message: e.to_string(),
                    });
                    self.eof = true;
                    return false;
                }
            }
        }
    }

    /// The next line, or None at the end of the input (or after a read error,
    /// which is recorded in the stats).
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Option<Line<'_>> {
        // the common case: the next line of the current UTF-8 piece (which
        // ends with '\n'), not oversize; everything else in `next_slow`
        if self.tpos < self.text.len()
            && let Some(pos) = memchr::memchr(b'\n', &self.text.as_bytes()[self.tpos..])
            && pos <= self.max_line
        {
            let (s, e) = (self.tpos, self.tpos + pos);
            self.tpos = e + 1;
            return Some(self.emit_text(s, e));
        }
        self.next_slow()
    }

    fn next_slow(&mut self) -> Option<Line<'_>> {
        loop {
            if self.tpos < self.text.len() {
                let rest = &self.text.as_bytes()[self.tpos..];
                // (`text` ends with '\n')
                let pos = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                let (s, e) = (self.tpos, self.tpos + pos);
                self.tpos = e + 1;
                if pos > self.max_line {
                    self.stats.oversize += 1;
                    self.stats.lines += 1;
                    continue;
                }
                return Some(self.emit_text(s, e));
            }
            if self.start == 0 && self.raw_until == 0 && self.end > 0 && !self.skipping && self.take_piece() {
                continue;
            }
            let pending = &self.buf[self.start..self.end];
            if let Some(pos) = memchr::memchr(b'\n', pending) {
                let line_start = self.start;
                let line_end = self.start + pos;
                self.start = line_end + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                if pos > self.max_line {
                    self.stats.oversize += 1;
                    self.stats.lines += 1;
                    continue;
                }
                return Some(self.emit(line_start, line_end));
            }
            // No newline in the buffered bytes.
            if self.end - self.start > self.max_line {
                // Oversize: drop what we have and discard until the next newline.
                if !self.skipping {
                    self.stats.oversize += 1;
                    self.stats.lines += 1;
                    self.skipping = true;
                }
                self.start = 0;
                self.end = 0;
                self.raw_until = 0;
            }
            if !self.fill() {
                // End of input: a last line without a newline still counts.
                if self.start < self.end {
                    let (s, e) = (self.start, self.end);
                    self.start = self.end;
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    return Some(self.emit(s, e));
                }
                return None;
            }
        }
    }

    /// Make `buf[..=last newline]` the new `text` when it is all UTF-8 (the
    /// bytes after it go to the front of the next buffer); false when there
    /// is no newline or the piece is not UTF-8 (then `raw_until` marks it).
    fn take_piece(&mut self) -> bool {
        let Some(last) = memchr::memrchr(b'\n', &self.buf[..self.end]) else {
            return false;
        };
        let piece = last + 1;
        let tail = self.end - piece;
        // the last text's allocation, its bytes kept (only what it lacks of
        // `cap` is zeroed), is the next buffer
        let mut next = std::mem::take(&mut self.text).into_bytes();
        next.resize(self.cap, 0);
        next[..tail].copy_from_slice(&self.buf[piece..self.end]);
        let mut raw = std::mem::replace(&mut self.buf, next);
        raw.truncate(piece);
        match String::from_utf8(raw) {
            Ok(text) => {
                self.text = text;
                self.tpos = 0;
                self.end = tail;
                self.raw_until = 0;
                true
            }
            Err(e) => {
                // back as it was: the piece, then the bytes after it
                let mut raw = e.into_bytes();
                raw.resize(self.cap, 0);
                raw[piece..self.end].copy_from_slice(&self.buf[..tail]);
                let mut next = std::mem::replace(&mut self.buf, raw);
                // kept for the next piece (empty: UTF-8)
                next.clear();
                self.text = String::from_utf8(next).unwrap_or_default();
                self.tpos = 0;
                self.raw_until = piece;
                false
            }
        }
    }

    /// [`emit`](Self::emit) for a line of `text`.
    #[inline]
    fn emit_text(&mut self, s: usize, mut e: usize) -> Line<'_> {
        if e > s && self.text.as_bytes()[e - 1] == b'\r' {
            e -= 1;
        }
        self.stats.lines += 1;
        Line { number: self.stats.lines, text: Cow::Borrowed(&self.text[s..e]), replaced: false }
    }

    fn emit(&mut self, s: usize, mut e: usize) -> Line<'_> {
        if e > s && self.buf[e - 1] == b'\r' {
            e -= 1;
        }
        self.stats.lines += 1;
        let number = self.stats.lines;
        let bytes = &self.buf[s..e];
        match std::str::from_utf8(bytes) {
            Ok(text) => Line { number, text: Cow::Borrowed(text), replaced: false },
            Err(_) => {
                self.stats.invalid_utf8 += 1;
                Line { number, text: String::from_utf8_lossy(bytes), replaced: true }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(data: &[u8], max: usize) -> (Vec<String>, ReadStats) {
        let mut r = Input::from_reader("t", io::Cursor::new(data.to_vec())).lines(max);
        let mut out = Vec::new();
        while let Some(l) = r.next() {
            out.push(l.text.into_owned());
        }
        (out, r.into_stats())
    }

    #[test]
    fn splits_lines_and_strips_crlf_keeping_a_last_line_without_newline() {
        let (lines, st) = collect(b"a\r\nb\n\nc", 100);
        assert_eq!(lines, vec!["a", "b", "", "c"]);
        assert_eq!(st.lines, 4);
        assert_eq!(st.oversize, 0);
    }

    #[test]
    fn oversize_lines_are_skipped_and_counted_without_losing_neighbours() {
        let mut data = b"before\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 1 << 20));
        data.extend(b"\nafter\n");
        data.extend(std::iter::repeat_n(b'y', 5000));
        let (lines, st) = collect(&data, 1000);
        assert_eq!(lines, vec!["before", "after"]);
        assert_eq!(st.oversize, 2);
        assert_eq!(st.lines, 4);
    }

    #[test]
    fn line_exactly_at_the_cap_is_kept() {
        let data = format!("{}\n{}\n", "a".repeat(10), "b".repeat(11));
        let (lines, st) = collect(data.as_bytes(), 10);
        assert_eq!(lines, vec!["a".repeat(10)]);
        assert_eq!(st.oversize, 1);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let (lines, st) = collect(b"ok\nbad \xff\xfe here\n", 100);
        assert_eq!(lines[0], "ok");
        assert_eq!(lines[1], "bad \u{fffd}\u{fffd} here");
        assert_eq!(st.invalid_utf8, 1);
    }

    #[test]
    fn many_small_reads_across_buffer_boundaries_lose_nothing() {
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let (lines, st) = collect(text.as_bytes(), 64);
        assert_eq!(lines.len(), 100_000);
        assert_eq!(lines[99_999], "line 99999");
        assert_eq!(st.bytes, text.len() as u64);
    }

    #[test]
    fn gzip_is_detected_by_magic_and_truncation_is_reported_not_fatal() {
        let dir = std::env::temp_dir().join(format!("sw-acq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text: String = (0..50_000).map(|i| format!("Jan  1 00:00:00 h sshd[1]: line {i}\n")).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        let gz = enc.finish().unwrap();

        let full = dir.join("full.log.gz");
        std::fs::write(&full, &gz).unwrap();
        let mut r = Input::open(&full).unwrap().lines(DEFAULT_MAX_LINE);
        let mut n = 0;
        while r.next().is_some() {
            n += 1;
        }
        assert_eq!(n, 50_000);
        assert!(r.stats().read_errors.is_empty());

        // Cut the stream in half: the lines before the cut survive, the error is recorded.
        let cut = dir.join("cut.bin");
        std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
        let mut r = Input::open(&cut).unwrap().lines(DEFAULT_MAX_LINE);
        let mut n = 0;
        while r.next().is_some() {
            n += 1;
        }
        assert!(n > 1000 && n < 50_000, "read {n} lines before the cut");
        assert_eq!(r.stats().read_errors.len(), 1, "{:?}", r.stats());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_file_and_directories_are_open_errors() {
        assert!(Input::open(Path::new("/nonexistent/stadtwache/x.log")).is_err());
        assert!(Input::open(Path::new("/")).is_err());
    }
}
