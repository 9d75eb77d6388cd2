//! Reading an operator port the way Prometheus does: one HTTP GET of `/metrics`, then the real
//! OpenMetrics parser (the Python `prometheus_client` package's), so that a test checks the
//! exposition against the format's reference implementation, not against our own reading of it.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The body of `GET /metrics` at `at`, or why there is none (connection, status, timeout).
pub fn scrape(at: SocketAddr) -> Result<String, String> {
    bulwark_console::http::get(at, "/metrics", Duration::from_secs(10))
}

/// The parser run by Python: every family with its type and samples, as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append({
        "name": family.name,
        "type": family.type,
        "unit": family.unit,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    })
print(json.dumps(out))
"#;

/// Metric families as the reference parser read them.
#[derive(Debug, Clone)]
pub struct Families(Vec<serde_json::Value>);

impl Families {
    /// The family `name` (for a counter, without `_total`): its `type`, `unit` and `samples`.
    pub fn family(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|f| f["name"] == name)
    }

    /// Every family's name.
    pub fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|f| f["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The samples named `sample` (e.g. `bulwark_orders_finalized_total`) whose labels include
    /// every pair of `labels`, with all their labels.
    pub fn samples(&self, sample: &str, labels: &[(&str, &str)]) -> Vec<(serde_json::Value, f64)> {
        self.0
            .iter()
            .flat_map(|f| f["samples"].as_array().into_iter().flatten())
            .filter(|s| s["name"] == sample)
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .filter_map(|s| Some((s["labels"].clone(), s["value"].as_f64()?)))
            .collect()
    }

    /// The value of the one sample [`Families::samples`] finds, if exactly one.
    pub fn value(&self, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.samples(sample, labels).as_slice() {
            [(_, value)] => Some(*value),
            _ => None,
        }
    }
}

/// Parses `exposition` with `prometheus_client`'s OpenMetrics parser. `Ok(None)` when no Python
/// with `prometheus_client` is installed (the caller says SKIPPED); `Err` with the parser's
/// message when the text is not valid OpenMetrics.
pub fn parse_openmetrics(exposition: &str) -> Result<Option<Families>, String> {
    let Some(python) = crate::python::python_with(&["prometheus_client"]) else {
        return Ok(None);
    };
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the parser: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(exposition.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "prometheus_client refused the exposition: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let families: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the parser's output is not JSON: {e}"))?;
    Ok(Some(Families(families)))
}
