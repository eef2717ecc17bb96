//! The exposition as data ([`Family`]: what a Prometheus client library's
//! encoder writes), built by [`Encoder`], and its Prometheus text format
//! 0.0.4: `# HELP`/`# TYPE` lines, then samples, with label values and help
//! text escaped as the format says.
//!
//! The agent serves the families through the `prometheus-client` crate
//! (`watchtrace::exposition`, text 0.0.4 and OpenMetrics); this writer is
//! the core's own reading of them, for replays, tests and benchmarks, which
//! must not pull that crate in (its `parking_lot` needs `libc`).

use std::fmt::Write as _;

use crate::model::Buckets;
#[cfg(test)]
use crate::model::Histogram;

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
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

/// One metric family: its name (a counter's ends with `_total`), help,
/// type and samples, in exposition order.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

/// One labelled value of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A count (exact past 2^53).
    U64(u64),
    F64(f64),
    /// `buckets`: `(upper bound, cumulative count)`, ending with `+Inf`.
    Histogram {
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    },
}

/// Builds the families, in order.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    families: Vec<Family>,
}

impl Encoder {
    /// Starts a family; the samples that follow are its.
    pub(crate) fn family(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
    }

    fn push(&mut self, name: &str, labels: &[(&'static str, &str)], value: Value) {
        let family = self
            .families
            .last_mut()
            .expect("a sample follows its family");
        debug_assert_eq!(family.name, name, "a sample of another family");
        family.samples.push(Sample {
            labels: labels.iter().map(|&(k, v)| (k, v.to_owned())).collect(),
            value,
        });
    }

    /// One sample.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&'static str, &str)], value: f64) {
        self.push(name, labels, Value::F64(value));
    }

    /// An integer sample (counts stay exact past 2^53).
    pub(crate) fn sample_u64(&mut self, name: &str, labels: &[(&'static str, &str)], value: u64) {
        self.push(name, labels, Value::U64(value));
    }

    /// A histogram's buckets (cumulative, ending with `+Inf`), sum (in
    /// seconds) and count.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&'static str, &str)],
        h: &impl Buckets,
    ) {
        let value = Value::Histogram {
            buckets: h.cumulative().collect(),
            sum: h.sum(),
            count: h.count(),
        };
        self.push(name, labels, value);
    }

    pub(crate) fn finish(self) -> Vec<Family> {
        self.families
    }
}

/// The families as text format 0.0.4.
pub(crate) fn write(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let help = f.help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(out, "# HELP {} {help}", f.name);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for s in &f.samples {
            match &s.value {
                Value::U64(v) => {
                    line(&mut out, f.name, "", &s.labels, None);
                    let _ = writeln!(out, " {v}");
                }
                Value::F64(v) => {
                    line(&mut out, f.name, "", &s.labels, None);
                    let _ = writeln!(out, " {}", format_value(*v));
                }
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for (le, n) in buckets {
                        let le = format_value(*le);
                        line(&mut out, f.name, "_bucket", &s.labels, Some(&le));
                        let _ = writeln!(out, " {n}");
                    }
                    line(&mut out, f.name, "_sum", &s.labels, None);
                    let _ = writeln!(out, " {}", format_value(*sum));
                    line(&mut out, f.name, "_count", &s.labels, None);
                    let _ = writeln!(out, " {count}");
                }
            }
        }
    }
    out
}

/// A sample line's name and labels.
fn line(out: &mut String, name: &str, suffix: &str, labels: &[(&str, String)], le: Option<&str>) {
    out.push_str(name);
    out.push_str(suffix);
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let all = labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(le.map(|le| ("le", le)));
    for (i, (name, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
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
            write(&e.finish()),
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
        e.family("h_seconds", Kind::Histogram, "h");
        e.histogram("h_seconds", &[("resource", "pods")], &h);
        let text = write(&e.finish());
        let lines: Vec<&str> = text.lines().skip(2).collect();
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
