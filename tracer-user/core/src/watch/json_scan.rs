//! A minimal JSON cursor: read the few strings and numbers we want, skip
//! every other value without building it, and (separately) validate a whole
//! document strictly.
//!
//! Object contents are never copied: skipped values are only stepped over,
//! and the strings kept are metadata the caller chooses.

use memchr::memchr;

/// The input is not the JSON we expected (or not JSON at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

pub(crate) type Res<T> = Result<T, Invalid>;

/// A JSON string as it appears between its quotes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawStr<'a> {
    pub(crate) raw: &'a [u8],
    /// Holds at least one backslash escape, so `raw` is not the value.
    pub(crate) escaped: bool,
}

impl RawStr<'_> {
    /// Compares the decoded value with `lit`.
    pub(crate) fn eq(&self, lit: &[u8]) -> bool {
        if self.escaped {
            let mut s = String::new();
            unescape(self.raw, &mut s).is_ok() && s.as_bytes() == lit
        } else {
            self.raw == lit
        }
    }

    /// The decoded value, inline when short (no allocation).
    pub(crate) fn decode_meta(&self) -> Res<crate::watch::event::MetaString> {
        if self.escaped {
            self.decode().map(Into::into)
        } else {
            std::str::from_utf8(self.raw)
                .map(Into::into)
                .map_err(|_| Invalid)
        }
    }

    /// The decoded value.
    pub(crate) fn decode(&self) -> Res<String> {
        if self.escaped {
            let mut s = String::with_capacity(self.raw.len());
            unescape(self.raw, &mut s)?;
            Ok(s)
        } else {
            std::str::from_utf8(self.raw)
                .map(str::to_owned)
                .map_err(|_| Invalid)
        }
    }
}

/// A position in a JSON document.
pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Consumes `c` after optional whitespace.
    pub(crate) fn eat(&mut self, c: u8) -> Res<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Reads a string; the cursor must be at its opening quote.
    pub(crate) fn string(&mut self) -> Res<RawStr<'a>> {
        if self.peek() != Some(b'"') {
            return Err(Invalid);
        }
        let start = self.i + 1;
        let end = string_end(self.b, start)?;
        self.i = end + 1;
        let raw = &self.b[start..end];
        Ok(RawStr {
            raw,
            escaped: raw.contains(&b'\\'),
        })
    }

    /// Reads a value that should be a string; any other value is skipped
    /// and gives `None` (so `"namespace":null` reads as absent).
    pub(crate) fn string_or_skip(&mut self) -> Res<Option<RawStr<'a>>> {
        self.ws();
        if self.peek() == Some(b'"') {
            self.string().map(Some)
        } else {
            self.skip_value().map(|()| None)
        }
    }

    /// Reads an integer; other values (fractions, strings, ...) are skipped
    /// and give `None`.
    pub(crate) fn int_or_skip(&mut self) -> Res<Option<i64>> {
        self.ws();
        let start = self.i;
        self.skip_value()?;
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| Invalid)?;
        Ok(text.trim_end().parse().ok())
    }

    /// Steps over one value of any type. Lenient: it counts brackets and
    /// honours strings, but does not check the grammar inside containers;
    /// framing is by newline, so a malformed inside cannot mislead framing.
    pub(crate) fn skip_value(&mut self) -> Res<()> {
        self.ws();
        match self.peek().ok_or(Invalid)? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek().ok_or(Invalid)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // Number or literal: runs until a delimiter.
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    Err(Invalid)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Index of the closing quote of a string whose content starts at `from`.
fn string_end(b: &[u8], mut from: usize) -> Res<usize> {
    loop {
        let q = from + memchr(b'"', &b[from..]).ok_or(Invalid)?;
        // The quote is escaped iff an odd number of backslashes precede it.
        let backslashes = b[from..q].iter().rev().take_while(|&&c| c == b'\\').count();
        if backslashes % 2 == 0 {
            return Ok(q);
        }
        from = q + 1;
    }
}

/// Decodes a string body with escapes (including `\u` surrogate pairs).
pub(crate) fn unescape(raw: &[u8], out: &mut String) -> Res<()> {
    let mut i = 0;
    let mut bytes = Vec::with_capacity(raw.len());
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            bytes.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(Invalid)?;
        i += 2;
        let simple = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4).ok_or(Invalid)?)?;
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by `\u` low surrogate.
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return Err(Invalid);
                    }
                    let lo = hex4(raw.get(i + 2..i + 6).ok_or(Invalid)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(Invalid);
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                let ch = char::from_u32(cp).ok_or(Invalid)?;
                let mut tmp = [0u8; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                continue;
            }
            _ => return Err(Invalid),
        };
        bytes.push(simple);
    }
    out.push_str(std::str::from_utf8(&bytes).map_err(|_| Invalid)?);
    Ok(())
}

fn hex4(h: &[u8]) -> Res<u32> {
    h.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16).ok_or(Invalid)?;
        Ok(acc << 4 | d)
    })
}

/// Nesting deeper than this is refused; Go's decoder stops at 10000.
const MAX_DEPTH: usize = 10_000;

/// Whether `b` is exactly one JSON value (whitespace around allowed),
/// checked against the full grammar. Used to accept a boundary guessed at a
/// position not preceded by a newline, where a lenient read could be fooled
/// by a nested `{"type":"...` object.
pub(crate) fn is_single_value(b: &[u8]) -> bool {
    strict(b).is_ok()
}

fn strict(b: &[u8]) -> Res<()> {
    let mut c = Cursor::new(b);
    // Open containers, innermost last: `{` or `[`.
    let mut stack: Vec<u8> = Vec::new();
    'value: loop {
        c.ws();
        match c.peek().ok_or(Invalid)? {
            b'{' => {
                c.i += 1;
                c.ws();
                if c.peek() == Some(b'}') {
                    c.i += 1;
                } else {
                    stack.push(b'{');
                    if stack.len() > MAX_DEPTH {
                        return Err(Invalid);
                    }
                    strict_key(&mut c)?;
                    continue 'value;
                }
            }
            b'[' => {
                c.i += 1;
                c.ws();
                if c.peek() == Some(b']') {
                    c.i += 1;
                } else {
                    stack.push(b'[');
                    if stack.len() > MAX_DEPTH {
                        return Err(Invalid);
                    }
                    continue 'value;
                }
            }
            b'"' => strict_string(&mut c)?,
            b't' => literal(&mut c, b"true")?,
            b'f' => literal(&mut c, b"false")?,
            b'n' => literal(&mut c, b"null")?,
            b'-' | b'0'..=b'9' => strict_number(&mut c)?,
            _ => return Err(Invalid),
        }
        // After a complete value: close containers or move to the next item.
        loop {
            c.ws();
            let Some(&open) = stack.last() else {
                return if c.i == b.len() { Ok(()) } else { Err(Invalid) };
            };
            let next = c.peek().ok_or(Invalid)?;
            c.i += 1;
            match (open, next) {
                (b'{', b',') => {
                    c.ws();
                    strict_key(&mut c)?;
                    continue 'value;
                }
                (b'[', b',') => continue 'value,
                (b'{', b'}') | (b'[', b']') => {
                    stack.pop();
                }
                _ => return Err(Invalid),
            }
        }
    }
}

fn strict_key(c: &mut Cursor<'_>) -> Res<()> {
    strict_string(c)?;
    c.eat(b':')
}

fn strict_string(c: &mut Cursor<'_>) -> Res<()> {
    let s = c.string()?;
    if s.raw.iter().any(|&b| b < 0x20) {
        return Err(Invalid);
    }
    if s.escaped {
        unescape(s.raw, &mut String::new())?;
    } else {
        std::str::from_utf8(s.raw).map_err(|_| Invalid)?;
    }
    Ok(())
}

fn literal(c: &mut Cursor<'_>, lit: &[u8]) -> Res<()> {
    if c.b[c.i..].starts_with(lit) {
        c.i += lit.len();
        Ok(())
    } else {
        Err(Invalid)
    }
}

fn strict_number(c: &mut Cursor<'_>) -> Res<()> {
    let digits = |c: &mut Cursor<'_>| {
        let s = c.i;
        while c.peek().is_some_and(|d| d.is_ascii_digit()) {
            c.i += 1;
        }
        if c.i > s { Ok(()) } else { Err(Invalid) }
    };
    if c.peek() == Some(b'-') {
        c.i += 1;
    }
    if c.peek() == Some(b'0') {
        c.i += 1;
    } else {
        digits(c)?;
    }
    if c.peek() == Some(b'.') {
        c.i += 1;
        digits(c)?;
    }
    if let Some(b'e' | b'E') = c.peek() {
        c.i += 1;
        if let Some(b'+' | b'-') = c.peek() {
            c.i += 1;
        }
        digits(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_nested_values_and_escaped_quotes() {
        let doc = br#"{"a":[1,{"b":"x\"}]"}],"c":"\\"} tail"#;
        let mut c = Cursor::new(doc);
        c.skip_value().unwrap();
        assert_eq!(&doc[c.i..], b" tail");
    }

    #[test]
    fn skips_scalars() {
        for (doc, rest) in [
            (&b"123,x"[..], &b",x"[..]),
            (b"-1.5e3}", b"}"),
            (b"true]", b"]"),
            (b"null", b""),
        ] {
            let mut c = Cursor::new(doc);
            c.skip_value().unwrap();
            assert_eq!(&doc[c.i..], rest);
        }
        assert!(Cursor::new(b"").skip_value().is_err());
        assert!(Cursor::new(b"{\"a\":1").skip_value().is_err());
        assert!(Cursor::new(b"\"open").skip_value().is_err());
    }

    #[test]
    fn unescapes_all_forms() {
        let mut s = String::new();
        unescape(br#"a\"b\\c\/d\n\u00e9\ud83d\ude00"#, &mut s).unwrap();
        assert_eq!(s, "a\"b\\c/d\n\u{e9}\u{1f600}");
        assert!(unescape(br"\x", &mut String::new()).is_err());
        assert!(unescape(br"\ud83d", &mut String::new()).is_err());
        assert!(unescape(br"\u12", &mut String::new()).is_err());
    }

    #[test]
    fn raw_str_compares_decoded() {
        let mut c = Cursor::new(br#""k8s.io\/initial-events-end""#);
        let s = c.string().unwrap();
        assert!(s.escaped);
        assert!(s.eq(b"k8s.io/initial-events-end"));
        assert_eq!(s.decode().unwrap(), "k8s.io/initial-events-end");
    }

    #[test]
    fn ints() {
        let mut c = Cursor::new(b"410,");
        assert_eq!(c.int_or_skip().unwrap(), Some(410));
        let mut c = Cursor::new(b"4.5}");
        assert_eq!(c.int_or_skip().unwrap(), None);
        let mut c = Cursor::new(br#""410"}"#);
        assert_eq!(c.int_or_skip().unwrap(), None);
    }

    #[test]
    fn strict_validation() {
        for ok in [
            &br#"{"type":"ADDED","object":{"a":[1,2.5,-0,1e9,true,false,null,{}],"b":[]}}"#[..],
            b"  {}  ",
            b"[]",
            b"\"x\"",
            b"0",
        ] {
            assert!(is_single_value(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &br#"{"type":"Ready","status":"True"}],"hostIP":"1.2.3.4"}}"#[..],
            b"{]",
            b"{\"a\"}",
            b"{\"a\":}",
            b"[1,]",
            b"{\"a\":1,}",
            b"01",
            b"1.",
            b"{} {}",
            b"\"tab\there\"",
            b"",
            b"tru",
        ] {
            assert!(!is_single_value(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn strict_depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        assert!(!is_single_value(deep.as_bytes()));
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(is_single_value(ok.as_bytes()));
    }
}
