//! The HPACK static table ([RFC 7541 Appendix A]): indices 1 to 61.
//!
//! [RFC 7541 Appendix A]: https://www.rfc-editor.org/rfc/rfc7541#appendix-A

/// Number of static entries; dynamic indices start right after.
pub(crate) const STATIC_LEN: usize = 61;

/// `(name, value)` for index `i` at position `i - 1`.
pub(crate) static STATIC_TABLE: [(&[u8], &[u8]); STATIC_LEN] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: the indices the RFC 7541 appendix C examples rely on map to
    // the right entries (a shifted table would break every one of them).
    #[test]
    fn spot_checks_from_rfc_examples() {
        let at = |i: usize| STATIC_TABLE[i - 1];
        assert_eq!(at(1), (&b":authority"[..], &b""[..]));
        assert_eq!(at(2), (&b":method"[..], &b"GET"[..]));
        assert_eq!(at(8), (&b":status"[..], &b"200"[..]));
        assert_eq!(at(24).0, b"cache-control");
        assert_eq!(at(33).0, b"date");
        assert_eq!(at(46).0, b"location");
        assert_eq!(at(55).0, b"set-cookie");
        assert_eq!(at(61).0, b"www-authenticate");
    }
}
