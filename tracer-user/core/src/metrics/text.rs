//! Prometheus text exposition format 0.0.4: `# HELP`/`# TYPE` lines, then
//! samples, with label values and help text escaped as the format says.

use std::fmt::Write as _;

use crate::model::Buckets;
#[cfg(test)]
use crate::model::Histogram;

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Builds one exposition.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    out: String,
}

impl Encoder {
    /// Starts a family: its HELP and TYPE lines.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// An integer sample (counts stay exact past 2^53).
    pub(crate) fn sample_u64(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram's `_bucket` lines (cumulative, ending with `+Inf`),
    /// `_sum` (seconds) and `_count`.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &impl Buckets) {
        for (le, count) in h.cumulative() {
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&format_value(le)));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum());
        self.sample_u64(&format!("{name}_count"), labels, h.count());
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (name, value)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_label_value(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
}

/// A float as the format spells it: `+Inf`, `-Inf`, `NaN`, else the
/// shortest decimal that reads back exactly.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Encoder::default();
        e.family("m_total", Kind::Counter, "a \\ help\nline");
        e.sample_u64("m_total", &[("client", "a\"b\\c\nd")], 3);
        assert_eq!(
            e.finish(),
            "# HELP m_total a \\\\ help\\nline\n# TYPE m_total counter\nm_total{client=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
    }

    #[test]
    fn special_floats() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.0025), "0.0025");
        assert_eq!(format_value(1.0), "1");
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        let mut h = Histogram::default();
        h.observe_ns(2_000_000);
        let mut e = Encoder::default();
        e.histogram("h_seconds", &[("resource", "pods")], &h);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "h_seconds_bucket{resource=\"pods\",le=\"0.001\"} 0"
        );
        assert_eq!(
            lines[1],
            "h_seconds_bucket{resource=\"pods\",le=\"0.0025\"} 1"
        );
        assert_eq!(
            lines[15],
            "h_seconds_bucket{resource=\"pods\",le=\"+Inf\"} 1"
        );
        assert_eq!(lines[16], "h_seconds_sum{resource=\"pods\"} 0.002");
        assert_eq!(lines[17], "h_seconds_count{resource=\"pods\"} 1");
    }
}
