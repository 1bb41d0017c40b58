//! Splitting a TCP byte stream into syslog frames (RFC 6587), auto-detected
//! per frame:
//!
//! - **octet counting**: `LEN SP MSG`, where `LEN` is 1–9 digits without a
//!   leading zero and `MSG` starts with `<` (every octet-counting sender puts
//!   the `<PRI>` first). Requiring the `<` keeps a plain line such as
//!   `500 errors` from being read as a 500-byte frame;
//! - **non-transparent framing**: anything else, up to the next LF or NUL
//!   (a CR before the LF is removed: CRLF works).
//!
//! Empty frames (blank lines, the LF some senders add after an octet-counted
//! frame) are skipped and counted. A frame over the cap is cut at the cap
//! (the frame is flagged `truncated`, the rest is discarded and counted) and
//! the framer resyncs exactly: after `LEN` bytes for octet counting, at the
//! next delimiter otherwise. No state needs more than `max_message` bytes of
//! memory, whatever the input.
//!
//! Known limit: a corrupt stream that happens to contain `DIGITS SP <` at
//! the start of a frame is read as an octet-counted frame of that length (up
//! to 999 999 999 bytes, discarded past the cap and counted): the frames in
//! those bytes are lost, as with every RFC 6587 receiver.
//!
//! The framer is a byte-wise state machine: the frames do not depend on how
//! the stream was cut into reads, and every input byte is accounted for:
//! `bytes_in == Σ frame.data.len() + framing_bytes + discarded_bytes + pending()`.

/// How a frame was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    OctetCounted,
    /// Up to LF or NUL.
    Delimited,
    /// Cut by the end of the stream ([`Framer::finish`]).
    Eof,
}

/// One frame's message bytes (no length prefix, no delimiter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Vec<u8>,
    pub framing: Framing,
    /// Longer than the cap: `data` holds the first `max_message` bytes.
    pub truncated: bool,
    /// The frame's full length (bytes of message, as announced for octet
    /// counting, or as seen up to the delimiter).
    pub original_len: u64,
}

/// Counters of a [`Framer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramerStats {
    pub bytes_in: u64,
    pub frames: u64,
    /// Bytes of frame data handed out.
    pub frame_bytes: u64,
    /// Length prefixes, their SP, delimiters, the CR before an LF.
    pub framing_bytes: u64,
    /// Bytes past the cap of oversize frames, not handed out.
    pub discarded_bytes: u64,
    pub truncated: u64,
    pub empty: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    Start,
    /// Reading the digits of a possible length (kept in `buf`).
    Count(u64),
    /// Read `LEN SP` (kept in `buf`); the next byte decides.
    CountSp(u64),
    /// Reading an octet-counted message: bytes still to come.
    Octets { remaining: u64, total: u64 },
    /// Reading a delimited frame; `seen` bytes so far.
    Line { seen: u64 },
}

/// The TCP frame splitter; see the module documentation.
#[derive(Clone, Debug)]
pub struct Framer {
    max_message: usize,
    state: State,
    buf: Vec<u8>,
    /// A full line buffer was followed by a CR: discarded unless the next
    /// byte is the LF (a CRLF after exactly `max_message` bytes is no cut).
    held_cr: bool,
    stats: FramerStats,
}

const MAX_COUNT_DIGITS: usize = 9;

impl Framer {
    /// `max_message`: the cap on a frame's message bytes (at least 1).
    pub fn new(max_message: usize) -> Self {
        Framer {
            max_message: max_message.max(1),
            state: State::Start,
            buf: Vec::new(),
            held_cr: false,
            stats: FramerStats::default(),
        }
    }

    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes held for a frame not complete yet.
    pub fn pending(&self) -> usize {
        self.buf.len() + usize::from(self.held_cr)
    }

    /// Feed bytes; complete frames are handed to `out` in order.
    pub fn push(&mut self, data: &[u8], out: &mut impl FnMut(Frame)) {
        self.stats.bytes_in += data.len() as u64;
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Start => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'\n' | 0 => {
                            self.stats.framing_bytes += 1;
                            self.stats.empty += 1;
                        }
                        b'1'..=b'9' => {
                            self.buf.push(b);
                            self.state = State::Count(u64::from(b - b'0'));
                        }
                        _ => {
                            self.state = State::Line { seen: 0 };
                            self.line_byte(b);
                        }
                    }
                }
                State::Count(n) => {
                    let b = data[i];
                    if b.is_ascii_digit() && self.buf.len() < MAX_COUNT_DIGITS {
                        i += 1;
                        self.buf.push(b);
                        self.state = State::Count(n * 10 + u64::from(b - b'0'));
                    } else if b == b' ' {
                        i += 1;
                        self.buf.push(b);
                        self.state = State::CountSp(n);
                    } else {
                        // Not a length: the digits start a delimited frame.
                        self.digits_to_line();
                    }
                }
                State::CountSp(n) => {
                    if data[i] == b'<' {
                        self.stats.framing_bytes += self.buf.len() as u64;
                        self.buf.clear();
                        self.state = State::Octets { remaining: n, total: n };
                    } else {
                        self.digits_to_line();
                    }
                }
                State::Octets { remaining, total } => {
                    let take = (remaining.min((data.len() - i) as u64)) as usize;
                    let room = self.max_message.saturating_sub(self.buf.len()).min(take);
                    self.buf.extend_from_slice(&data[i..i + room]);
                    self.stats.discarded_bytes += (take - room) as u64;
                    i += take;
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.emit(Framing::OctetCounted, total, out);
                    } else {
                        self.state = State::Octets { remaining, total };
                    }
                }
                State::Line { .. } => {
                    let rest = &data[i..];
                    match memchr::memchr2(b'\n', 0, rest) {
                        Some(pos) => {
                            for &b in &rest[..pos] {
                                self.line_byte(b);
                            }
                            i += pos + 1;
                            self.stats.framing_bytes += 1;
                            self.end_line(Framing::Delimited, out);
                        }
                        None => {
                            for &b in rest {
                                self.line_byte(b);
                            }
                            i = data.len();
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: a frame in progress is handed out as it is
    /// (`Framing::Eof`), unless nothing of it was read.
    pub fn finish(&mut self, out: &mut impl FnMut(Frame)) {
        match self.state {
            State::Start => {}
            State::Count(_) | State::CountSp(_) => {
                self.digits_to_line();
                self.end_line(Framing::Eof, out);
            }
            State::Line { .. } => self.end_line(Framing::Eof, out),
            // Cut short: the bytes announced but never sent are not in
            // `bytes_in` and have nothing to account for.
            State::Octets { remaining, total } => self.emit(Framing::Eof, total - remaining, out),
        }
    }

    /// Move the length digits (and SP) in `buf` into a delimited frame.
    fn digits_to_line(&mut self) {
        let held = std::mem::take(&mut self.buf);
        self.state = State::Line { seen: 0 };
        for b in held {
            self.line_byte(b);
        }
    }

    fn line_byte(&mut self, b: u8) {
        let State::Line { seen } = &mut self.state else { unreachable!("line_byte outside a line") };
        *seen += 1;
        if self.held_cr {
            self.held_cr = false;
            self.stats.discarded_bytes += 1;
        }
        if self.buf.len() < self.max_message {
            self.buf.push(b);
        } else if b == b'\r' && *seen == self.max_message as u64 + 1 {
            self.held_cr = true;
        } else {
            self.stats.discarded_bytes += 1;
        }
    }

    fn end_line(&mut self, framing: Framing, out: &mut impl FnMut(Frame)) {
        let State::Line { mut seen } = self.state else { unreachable!("end_line outside a line") };
        // CRLF: the CR is part of the delimiter.
        if self.held_cr {
            self.held_cr = false;
            seen -= 1;
            self.stats.framing_bytes += 1;
        } else if seen as usize == self.buf.len() && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
            seen -= 1;
            self.stats.framing_bytes += 1;
        }
        if seen == 0 {
            self.stats.empty += 1;
            self.state = State::Start;
            return;
        }
        self.emit(framing, seen, out);
    }

    fn emit(&mut self, framing: Framing, original_len: u64, out: &mut impl FnMut(Frame)) {
        let data = std::mem::take(&mut self.buf);
        let truncated = (data.len() as u64) < original_len;
        self.stats.frames += 1;
        self.stats.frame_bytes += data.len() as u64;
        if truncated {
            self.stats.truncated += 1;
        }
        self.state = State::Start;
        out(Frame { data, framing, truncated, original_len });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> (Vec<Frame>, Framer) {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut |fr| out.push(fr));
        }
        f.finish(&mut |fr| out.push(fr));
        (out, f)
    }

    fn texts(fs: &[Frame]) -> Vec<String> {
        fs.iter().map(|f| String::from_utf8_lossy(&f.data).into_owned()).collect()
    }

    #[test]
    fn mixed_framings_in_one_stream() {
        let (fs, f) = frames(100, &[b"5 <1>ab<2>x\n\n<3>y\r\n14 <4>1 - - - - -\x00500 errors\n"]);
        assert_eq!(texts(&fs), vec!["<1>ab", "<2>x", "<3>y", "<4>1 - - - - -", "500 errors"]);
        assert_eq!(fs[0].framing, Framing::OctetCounted);
        assert_eq!(fs[1].framing, Framing::Delimited);
        assert_eq!(f.stats().empty, 2, "the blank line, the NUL after an octet-counted frame");
        let s = f.stats();
        assert_eq!(s.bytes_in, s.frame_bytes + s.framing_bytes + s.discarded_bytes);
    }

    #[test]
    fn oversize_frames_are_cut_and_resync() {
        let (fs, f) = frames(4, &[b"10 <123456789<ok>\n<abcdefgh\n<x>\n"]);
        assert_eq!(texts(&fs), vec!["<123", "<ok>", "<abc", "<x>"]);
        assert!(fs[0].truncated && !fs[1].truncated && fs[2].truncated && !fs[3].truncated);
        assert_eq!((fs[0].original_len, fs[2].original_len), (10, 9));
        assert_eq!(f.stats().discarded_bytes, 6 + 5);
    }

    #[test]
    fn eof_hands_out_the_partial_frame() {
        let (fs, _) = frames(100, &[b"<1>a\n<2>b"]);
        assert_eq!(texts(&fs), vec!["<1>a", "<2>b"]);
        assert_eq!(fs[1].framing, Framing::Eof);
        let (fs, _) = frames(100, &[b"10 <1>ab"]);
        assert_eq!((fs[0].framing, fs[0].truncated, texts(&fs)), (Framing::Eof, false, vec!["<1>ab".to_string()]));
        let (fs, _) = frames(100, &[b"12"]);
        assert_eq!(texts(&fs), vec!["12"]);
    }

    #[test]
    fn too_many_digits_is_a_line() {
        let (fs, _) = frames(100, &[b"1234567890 <1>x\n"]);
        assert_eq!(texts(&fs), vec!["1234567890 <1>x"]);
    }
}
