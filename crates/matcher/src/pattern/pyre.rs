//! A parser for Python 3.11 `re` syntax (str patterns), producing a small
//! AST the emitter turns into Rust regex syntax. It reproduces Python's
//! acceptance rules and error messages for the constructs it sees (written
//! from the documented behaviour and observed results of `re.compile`).

/// Python regex flags that matter for translation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub i: bool,
    pub m: bool,
    pub s: bool,
    pub x: bool,
    pub a: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PerlKind {
    Digit,
    Word,
    Space,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Perl {
    pub kind: PerlKind,
    pub neg: bool,
    pub ascii: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SetItem {
    Char(char),
    Range(char, char),
    Perl(Perl),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Set {
    pub negated: bool,
    pub items: Vec<SetItem>,
    pub icase: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RepKind {
    Greedy,
    Lazy,
    Possessive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GroupKind {
    Capture(usize),
    NonCapture,
    Atomic,
    /// Scoped flags: Some(true) = turn on ignore-case, Some(false) = off.
    Flags(Option<bool>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Empty,
    Lit {
        c: char,
        icase: bool,
    },
    Any {
        dotall: bool,
    },
    Set(Set),
    /// `^`
    Start {
        multiline: bool,
    },
    /// `$`
    End {
        multiline: bool,
    },
    /// `\A`
    StartText,
    /// `\Z` (Python: end of string only)
    EndText,
    WordB {
        neg: bool,
        ascii: bool,
    },
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Group {
        kind: GroupKind,
        node: Box<Node>,
    },
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        kind: RepKind,
    },
    Backref(usize),
    Cond {
        group: usize,
        yes: Box<Node>,
        no: Box<Node>,
    },
    Look {
        ahead: bool,
        neg: bool,
        node: Box<Node>,
    },
}

impl Node {
    fn is_at(&self) -> bool {
        matches!(self, Node::Start { .. } | Node::End { .. } | Node::StartText | Node::EndText | Node::WordB { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PyError {
    pub msg: String,
    /// Byte offset in the pattern.
    pub pos: usize,
}

#[derive(Debug)]
pub(crate) struct Parsed {
    pub node: Node,
    /// Index = group number; 0 is the whole match (None).
    pub names: Vec<Option<String>>,
    /// Per group number: byte offsets of its `(` and `)` in the pattern.
    pub spans: Vec<(usize, usize)>,
    pub global: Flags,
}

const MAXREPEAT: u64 = u32::MAX as u64;
/// Deeper group nesting is refused (the regex engines refuse it too).
const MAX_NESTING: usize = 200;

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    flags_global: Flags,
    names: Vec<Option<String>>,
    spans: Vec<(usize, usize)>,
    open: Vec<usize>,
    cond_refs: Vec<(usize, usize)>,
}

type R<T> = Result<T, PyError>;

fn is_identifier(name: &str) -> bool {
    let mut it = name.chars();
    match it.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    it.all(|c| c == '_' || c.is_alphanumeric())
}

impl<'a> Parser<'a> {
    fn err<T>(&self, msg: impl Into<String>, pos: usize) -> R<T> {
        Err(PyError { msg: msg.into(), pos })
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Reads up to `n` chars from `set`.
    fn get_while(&mut self, n: usize, ok: impl Fn(char) -> bool) -> String {
        let mut r = String::new();
        for _ in 0..n {
            match self.peek() {
                Some(c) if ok(c) => {
                    r.push(c);
                    self.bump();
                }
                _ => break,
            }
        }
        r
    }

    fn get_until(&mut self, term: char, what: &str) -> R<String> {
        let start = self.pos;
        loop {
            match self.bump() {
                None => return self.err(format!("missing {term}, unterminated name"), start),
                Some(c) if c == term => break,
                Some(_) => {}
            }
        }
        let name = &self.s[start..self.pos - term.len_utf8()];
        if name.is_empty() {
            return self.err(format!("missing {what}"), start);
        }
        Ok(name.to_string())
    }

    fn check_group_name(&self, name: &str, at: usize) -> R<()> {
        if !is_identifier(name) {
            return self.err(format!("bad character in group name '{name}'"), at);
        }
        Ok(())
    }

    fn group_by_name(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }

    fn parse_sub(&mut self, flags: Flags, nested: usize) -> R<Node> {
        if nested > MAX_NESTING {
            return self.err("unsupported nesting depth (more than 200 levels of groups)", self.pos);
        }
        let mut items = Vec::new();
        loop {
            let first = nested == 0 && items.is_empty();
            // global flags (only allowed at the very start) apply to every later top-level branch
            let f = if nested == 0 { merge_global(flags, self.flags_global) } else { flags };
            items.push(self.parse_seq(f, first, nested)?);
            if !self.eat('|') {
                break;
            }
        }
        Ok(if items.len() == 1 { items.pop().unwrap_or(Node::Empty) } else { Node::Alt(items) })
    }

    fn hex_escape(&mut self, esc_start: usize, kind: char, n: usize) -> R<char> {
        let h = self.get_while(n, |c| c.is_ascii_hexdigit());
        if h.len() != n {
            return self.err(format!("incomplete escape \\{kind}{h}"), esc_start);
        }
        let v = u32::from_str_radix(&h, 16).unwrap_or(u32::MAX);
        match char::from_u32(v) {
            Some(c) => Ok(c),
            None if kind == 'U' && v > 0x10FFFF => self.err(format!("bad escape \\{kind}{h}"), esc_start),
            None => self.err(format!("unsupported escape \\{kind}{h} (surrogate code point)"), esc_start),
        }
    }

    fn named_char(&mut self, esc_start: usize) -> R<char> {
        if !self.eat('{') {
            return self.err("missing {", self.pos);
        }
        let name = self.get_until('}', "character name")?;
        match unicode_name(&name) {
            Some(c) => Ok(c),
            None => self.err(format!("unsupported \\N{{{name}}} (named characters are not supported)"), esc_start),
        }
    }

    fn perl(&self, c: char, flags: Flags) -> Option<Perl> {
        let (kind, neg) = match c {
            'd' => (PerlKind::Digit, false),
            'D' => (PerlKind::Digit, true),
            'w' => (PerlKind::Word, false),
            'W' => (PerlKind::Word, true),
            's' => (PerlKind::Space, false),
            'S' => (PerlKind::Space, true),
            _ => return None,
        };
        Some(Perl { kind, neg, ascii: flags.a })
    }

    /// Escape inside a class: returns a char or a Perl class.
    fn class_escape(&mut self, flags: Flags) -> R<SetItem> {
        let esc_start = self.pos - 1;
        let Some(c) = self.bump() else {
            return self.err("bad escape (end of pattern)", esc_start);
        };
        if let Some(lit) = simple_escape(c, true) {
            return Ok(SetItem::Char(lit));
        }
        if let Some(p) = self.perl(c, flags) {
            return Ok(SetItem::Perl(p));
        }
        match c {
            'x' => Ok(SetItem::Char(self.hex_escape(esc_start, 'x', 2)?)),
            'u' => Ok(SetItem::Char(self.hex_escape(esc_start, 'u', 4)?)),
            'U' => Ok(SetItem::Char(self.hex_escape(esc_start, 'U', 8)?)),
            'N' => Ok(SetItem::Char(self.named_char(esc_start)?)),
            '0'..='7' => {
                let mut d = String::from(c);
                d.push_str(&self.get_while(2, |c| ('0'..='7').contains(&c)));
                let v = u32::from_str_radix(&d, 8).unwrap_or(0);
                if v > 0o377 {
                    return self.err(format!("octal escape value \\{d} outside of range 0-0o377"), esc_start);
                }
                Ok(SetItem::Char(char::from_u32(v).unwrap_or('\0')))
            }
            c if c.is_ascii_alphanumeric() => self.err(format!("bad escape \\{c}"), esc_start),
            c => Ok(SetItem::Char(c)),
        }
    }

    fn escape(&mut self, flags: Flags) -> R<Node> {
        let esc_start = self.pos - 1;
        let Some(c) = self.bump() else {
            return self.err("bad escape (end of pattern)", esc_start);
        };
        match c {
            'A' => return Ok(Node::StartText),
            'Z' => return Ok(Node::EndText),
            'b' => {
                return Ok(Node::WordB { neg: false, ascii: flags.a });
            }
            'B' => {
                return Ok(Node::WordB { neg: true, ascii: flags.a });
            }
            _ => {}
        }
        if let Some(p) = self.perl(c, flags) {
            return Ok(Node::Set(Set { negated: false, items: vec![SetItem::Perl(p)], icase: flags.i }));
        }
        if let Some(lit) = simple_escape(c, false) {
            return Ok(Node::Lit { c: lit, icase: flags.i });
        }
        let lit = match c {
            'x' => self.hex_escape(esc_start, 'x', 2)?,
            'u' => self.hex_escape(esc_start, 'u', 4)?,
            'U' => self.hex_escape(esc_start, 'U', 8)?,
            'N' => self.named_char(esc_start)?,
            '0' => {
                let d = self.get_while(2, |c| ('0'..='7').contains(&c));
                let v = u32::from_str_radix(&format!("0{d}"), 8).unwrap_or(0);
                char::from_u32(v).unwrap_or('\0')
            }
            '1'..='9' => {
                let mut esc = String::from(c);
                if let Some(n) = self.peek().filter(char::is_ascii_digit) {
                    self.bump();
                    esc.push(n);
                    let b = esc.as_bytes();
                    if b[0] <= b'7' && b[1] <= b'7' && self.peek().is_some_and(|c| ('0'..='7').contains(&c)) {
                        esc.push(self.bump().unwrap_or('0'));
                        let v = u32::from_str_radix(&esc, 8).unwrap_or(0);
                        if v > 0o377 {
                            return self.err(format!("octal escape value \\{esc} outside of range 0-0o377"), esc_start);
                        }
                        return Ok(Node::Lit { c: char::from_u32(v).unwrap_or('\0'), icase: flags.i });
                    }
                }
                let group: usize = esc.parse().unwrap_or(usize::MAX);
                if group < self.names.len() {
                    if self.open.contains(&group) {
                        return self.err("cannot refer to an open group", esc_start);
                    }
                    return Ok(Node::Backref(group));
                }
                return self.err(format!("invalid group reference {group}"), esc_start + 1);
            }
            c if c.is_ascii_alphabetic() => {
                return self.err(format!("bad escape \\{c}"), esc_start);
            }
            c => c,
        };
        Ok(Node::Lit { c: lit, icase: flags.i })
    }

    fn parse_class(&mut self, flags: Flags) -> R<Node> {
        let here = self.pos - 1;
        let negated = self.eat('^');
        let mut items: Vec<SetItem> = Vec::new();
        loop {
            let Some(this) = self.bump() else {
                return self.err("unterminated character set", here);
            };
            let this_start = self.pos - this.len_utf8();
            if this == ']' && !items.is_empty() {
                break;
            }
            let code1 = if this == '\\' { self.class_escape(flags)? } else { SetItem::Char(this) };
            let this_text = self.s[this_start..self.pos].to_string();
            if self.eat('-') {
                let that_start = self.pos;
                let Some(that) = self.bump() else {
                    return self.err("unterminated character set", here);
                };
                if that == ']' {
                    items.push(code1);
                    items.push(SetItem::Char('-'));
                    break;
                }
                let code2 = if that == '\\' { self.class_escape(flags)? } else { SetItem::Char(that) };
                let that_text = &self.s[that_start..self.pos];
                let (SetItem::Char(lo), SetItem::Char(hi)) = (&code1, &code2) else {
                    return self.err(format!("bad character range {this_text}-{that_text}"), this_start);
                };
                if hi < lo {
                    return self.err(format!("bad character range {this_text}-{that_text}"), this_start);
                }
                items.push(SetItem::Range(*lo, *hi));
            } else {
                items.push(code1);
            }
        }
        Ok(Node::Set(Set { negated, items, icase: flags.i }))
    }

    fn parse_flags(&mut self, first_char: char, start: usize) -> R<Option<(Flags, Flags)>> {
        // returns None for global flags (already applied)
        let mut add = Flags::default();
        let mut del = Flags::default();
        let mut char = Some(first_char);
        let mut type_flag: Option<char> = None;
        let set = |f: &mut Flags, c: char| match c {
            'i' => f.i = true,
            'm' => f.m = true,
            's' => f.s = true,
            'x' => f.x = true,
            'a' => f.a = true,
            _ => {}
        };
        let is_flag = |c: char| "iLmsxatu".contains(c);
        let mut global_t = false;
        if first_char != '-' {
            loop {
                let c = char.unwrap_or(')');
                if c == 'L' {
                    return self.err("bad inline flags: cannot use 'L' flag with a str pattern", self.pos);
                }
                if c == 'a' || c == 'u' {
                    if type_flag.is_some_and(|t| t != c) {
                        return self.err("bad inline flags: flags 'a', 'u' and 'L' are incompatible", self.pos);
                    }
                    type_flag = Some(c);
                }
                if c == 't' {
                    global_t = true;
                }
                set(&mut add, c);
                char = self.bump();
                match char {
                    None => return self.err("missing -, : or )", self.pos),
                    Some(')' | '-' | ':') => break,
                    Some(c) if !is_flag(c) => {
                        let msg = if c.is_alphabetic() { "unknown flag" } else { "missing -, : or )" };
                        return self.err(msg, self.pos - c.len_utf8());
                    }
                    _ => {}
                }
            }
        }
        if char == Some(')') {
            let g = &mut self.flags_global;
            g.i |= add.i;
            g.m |= add.m;
            g.s |= add.s;
            g.x |= add.x;
            g.a |= add.a;
            return Ok(None);
        }
        if global_t {
            return self.err("bad inline flags: cannot turn on global flag", self.pos);
        }
        if char == Some('-') {
            let c = self.bump();
            match c {
                None => return self.err("missing flag", self.pos),
                Some(c) if !is_flag(c) => {
                    let msg = if c.is_alphabetic() { "unknown flag" } else { "missing flag" };
                    return self.err(msg, self.pos - c.len_utf8());
                }
                _ => {}
            }
            let mut c = c.unwrap_or(':');
            loop {
                if "aLu".contains(c) {
                    return self.err("bad inline flags: cannot turn off flags 'a', 'u' and 'L'", self.pos);
                }
                if c == 't' {
                    return self.err("bad inline flags: cannot turn off global flag", self.pos);
                }
                set(&mut del, c);
                match self.bump() {
                    None => return self.err("missing :", self.pos),
                    Some(':') => break,
                    Some(n) if !is_flag(n) => {
                        let msg = if n.is_alphabetic() { "unknown flag" } else { "missing :" };
                        return self.err(msg, self.pos - n.len_utf8());
                    }
                    Some(n) => c = n,
                }
            }
        }
        if (add.i && del.i) || (add.m && del.m) || (add.s && del.s) || (add.x && del.x) {
            return self.err("bad inline flags: flag turned on and off", self.pos);
        }
        let _ = start;
        Ok(Some((add, del)))
    }

    fn parse_seq(&mut self, mut flags: Flags, first: bool, nested: usize) -> R<Node> {
        let mut seq: Vec<Node> = Vec::new();
        while let Some(this) = self.peek() {
            if this == '|' || this == ')' {
                break;
            }
            let this_start = self.pos;
            self.bump();
            if flags.x {
                if matches!(this, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
                    continue;
                }
                if this == '#' {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
            }
            match this {
                '\\' => {
                    let n = self.escape(flags)?;
                    seq.push(n);
                }
                '[' => {
                    let n = self.parse_class(flags)?;
                    seq.push(n);
                }
                '*' | '+' | '?' | '{' => {
                    let (min, max): (u32, Option<u32>) = match this {
                        '?' => (0, Some(1)),
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => {
                            if self.peek() == Some('}') {
                                seq.push(Node::Lit { c: '{', icase: flags.i });
                                continue;
                            }
                            let save = self.pos;
                            let lo = self.get_while(usize::MAX, |c| c.is_ascii_digit());
                            let hi = if self.eat(',') {
                                Some(self.get_while(usize::MAX, |c| c.is_ascii_digit()))
                            } else {
                                None
                            };
                            if !self.eat('}') {
                                self.pos = save;
                                seq.push(Node::Lit { c: '{', icase: flags.i });
                                continue;
                            }
                            let parse = |t: &str| -> Option<u64> { t.parse::<u64>().ok() };
                            let min = if lo.is_empty() { 0 } else { parse(&lo).unwrap_or(u64::MAX) };
                            let max = match &hi {
                                None => Some(min),
                                Some(h) if h.is_empty() => None,
                                Some(h) => Some(parse(h).unwrap_or(u64::MAX)),
                            };
                            if min >= MAXREPEAT || max.is_some_and(|m| m >= MAXREPEAT) {
                                return self.err("the repetition number is too large", this_start);
                            }
                            if max.is_some_and(|m| m < min) {
                                return self.err("min repeat greater than max repeat", this_start + 1);
                            }
                            (min as u32, max.map(|m| m as u32))
                        }
                    };
                    let Some(item) = seq.pop() else {
                        return self.err("nothing to repeat", this_start);
                    };
                    if item.is_at() {
                        return self.err("nothing to repeat", this_start);
                    }
                    if matches!(item, Node::Repeat { .. }) {
                        return self.err("multiple repeat", this_start);
                    }
                    let kind = if self.eat('?') {
                        RepKind::Lazy
                    } else if self.eat('+') {
                        RepKind::Possessive
                    } else {
                        RepKind::Greedy
                    };
                    seq.push(Node::Repeat { node: Box::new(item), min, max, kind });
                }
                '.' => seq.push(Node::Any { dotall: flags.s }),
                '^' => seq.push(Node::Start { multiline: flags.m }),
                '$' => seq.push(Node::End { multiline: flags.m }),
                '(' => {
                    let start = this_start;
                    let mut name: Option<String> = None;
                    let mut capture = true;
                    let mut kind = GroupKind::NonCapture;
                    let mut sub_flags = flags;
                    if self.eat('?') {
                        let Some(char) = self.bump() else {
                            return self.err("unexpected end of pattern", self.pos);
                        };
                        match char {
                            'P' => {
                                if self.eat('<') {
                                    let at = self.pos;
                                    let n = self.get_until('>', "group name")?;
                                    self.check_group_name(&n, at)?;
                                    name = Some(n);
                                } else if self.eat('=') {
                                    let at = self.pos;
                                    let n = self.get_until(')', "group name")?;
                                    self.check_group_name(&n, at)?;
                                    let Some(gid) = self.group_by_name(&n) else {
                                        return self.err(format!("unknown group name '{n}'"), at);
                                    };
                                    if self.open.contains(&gid) {
                                        return self.err("cannot refer to an open group", at);
                                    }
                                    seq.push(Node::Backref(gid));
                                    continue;
                                } else {
                                    let c = self.bump();
                                    return match c {
                                        None => self.err("unexpected end of pattern", self.pos),
                                        Some(c) => self.err(format!("unknown extension ?P{c}"), start + 1),
                                    };
                                }
                            }
                            ':' => capture = false,
                            '#' => {
                                loop {
                                    match self.bump() {
                                        None => {
                                            return self.err("missing ), unterminated comment", start);
                                        }
                                        Some(')') => break,
                                        _ => {}
                                    }
                                }
                                continue;
                            }
                            '=' | '!' | '<' => {
                                let mut ahead = true;
                                let mut c = char;
                                if c == '<' {
                                    match self.bump() {
                                        None => {
                                            return self.err("unexpected end of pattern", self.pos);
                                        }
                                        Some(d @ ('=' | '!')) => c = d,
                                        Some(d) => {
                                            return self.err(format!("unknown extension ?<{d}"), start + 1);
                                        }
                                    }
                                    ahead = false;
                                }
                                let p = self.parse_sub(flags, nested + 1)?;
                                if !self.eat(')') {
                                    return self.err("missing ), unterminated subpattern", start);
                                }
                                if !ahead {
                                    let (lo, hi) = width(&p);
                                    if Some(lo) != hi {
                                        return self.err("look-behind requires fixed-width pattern", start);
                                    }
                                }
                                seq.push(Node::Look { ahead, neg: c == '!', node: Box::new(p) });
                                continue;
                            }
                            '(' => {
                                let at = self.pos;
                                let condname = self.get_until(')', "group name")?;
                                let group = if is_identifier(&condname) {
                                    match self.group_by_name(&condname) {
                                        Some(g) => g,
                                        None => {
                                            return self.err(format!("unknown group name '{condname}'"), at);
                                        }
                                    }
                                } else {
                                    match condname.parse::<usize>() {
                                        Ok(0) => return self.err("bad group number", at),
                                        Ok(g) if condname.bytes().all(|b| b.is_ascii_digit()) => {
                                            self.cond_refs.push((g, at));
                                            g
                                        }
                                        _ => {
                                            return self.err(format!("bad character in group name '{condname}'"), at);
                                        }
                                    }
                                };
                                let yes = self.parse_seq(flags, false, nested + 1)?;
                                let no = if self.eat('|') {
                                    let n = self.parse_seq(flags, false, nested + 1)?;
                                    if self.peek() == Some('|') {
                                        return self.err("conditional backref with more than two branches", self.pos);
                                    }
                                    n
                                } else {
                                    Node::Empty
                                };
                                if !self.eat(')') {
                                    return self.err("missing ), unterminated subpattern", start);
                                }
                                seq.push(Node::Cond { group, yes: Box::new(yes), no: Box::new(no) });
                                continue;
                            }
                            '>' => {
                                capture = false;
                                kind = GroupKind::Atomic;
                            }
                            c if "iLmsxatu-".contains(c) => match self.parse_flags(c, start)? {
                                None => {
                                    if !first || !seq.is_empty() {
                                        return self.err("global flags not at the start of the expression", start);
                                    }
                                    flags = merge_global(flags, self.flags_global);
                                    continue;
                                }
                                Some((add, del)) => {
                                    capture = false;
                                    sub_flags = apply_flags(flags, add, del);
                                    let icase = if add.i {
                                        Some(true)
                                    } else if del.i {
                                        Some(false)
                                    } else {
                                        None
                                    };
                                    kind = GroupKind::Flags(icase);
                                }
                            },
                            c => return self.err(format!("unknown extension ?{c}"), start + 1),
                        }
                    }
                    let group = if capture {
                        if let Some(n) = &name
                            && let Some(old) = self.group_by_name(n)
                        {
                            return self.err(
                                format!(
                                    "redefinition of group name '{n}' as group {}; was group {old}",
                                    self.names.len()
                                ),
                                start,
                            );
                        }
                        let g = self.names.len();
                        self.names.push(name);
                        self.spans.push((start, usize::MAX));
                        self.open.push(g);
                        Some(g)
                    } else {
                        None
                    };
                    let p = self.parse_sub(sub_flags, nested + 1)?;
                    if !self.eat(')') {
                        return self.err("missing ), unterminated subpattern", start);
                    }
                    if let Some(g) = group {
                        self.open.retain(|&o| o != g);
                        self.spans[g].1 = self.pos - 1;
                        kind = GroupKind::Capture(g);
                    }
                    seq.push(Node::Group { kind, node: Box::new(p) });
                }
                c => seq.push(Node::Lit { c, icase: flags.i }),
            }
        }
        Ok(match seq.len() {
            0 => Node::Empty,
            1 => seq.pop().unwrap_or(Node::Empty),
            _ => Node::Cat(seq),
        })
    }
}

fn merge_global(mut f: Flags, g: Flags) -> Flags {
    f.i |= g.i;
    f.m |= g.m;
    f.s |= g.s;
    f.x |= g.x;
    f.a |= g.a;
    f
}

fn apply_flags(f: Flags, add: Flags, del: Flags) -> Flags {
    Flags {
        i: (f.i || add.i) && !del.i,
        m: (f.m || add.m) && !del.m,
        s: (f.s || add.s) && !del.s,
        x: (f.x || add.x) && !del.x,
        a: f.a || add.a,
    }
}

/// Python's one-char escapes (`ESCAPES`); `\b` is backspace only in a class.
fn simple_escape(c: char, in_class: bool) -> Option<char> {
    Some(match c {
        'a' => '\x07',
        'b' if in_class => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        _ => return None,
    })
}

/// A few `\N{...}` names; others are reported as unsupported.
fn unicode_name(name: &str) -> Option<char> {
    let n = name.to_ascii_uppercase();
    Some(match n.as_str() {
        "SPACE" => ' ',
        "NO-BREAK SPACE" => '\u{a0}',
        "LINE FEED" | "LF" => '\n',
        "CARRIAGE RETURN" | "CR" => '\r',
        "CHARACTER TABULATION" | "TAB" => '\t',
        "NULL" => '\0',
        "HYPHEN-MINUS" => '-',
        "FULL STOP" => '.',
        "COLON" => ':',
        "SOLIDUS" => '/',
        "REVERSE SOLIDUS" => '\\',
        "QUOTATION MARK" => '"',
        "APOSTROPHE" => '\'',
        _ => {
            if let Some(d) = n.strip_prefix("DIGIT ") {
                let ds = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"];
                let i = ds.iter().position(|x| *x == d)?;
                return char::from_digit(i as u32, 10);
            }
            if let Some(l) = n.strip_prefix("LATIN CAPITAL LETTER ")
                && l.len() == 1
            {
                return l.chars().next().filter(char::is_ascii_uppercase);
            }
            if let Some(l) = n.strip_prefix("LATIN SMALL LETTER ")
                && l.len() == 1
            {
                return l.chars().next().filter(char::is_ascii_uppercase).map(|c| c.to_ascii_lowercase());
            }
            return None;
        }
    })
}

/// Width (min, max) of a node in characters; None max = unbounded.
pub(crate) fn width(n: &Node) -> (u64, Option<u64>) {
    match n {
        Node::Empty
        | Node::Start { .. }
        | Node::End { .. }
        | Node::StartText
        | Node::EndText
        | Node::WordB { .. }
        | Node::Look { .. } => (0, Some(0)),
        Node::Lit { .. } | Node::Any { .. } | Node::Set(_) => (1, Some(1)),
        Node::Cat(v) => v.iter().fold((0, Some(0)), |(a, b), n| {
            let (c, d) = width(n);
            (a + c, b.zip(d).map(|(b, d)| b + d))
        }),
        Node::Alt(v) => {
            let mut lo = u64::MAX;
            let mut hi = Some(0);
            for n in v {
                let (c, d) = width(n);
                lo = lo.min(c);
                hi = hi.zip(d).map(|(h, d): (u64, u64)| h.max(d));
            }
            (if v.is_empty() { 0 } else { lo }, hi)
        }
        Node::Group { node, .. } => width(node),
        Node::Repeat { node, min, max, .. } => {
            let (c, d) = width(node);
            (c.saturating_mul(*min as u64), max.and_then(|m| d.map(|d| d.saturating_mul(m as u64))))
        }
        Node::Backref(_) => (0, None),
        Node::Cond { yes, no, .. } => {
            let (a, b) = width(yes);
            let (c, d) = width(no);
            (a.min(c), b.zip(d).map(|(b, d)| b.max(d)))
        }
    }
}

/// Parses a Python `re` pattern (str pattern, no compile flags besides
/// `MULTILINE` when `multiline`).
pub(crate) fn parse(s: &str, multiline: bool) -> Result<Parsed, PyError> {
    let mut p = Parser {
        s,
        pos: 0,
        flags_global: Flags { m: multiline, ..Flags::default() },
        names: vec![None],
        spans: vec![(0, s.len())],
        open: Vec::new(),
        cond_refs: Vec::new(),
    };
    let flags = p.flags_global;
    let node = p.parse_sub(flags, 0)?;
    if p.pos < s.len() {
        return Err(PyError { msg: "unbalanced parenthesis".into(), pos: p.pos });
    }
    for &(g, at) in &p.cond_refs {
        if g >= p.names.len() {
            return Err(PyError { msg: format!("invalid group reference {g}"), pos: at });
        }
    }
    Ok(Parsed { node, names: p.names, spans: p.spans, global: p.flags_global })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Parsed {
        parse(s, false).unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
    }
    fn bad(s: &str) -> String {
        match parse(s, false) {
            Ok(p) => panic!("{s:?} parsed: {:?}", p.node),
            Err(e) => e.msg,
        }
    }

    #[test]
    fn accepts_and_rejects_like_python() {
        for s in [
            "a*+",
            "(?>a)",
            "(?i)(?s)a",
            "[]a]",
            "[^]a]",
            "x{,3}",
            "x{}",
            "x{a}",
            r"\<",
            r"[\b]",
            r"(a)\1",
            r"\012",
            r"[\1]",
            "(?x) a # c\n b",
            "(a)?(?(1)b|c)",
            r"(?a)\w",
            r"(?u)\w",
            "(?-i:a)",
            "(?#comment)x",
            r"\N{DIGIT ONE}",
            "[a-]",
            "(?<=ab|cd)",
            "a{1,}",
            "a{,}",
            r"(?P<n>a)(?P=n)",
            r"\-\:\ \/",
        ] {
            ok(s);
        }
        assert!(bad("(?i)a(?m)b").contains("global flags not at the start"));
        assert!(bad("a(?i)b").contains("global flags"));
        assert!(bad("{1}").contains("nothing to repeat"));
        assert!(bad("a{3,1}").contains("min repeat greater"));
        assert!(bad(r"\q").contains("bad escape"));
        assert!(bad(r"\1").contains("invalid group reference"));
        assert!(bad(r"(a)\10").contains("invalid group reference"));
        assert!(bad(r"\400").contains("octal escape"));
        assert!(bad(r"[\8]").contains("bad escape"));
        assert!(bad("(?(1)a|b)").contains("invalid group reference"));
        assert!(bad("(?L)a").contains("'L' flag"));
        assert!(bad("(?i-i:a)").contains("turned on and off"));
        assert!(bad("(?P<a-b>x)").contains("bad character in group name"));
        assert!(bad(r"[a-\d]").contains("bad character range"));
        assert!(bad(r"[\d-z]").contains("bad character range"));
        assert!(bad("[z-a]").contains("bad character range"));
        assert!(bad("(?<=a|bc)").contains("fixed-width"));
        assert!(bad("a**").contains("multiple repeat"));
        assert!(bad("(a").contains("missing )"));
        assert!(bad("a)").contains("unbalanced parenthesis"));
        assert!(bad("(?P<n>a)(?P<n>b)").contains("redefinition"));
        assert!(bad("^*").contains("nothing to repeat"));
        assert!(bad("[abc").contains("unterminated character set"));
        assert!(bad("\\").contains("bad escape"));
    }

    #[test]
    fn groups_and_names() {
        let p = ok("(a)(?P<x>b)(?:c)(?i:d)");
        assert_eq!(p.names, vec![None, None, Some("x".into())]);
        assert_eq!(p.spans[1], (0, 2));
    }

    #[test]
    fn class_first_bracket_and_ranges() {
        let p = ok("[]a-c-]");
        assert_eq!(
            p.node,
            Node::Set(Set {
                negated: false,
                items: vec![SetItem::Char(']'), SetItem::Range('a', 'c'), SetItem::Char('-')],
                icase: false
            })
        );
    }

    #[test]
    fn literal_brace_and_octal() {
        let p = ok("x{a");
        assert!(matches!(&p.node, Node::Cat(v) if v.len() == 3));
        let p = ok(r"\101");
        assert_eq!(p.node, Node::Lit { c: 'A', icase: false });
        let p = ok(r"\0");
        assert_eq!(p.node, Node::Lit { c: '\0', icase: false });
    }
}
