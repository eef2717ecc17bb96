//! `/metrics` through the `prometheus-client` crate: a registry holding one
//! collector that, on each scrape, reads the live model's families
//! ([`crate::metrics::families`]) and hands them to the crate's encoders,
//! Prometheus text 0.0.4 or OpenMetrics 1.0.0 as the scraper asks.
//!
//! The families stay the model's own (its histograms' buckets, bounded
//! label sets and counters present at 0 from the start): the crate's
//! `Counter`/`Family`/`Histogram` types would keep a second copy of every
//! value, updated beside the model's, with unbounded label sets.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet, prometheus_text, text},
    metrics::MetricType,
    registry::Registry,
};

use crate::{
    metrics::{self, Family, Kind, Value},
    metrics_server::Format,
    model::Model,
};

/// The `Content-Type` of OpenMetrics text, the version the crate writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry `/metrics` is encoded from.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// Serves `model`'s families.
    pub fn new(model: Arc<Mutex<Model>>) -> Self {
        Self::of(move || {
            let model = model.lock().unwrap_or_else(PoisonError::into_inner);
            metrics::families(&model)
        })
    }

    /// Serves what `families` returns at each scrape.
    pub fn of(families: impl Fn() -> Vec<Family> + Send + Sync + 'static) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ModelCollector(Box::new(families))));
        Self { registry }
    }

    /// The body in `format`, and its `Content-Type`.
    pub fn render(&self, format: Format) -> (&'static str, String) {
        let mut out = String::new();
        let written = match format {
            Format::Text => prometheus_text::encode(&mut out, &self.registry),
            Format::OpenMetrics => text::encode(&mut out, &self.registry),
        };
        // Writing to a String fails only if a collector does, and ours
        // returns the encoder's own errors (none for a String).
        if let Err(e) = written {
            tracing::warn!("encoding /metrics: {e}");
        }
        let content_type = match format {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        };
        (content_type, out)
    }
}

/// Encodes the families of one scrape.
struct ModelCollector(Box<dyn Fn() -> Vec<Family> + Send + Sync>);

impl std::fmt::Debug for ModelCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelCollector")
    }
}

impl Collector for ModelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in (self.0)() {
            let (name, metric_type) = match family.kind {
                // The crate appends `_total` to a counter's name.
                Kind::Counter => (
                    family.name.strip_suffix("_total").unwrap_or(family.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (family.name, MetricType::Gauge),
                Kind::Histogram => (family.name, MetricType::Histogram),
            };
            let mut descriptor = encoder.encode_descriptor(name, family.help, None, metric_type)?;
            for sample in &family.samples {
                let labels: Vec<(&str, &str)> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                if labels.is_empty() {
                    encode_value(&mut descriptor, family.kind, &sample.value)?;
                } else {
                    let mut child = descriptor.encode_family(&labels)?;
                    encode_value(&mut child, family.kind, &sample.value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    encoder: &mut MetricEncoder<'_>,
    kind: Kind,
    value: &Value,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (Kind::Counter, Value::U64(v)) => encoder.encode_counter::<NoLabelSet, _, u64>(v, None),
        (Kind::Counter, Value::F64(v)) => encoder.encode_counter::<NoLabelSet, _, f64>(v, None),
        (_, Value::U64(v)) => encoder.encode_gauge(v),
        (_, Value::F64(v)) => encoder.encode_gauge(v),
        (
            _,
            Value::Histogram {
                buckets,
                sum,
                count,
            },
        ) => {
            // The crate takes each bucket's own count and sums them itself.
            let mut below = 0;
            let own: Vec<(f64, u64)> = buckets
                .iter()
                .map(|&(le, cumulative)| {
                    let n = cumulative.saturating_sub(below);
                    below = cumulative;
                    (le, n)
                })
                .collect();
            encoder.encode_histogram::<NoLabelSet>(*sum, *count, &own, None)
        }
    }
}
