//! Query strings decoded the way kube-apiserver (Go's `url.ParseQuery`)
//! decodes them, so that our reading of a request matches the server's.

use std::borrow::Cow;

/// The decoded `key=value` pairs of a query string, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Splits on `&` and percent-decodes keys and values (`+` is a space).
    ///
    /// Like Go, a pair whose key holds `;` or whose escapes are invalid is
    /// dropped rather than guessed at: the server drops it too.
    pub(crate) fn parse(query: &str) -> Self {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k.contains(';') {
                    return None;
                }
                Some((
                    percent_decode(k)?.into_owned(),
                    percent_decode(v)?.into_owned(),
                ))
            })
            .collect();
        Self { pairs }
    }

    /// The first value of `key`: Go's conversion functions read `[0]`.
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `Convert_Slice_string_To_bool` of apimachinery: the first value,
/// lowercased, is false only if it is `0` or `false`; so `watch=` and
/// `watch=yes` are true.
pub(crate) fn go_bool(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    v != "0" && v != "false"
}

/// Percent-decodes one query component; `+` means space. `None` on an
/// invalid escape. Bytes that are not UTF-8 are replaced (a Go string may
/// hold them, a Rust one may not; none of the parameters we read are binary).
pub(crate) fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        assert_eq!(
            percent_decode("metadata.name%3Ddefault-token-pkdz9").as_deref(),
            Some("metadata.name=default-token-pkdz9")
        );
        assert_eq!(percent_decode("a+b%2Bc").as_deref(), Some("a b+c"));
        // Invalid escapes make Go drop the pair.
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn first_value_wins_and_bare_keys_count() {
        let q = QueryParams::parse("watch&watch=false&x=1&bad=%zz&k;x=1");
        assert_eq!(q.first("watch"), Some(""));
        assert_eq!(q.first("x"), Some("1"));
        assert_eq!(q.first("bad"), None);
        assert_eq!(q.first("k;x"), None);
        assert_eq!(q.first("missing"), None);
    }

    #[test]
    fn go_bool_matches_convert_slice_string_to_bool() {
        for t in ["", "1", "true", "TRUE", "yes"] {
            assert!(go_bool(t), "{t:?}");
        }
        for f in ["0", "false", "False", "FALSE"] {
            assert!(!go_bool(f), "{f:?}");
        }
    }
}
