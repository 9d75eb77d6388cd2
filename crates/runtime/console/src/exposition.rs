//! One scrape's metrics, built from the figures a part already keeps and encoded in the
//! OpenMetrics text format by `prometheus-client`.
//!
//! A [`Scrape`] is built afresh for every request from a snapshot of the part's state (the
//! same snapshot its status line and `bulwark client status` read), so the exposition can never
//! disagree with them. Names follow the Prometheus conventions: the `bulwark_` prefix, base units
//! (seconds, not milliseconds) as a name suffix, `_total` on counters (added by the encoder), and
//! histograms with `_bucket`/`_sum`/`_count` for latencies.
//!
//! Label values are only ever bounded sets (reason and kind names, committee members, configured
//! underlyings): never free text a peer or client chose.

use bulwark_api::stats::{LatencyHistogram, LATENCY_BOUNDS_US};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`Scrape::render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label pairs of one sample, e.g. `[("reason", "stale_nonce")]`.
pub type Labels = Vec<(String, String)>;

/// A histogram ready to encode: bounds in seconds with non-cumulative counts.
#[derive(Debug)]
struct Buckets {
    sum_seconds: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for Buckets {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum_seconds, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl From<&LatencyHistogram> for Buckets {
    fn from(histogram: &LatencyHistogram) -> Self {
        let buckets = LATENCY_BOUNDS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(histogram.counts().iter().copied())
            .collect();
        Self {
            sum_seconds: histogram.sum_us() as f64 / 1e6,
            count: histogram.count(),
            buckets,
        }
    }
}

/// Samples of one metric family, each under its own labels.
#[derive(Debug)]
struct Family<T> {
    kind: MetricType,
    samples: Vec<(Labels, T)>,
}

/// A value either kind of sample can carry (`u64` counts, `f64` figures).
trait Sample:
    prometheus_client::encoding::EncodeCounterValue
    + prometheus_client::encoding::EncodeGaugeValue
    + Copy
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl Sample for f64 {}
impl Sample for u64 {}

impl<T: Sample> EncodeMetric for Family<T> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        if let [(labels, value)] = self.samples.as_slice() {
            if labels.is_empty() {
                return match self.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(encoder),
                    _ => ConstGauge::new(*value).encode(encoder),
                };
            }
        }
        for (labels, value) in &self.samples {
            let sample = encoder.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
                _ => ConstGauge::new(*value).encode(sample)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The metrics of one scrape, under the `bulwark_` prefix. Help texts end without a period
/// (the encoder adds one).
#[derive(Debug)]
pub struct Scrape {
    registry: Registry,
}

impl Default for Scrape {
    fn default() -> Self {
        Self::new()
    }
}

impl Scrape {
    /// An empty scrape.
    pub fn new() -> Self {
        Self {
            registry: Registry::with_prefix("bulwark"),
        }
    }

    /// A gauge without labels. `unit` (e.g. [`Unit::Seconds`]) becomes the name's suffix.
    pub fn gauge(&mut self, name: &str, help: &str, unit: Option<Unit>, value: f64) {
        self.gauges(name, help, unit, vec![(Vec::new(), value)]);
    }

    /// A gauge family: one sample per label set.
    pub fn gauges(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: Vec<(Labels, f64)>,
    ) {
        self.add(
            name,
            help,
            unit,
            Family {
                kind: MetricType::Gauge,
                samples,
            },
        );
    }

    /// A counter without labels (the encoder appends `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.counters(name, help, vec![(Vec::new(), value)]);
    }

    /// A counter family: one sample per label set.
    pub fn counters(&mut self, name: &str, help: &str, samples: Vec<(Labels, u64)>) {
        self.add(
            name,
            help,
            None,
            Family {
                kind: MetricType::Counter,
                samples,
            },
        );
    }

    /// A latency histogram in seconds (`name` without the unit; the encoder appends `_seconds`).
    pub fn latency(&mut self, name: &str, help: &str, histogram: &LatencyHistogram) {
        self.add(name, help, Some(Unit::Seconds), Buckets::from(histogram));
    }

    fn add(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        metric: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static,
    ) {
        match unit {
            Some(unit) => self.registry.register_with_unit(name, help, unit, metric),
            None => self.registry.register(name, help, metric),
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error is a programmer error (a metric
        // name the format refuses), and the scrape then says so instead of a partial text.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "the metrics do not encode");
            return format!("# the metrics do not encode: {error}\n# EOF\n");
        }
        text
    }
}

/// One label pair.
pub fn label(key: &str, value: impl Into<String>) -> Labels {
    vec![(key.to_string(), value.into())]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_take_the_prefix_the_unit_and_the_total_suffix() {
        let mut scrape = Scrape::new();
        scrape.gauge("finalized_height", "Newest height", None, 42.0);
        scrape.counter("orders_finalized", "Orders", 7);
        scrape.counters(
            "orders_refused",
            "Refused",
            vec![(label("reason", "stale_nonce"), 3)],
        );
        let mut histogram = LatencyHistogram::default();
        histogram.observe_us(700);
        histogram.observe_us(20_000_000);
        scrape.latency("submit_to_finalized", "Latency", &histogram);
        let text = scrape.render();
        assert!(text.contains("bulwark_finalized_height 42"), "{text}");
        assert!(text.contains("bulwark_orders_finalized_total 7"), "{text}");
        assert!(
            text.contains("bulwark_orders_refused_total{reason=\"stale_nonce\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("bulwark_submit_to_finalized_seconds_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bulwark_submit_to_finalized_seconds_bucket{le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("bulwark_submit_to_finalized_seconds_count 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_label_value_with_quotes_and_newlines_is_escaped() {
        let mut scrape = Scrape::new();
        scrape.gauges("x", "X", None, vec![(label("peer", "a\"b\nc\\"), 1.0)]);
        let text = scrape.render();
        assert!(text.contains(r#"bulwark_x{peer="a\"b\nc\\"} 1"#), "{text}");
    }

    #[test]
    fn an_empty_family_leaves_no_descriptor() {
        let mut scrape = Scrape::new();
        scrape.counters("evidence_recorded", "Evidence", Vec::new());
        assert_eq!(scrape.render(), "# EOF\n");
    }
}
