//! `LineReader` against a plain model of its contract, over random bytes
//! (invalid UTF-8, CR, long lines, a last line without newline) delivered in
//! random read sizes: the whole-piece UTF-8 check, the line-by-line path for
//! pieces that are not UTF-8 and the oversize skipping must give the same
//! lines, numbers and counters as splitting the whole input at once.

use std::io::{self, Read};

use proptest::prelude::*;
use stadtwache_acquire::{Input, ReadStats};

/// Hands out the data in reads of the given sizes (cycled; 0 taken as 1).
struct Chunked {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    n: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes.get(self.n % self.sizes.len().max(1)).copied().unwrap_or(usize::MAX).max(1);
        self.n += 1;
        let k = want.min(buf.len()).min(self.data.len() - self.at);
        buf[..k].copy_from_slice(&self.data[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

/// (number, text, replaced) per line, and the counters.
type Out = (Vec<(u64, String, bool)>, ReadStats);

fn read_all(data: &[u8], sizes: Vec<usize>, max: usize) -> Out {
    let input = Input::from_reader("t", Chunked { data: data.to_vec(), at: 0, sizes, n: 0 });
    let mut r = input.lines(max);
    let mut out = Vec::new();
    while let Some(l) = r.next() {
        out.push((l.number, l.text.into_owned(), l.replaced));
    }
    (out, r.into_stats())
}

/// The contract: lines split at '\n' (a last one without it counts), longer
/// than `max` (with a '\r' before the '\n') skipped and counted, one '\r'
/// before the '\n' dropped, invalid UTF-8 replaced and counted.
fn model(data: &[u8], max: usize) -> Out {
    let max = max.max(1);
    let mut st = ReadStats { bytes: data.len() as u64, ..ReadStats::default() };
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    for p in parts {
        st.lines += 1;
        if p.len() > max {
            st.oversize += 1;
            continue;
        }
        let p = p.strip_suffix(b"\r").unwrap_or(p);
        let (text, replaced) = match std::str::from_utf8(p) {
            Ok(t) => (t.to_string(), false),
            Err(_) => (String::from_utf8_lossy(p).into_owned(), true),
        };
        st.invalid_utf8 += u64::from(replaced);
        out.push((st.lines, text, replaced));
    }
    (out, st)
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(prop_oneof![b'a'..=b'z', Just(b' '), Just(b'\r')], 0..30),
        1 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..30),
        1 => proptest::collection::vec(prop_oneof![Just(0xc3u8), Just(0xa9u8), Just(0xe2), Just(0x82), Just(0xac), Just(b'x')], 0..12),
        1 => (40usize..400).prop_map(|n| vec![b'y'; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn line_reader_matches_the_model(
        lines in proptest::collection::vec(line(), 0..40),
        newline_at_end in any::<bool>(),
        sizes in proptest::collection::vec(1usize..200, 1..6),
        max in prop_oneof![Just(1usize), 5usize..60, Just(100_000)],
    ) {
        let mut data = lines.join(&b'\n');
        if newline_at_end && !data.is_empty() {
            data.push(b'\n');
        }
        prop_assert_eq!(read_all(&data, sizes, max), model(&data, max));
    }
}

/// Pieces larger than one read buffer, a piece that is not UTF-8 between
/// pieces that are, and a line cut by a read in the middle of a character.
#[test]
fn big_inputs_with_a_bad_piece_in_the_middle() {
    let mut data = Vec::new();
    for i in 0..60_000 {
        data.extend(format!("Mar  2 00:00:{:02} host sshd[{i}]: line {i} é\r\n", i % 60).as_bytes());
        if i == 30_000 {
            data.extend(b"bad \xff\xfe byte\n");
        }
        if i == 45_000 {
            data.extend(vec![b'z'; 70_000]);
            data.push(b'\n');
        }
    }
    data.extend(b"last without newline \xc3");
    for sizes in [vec![usize::MAX], vec![1000, 7, 65_536, 3], vec![4096]] {
        let (got, st) = read_all(&data, sizes, stadtwache_acquire::DEFAULT_MAX_LINE);
        let (want, mst) = model(&data, stadtwache_acquire::DEFAULT_MAX_LINE);
        assert_eq!(st, mst);
        assert_eq!(got.len(), want.len());
        assert!(got == want);
        assert_eq!(st.invalid_utf8, 2);
        assert_eq!(st.oversize, 1);
    }
}
