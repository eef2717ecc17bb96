//! Short, fixed-style text for the live view's cells: rates, sizes,
//! durations and times of day. Pure.

use crate::model::Delay;

/// A rate or count with a decimal suffix: `0`, `950`, `12.3K`, `4.56M`.
/// Decimal (not binary) so bytes/s and events/s read alike.
pub(crate) fn si(value: f64) -> String {
    let v = if value.is_finite() {
        value.max(0.0)
    } else {
        0.0
    };
    if v < 1.0 && v > 0.0 {
        return format!("{v:.2}");
    }
    if v < 1_000.0 {
        return format!("{:.0}", v.floor());
    }
    let (scaled, unit) = if v < 1e6 {
        (v / 1e3, "K")
    } else if v < 1e9 {
        (v / 1e6, "M")
    } else if v < 1e12 {
        (v / 1e9, "G")
    } else {
        (v / 1e12, "T")
    };
    if scaled < 10.0 {
        format!("{scaled:.2}{unit}")
    } else if scaled < 100.0 {
        format!("{scaled:.1}{unit}")
    } else {
        format!("{scaled:.0}{unit}")
    }
}

/// A byte count: `0B`, `950B`, `12.3KB`.
pub(crate) fn bytes(n: u64) -> String {
    format!("{}B", si(n as f64))
}

/// A duration in nanoseconds: `0`, `850µs`, `12.3ms`, `300ms`, `1.20s`,
/// `125s`.
pub(crate) fn duration_ns(ns: u64) -> String {
    match ns {
        0 => "0".to_owned(),
        1..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}µs", ns / 1_000),
        1_000_000..10_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        10_000_000..100_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        100_000_000..1_000_000_000 => format!("{}ms", ns / 1_000_000),
        1_000_000_000..100_000_000_000 => format!("{:.2}s", ns as f64 / 1e9),
        _ => format!("{}s", ns / 1_000_000_000),
    }
}

/// A P99 delivery delay: `1.20s`, or `≥1.20s` when it is a lower bound
/// (some of its events were still unacknowledged at the ack deadline).
pub(crate) fn delay(d: Delay) -> String {
    let text = duration_ns(d.ns);
    if d.at_least {
        format!("≥{text}")
    } else {
        text
    }
}

/// The UTC time of day of a Unix-epoch instant, `HH:MM:SS.mmm`.
pub fn clock(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let secs = ms / 1_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        ms % 1_000
    )
}

/// `value`, or `-` when unknown.
pub(crate) fn or_dash<T>(value: Option<T>, f: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_three_significant_digits() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(0.5), "0.50");
        assert_eq!(si(999.9), "999");
        assert_eq!(si(1_000.0), "1.00K");
        assert_eq!(si(12_345.0), "12.3K");
        assert_eq!(si(456_789.0), "457K");
        assert_eq!(si(4_560_000.0), "4.56M");
        assert_eq!(si(2.5e9), "2.50G");
        assert_eq!(si(f64::NAN), "0");
        assert_eq!(si(-3.0), "0");
        assert_eq!(bytes(2048), "2.05KB");
    }

    #[test]
    fn durations_pick_the_unit_that_reads_best() {
        assert_eq!(duration_ns(0), "0");
        assert_eq!(duration_ns(999), "999ns");
        assert_eq!(duration_ns(850_000), "850µs");
        assert_eq!(duration_ns(1_234_567), "1.23ms");
        assert_eq!(duration_ns(12_340_000), "12.3ms");
        assert_eq!(duration_ns(300_000_000), "300ms");
        assert_eq!(duration_ns(1_200_000_000), "1.20s");
        assert_eq!(duration_ns(125_000_000_000), "125s");
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        // 2024-01-02T03:04:05.678Z
        assert_eq!(clock(1_704_164_645_678_000_000), "03:04:05.678");
        assert_eq!(or_dash(None::<u32>, |v| v.to_string()), "-");
        assert_eq!(or_dash(Some(7u32), |v| v.to_string()), "7");
    }
}
