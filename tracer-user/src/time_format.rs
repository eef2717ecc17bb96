//! How the JSON lines spell their Unix-epoch timestamps (`--time-format`).
//! Epoch nanoseconds are above 2^53: jq and JavaScript read numbers as
//! doubles and round them by up to a few hundred ns. `ns-string` and
//! `rfc3339` keep every digit. Durations (`*_ns`) stay integers in every
//! format: they are far below 2^53.

use std::io;

use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;

use crate::rfc3339;

/// The spelling of timestamps in JSON lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum TimeFormat {
    /// Integers: Unix epoch ns (exact in Rust, Go, Python; rounded by jq).
    #[default]
    Ns,
    /// The same ns as decimal strings: `"1796562716869946239"`.
    NsString,
    /// RFC 3339 in UTC with nine fractional digits:
    /// `"2026-12-06T13:05:45.123456789Z"`.
    Rfc3339,
}

/// Integers from here on are timestamps, not small counters that happen to
/// sit under a timestamp-like key (1e15 ns is 1970-01-12).
const MIN_EPOCH_NS: u64 = 1_000_000_000_000_000;

/// Whether `key` names a Unix-epoch timestamp in the JSON lines: `ts`,
/// `start`, and the `t_*` instants (docs/events.md).
fn is_time_key(key: &str) -> bool {
    key == "ts" || key == "start" || key.starts_with("t_")
}

/// Writes `value` as one JSON value (no newline) with its timestamps in
/// `format`.
pub fn write_json(
    out: &mut impl io::Write,
    value: &impl Serialize,
    format: TimeFormat,
) -> io::Result<()> {
    if format == TimeFormat::Ns {
        // The default pays nothing for the option.
        return serde_json::to_writer(out, value).map_err(io::Error::from);
    }
    let mut v = serde_json::to_value(value).map_err(io::Error::from)?;
    respell(&mut v, format);
    serde_json::to_writer(out, &v).map_err(io::Error::from)
}

fn respell(v: &mut Value, format: TimeFormat) {
    match v {
        Value::Object(map) => {
            for (key, x) in map.iter_mut() {
                match x.as_u64() {
                    Some(ns) if is_time_key(key) && ns >= MIN_EPOCH_NS => {
                        *x = Value::String(match format {
                            TimeFormat::Rfc3339 => rfc3339::format(ns),
                            TimeFormat::NsString | TimeFormat::Ns => ns.to_string(),
                        });
                    }
                    _ => respell(x, format),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| respell(x, format)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: TimeFormat) -> String {
        let v = serde_json::json!({
            "kind": "watch_event",
            "ts": 1_796_562_716_869_946_239u64,
            "bytes": 1_796_562_716_869_946_239u64,
            "duration_ns": 7_500_049_955u64,
            "timeline": {"t_source": 1_796_562_716_000_000_001u64, "t_acked": null, "flaps": 3},
            "held": [{"stream": 5, "t_sent": 1_796_562_716_000_000_002u64}],
        });
        let mut out = Vec::new();
        write_json(&mut out, &v, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_are_respelled_and_nothing_else() {
        let ns = line(TimeFormat::Ns);
        assert!(ns.contains(r#""ts":1796562716869946239"#), "{ns}");
        let s = line(TimeFormat::NsString);
        assert!(s.contains(r#""ts":"1796562716869946239""#), "{s}");
        assert!(s.contains(r#""t_source":"1796562716000000001""#), "{s}");
        assert!(s.contains(r#""t_sent":"1796562716000000002""#), "{s}");
        let r = line(TimeFormat::Rfc3339);
        assert!(
            r.contains(r#""ts":"2026-12-06T13:11:56.869946239Z""#),
            "{r}"
        );
        assert!(
            r.contains(r#""t_source":"2026-12-06T13:11:56.000000001Z""#),
            "{r}"
        );
        for out in [&s, &r] {
            // A count under another key, a duration, and null stay.
            assert!(out.contains(r#""bytes":1796562716869946239"#), "{out}");
            assert!(out.contains(r#""duration_ns":7500049955"#), "{out}");
            assert!(out.contains(r#""t_acked":null"#), "{out}");
            assert!(out.contains(r#""flaps":3"#), "{out}");
        }
    }
}
