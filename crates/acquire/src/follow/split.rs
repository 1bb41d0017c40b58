//! Incremental, capped line splitting for one followed file.
//!
//! Bytes arrive in chunks at increasing file offsets. Complete lines (ending
//! in `\n`) are handed out; the bytes after the last `\n` are held until the
//! line is completed (or flushed by the caller). A line longer than the cap is
//! skipped without being buffered, and counted, as in the offline reader.

/// A line cut out of the byte stream.
pub(crate) struct RawLine {
    pub bytes: Vec<u8>,
    /// File offset just past the line's `\n` (or past its last byte when a
    /// partial line is flushed).
    pub end: u64,
    pub partial: bool,
}

#[derive(Default)]
pub(crate) struct SplitCounters {
    pub lines: u64,
    pub oversize: u64,
}

pub(crate) struct Splitter {
    max_line: usize,
    /// Offset just past the last line handed out or skipped: the checkpoint.
    pub committed: u64,
    /// Offset of the next byte to read from the file.
    pub read_pos: u64,
    /// Bytes `[committed, read_pos)` while not skipping.
    held: Vec<u8>,
    /// Discarding an oversize line up to its `\n`.
    skipping: bool,
}

impl Splitter {
    pub fn new(max_line: usize, offset: u64) -> Self {
        Splitter { max_line: max_line.max(1), committed: offset, read_pos: offset, held: Vec::new(), skipping: false }
    }

    /// Forget everything and start again at `offset` (truncation).
    pub fn reset(&mut self, offset: u64) {
        self.committed = offset;
        self.read_pos = offset;
        self.held.clear();
        self.skipping = false;
    }

    /// Bytes read but not handed out (a partial last line).
    pub fn has_partial(&self) -> bool {
        self.read_pos > self.committed
    }

    /// Feed bytes that were read at `self.read_pos`.
    pub fn feed(&mut self, mut data: &[u8], c: &mut SplitCounters, out: &mut Vec<RawLine>) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(pos) => {
                    let end = self.read_pos + pos as u64 + 1;
                    if self.skipping {
                        self.skipping = false;
                    } else if self.held.len() + pos > self.max_line {
                        c.oversize += 1;
                        c.lines += 1;
                    } else {
                        let mut bytes = std::mem::take(&mut self.held);
                        bytes.extend_from_slice(&data[..pos]);
                        c.lines += 1;
                        out.push(RawLine { bytes, end, partial: false });
                    }
                    self.held.clear();
                    self.read_pos = end;
                    self.committed = end;
                    data = &data[pos + 1..];
                }
                None => {
                    if !self.skipping {
                        if self.held.len() + data.len() > self.max_line {
                            c.oversize += 1;
                            c.lines += 1;
                            self.skipping = true;
                            self.held = Vec::new();
                        } else {
                            self.held.extend_from_slice(data);
                        }
                    }
                    self.read_pos += data.len() as u64;
                    data = &[];
                }
            }
        }
    }

    /// Hand out the held partial line as a line of its own (end of a file that
    /// is closed, or the idle timeout). An oversize line being skipped is
    /// already counted; its bytes are just committed.
    pub fn flush_partial(&mut self, c: &mut SplitCounters) -> Option<RawLine> {
        if !self.has_partial() {
            return None;
        }
        let was_skipping = std::mem::replace(&mut self.skipping, false);
        let bytes = std::mem::take(&mut self.held);
        self.committed = self.read_pos;
        if was_skipping {
            return None;
        }
        c.lines += 1;
        Some(RawLine { bytes, end: self.read_pos, partial: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<(String, u64)>, Splitter, SplitCounters) {
        let mut s = Splitter::new(max, 0);
        let mut c = SplitCounters::default();
        let mut out = Vec::new();
        for ch in chunks {
            s.feed(ch, &mut c, &mut out);
        }
        let v = out.into_iter().map(|l| (String::from_utf8(l.bytes).unwrap(), l.end)).collect();
        (v, s, c)
    }

    #[test]
    fn lines_across_chunks_with_offsets_and_a_held_partial() {
        let (v, s, c) = run(&[b"ab", b"c\nde\nf", b"g"], 100);
        assert_eq!(v, vec![("abc".into(), 4), ("de".into(), 7)]);
        assert_eq!((s.committed, s.read_pos), (7, 9));
        assert!(s.has_partial());
        assert_eq!(c.lines, 2);
    }

    #[test]
    fn oversize_lines_are_skipped_across_chunks_and_counted_once() {
        let (v, s, c) = run(&[b"ok\n", b"xxxx", b"xxxx", b"xx\nfine\n"], 5);
        assert_eq!(v, vec![("ok".into(), 3), ("fine".into(), 19)]);
        assert_eq!(c.oversize, 1);
        assert_eq!(c.lines, 3);
        assert_eq!(s.committed, 19);
        // Exactly at the cap is kept, one over is not.
        let (v, _, c) = run(&[b"12345\n123456\n"], 5);
        assert_eq!(v, vec![("12345".into(), 6)]);
        assert_eq!(c.oversize, 1);
    }

    #[test]
    fn flushing_a_partial_commits_it() {
        let (_, mut s, mut c) = run(&[b"a\nbc"], 100);
        let l = s.flush_partial(&mut c).unwrap();
        assert_eq!((l.bytes.as_slice(), l.end, l.partial), (&b"bc"[..], 4, true));
        assert_eq!(s.committed, 4);
        assert!(s.flush_partial(&mut c).is_none());
    }
}
