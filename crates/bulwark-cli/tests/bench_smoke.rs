//! Smoke test of `bulwark bench engine --quick`: every line on stdout is one figure in the shape
//! all benchmarks share, with finite, positive numbers. It checks the output's form, never a
//! speed (STYLE.md rule 11: no absolute times asserted in tests).

use std::process::Command;

/// The keys of a figure, sorted.
const KEYS: [&str; 7] = [
    "bench",
    "metric",
    "peer",
    "peer_value",
    "ratio",
    "unit",
    "value",
];

/// Figures the engine benchmark must always print (the RSS-measured memory figure is skipped where
/// `/proc` is missing, so it is not required).
const REQUIRED: [&str; 7] = [
    "book_bytes_per_resting_order",
    "match_ops_per_s_levels_3",
    "match_ops_per_s_levels_1001",
    "engine_orders_per_s",
    "engine_op_p50_ns",
    "engine_op_p99_ns",
    "engine_orders_per_s_batch_1000",
];

fn positive_finite(line: &str, key: &str, value: &serde_json::Value) {
    let x = value
        .as_f64()
        .unwrap_or_else(|| panic!("{key} must be a number in {line}"));
    assert!(
        x.is_finite() && x > 0.0,
        "{key} must be finite and positive in {line}"
    );
}

#[test]
fn bench_engine_quick_prints_well_formed_figures() {
    let output = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["bench", "engine", "--quick"])
        .output()
        .expect("the bulwark binary must start");
    assert!(
        output.status.success(),
        "`bulwark bench engine --quick` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("stdout must be UTF-8");
    let mut metrics = Vec::new();
    for line in stdout.lines() {
        let figure: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        let fields = figure
            .as_object()
            .unwrap_or_else(|| panic!("a figure must be a JSON object: {line}"));
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, KEYS, "wrong keys in {line}");
        assert_eq!(fields["bench"], "engine", "wrong bench in {line}");
        for key in ["metric", "unit"] {
            assert!(
                fields[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} must be a non-empty string in {line}"
            );
        }
        positive_finite(line, "value", &fields["value"]);
        if fields["peer"].is_null() {
            assert!(
                fields["peer_value"].is_null() && fields["ratio"].is_null(),
                "a figure without a peer has no peer value or ratio: {line}"
            );
        } else {
            positive_finite(line, "peer_value", &fields["peer_value"]);
            positive_finite(line, "ratio", &fields["ratio"]);
        }
        metrics.push(fields["metric"].as_str().unwrap_or_default().to_string());
    }
    for required in REQUIRED {
        assert!(
            metrics.iter().any(|m| m == required),
            "figure {required} missing; got {metrics:?}"
        );
    }
}

/// `bulwark bench gateway` at a small load against a real committee and a QuickFIX acceptor:
/// every figure of the four, each against its peer or bound measured in the same run, all
/// positive (no speed asserted).
#[test]
fn bench_gateway_prints_its_figures_against_their_peers() {
    if bulwark_testkit::python::python_with(&["quickfix", "cryptography"]).is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Python with quickfix and cryptography (.ci/run installs them)"
        );
        eprintln!("SKIPPED: no Python with quickfix and cryptography; CI installs them");
        return;
    }
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let base = (0..8u16)
        .map(|k| 12_000 + ((std::process::id() as u16 % 8 + k) % 8) * 500)
        .find(|b| (0..4).all(|i| bindable(b + i) && bindable(b + 100 + i)) && bindable(b + 390))
        .expect("a free port range");
    let output = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "bench",
            "gateway",
            "--orders",
            "5",
            "--rate",
            "100",
            "--seconds",
            "2",
            "--base-port",
            &base.to_string(),
        ])
        .output()
        .expect("the bulwark binary must start");
    assert!(
        output.status.success(),
        "`bulwark bench gateway` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("stdout must be UTF-8");
    let mut metrics = Vec::new();
    for line in stdout.lines() {
        let figure: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(figure["bench"], "gateway", "{line}");
        if figure["metric"] == "gateway_added_p50_ms" {
            // A difference of two medians: any sign.
            assert!(
                figure["value"].as_f64().is_some_and(f64::is_finite),
                "{line}"
            );
        } else {
            for key in ["value", "peer_value", "ratio"] {
                positive_finite(line, key, &figure[key]);
            }
        }
        metrics.push(figure["metric"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        metrics,
        [
            "gateway_ack_p50_ms",
            "gateway_ack_p99_ms",
            "gateway_added_p50_ms",
            "orders_per_s",
            "flood_p99_ms",
            "flood_goodput",
            "junk_per_s",
            "malformed_close_p99_ms",
            "abuse_others_p99_ms",
            "abuser_admitted_per_s",
            "fix_order_ack_p50_ms",
            "fix_order_ack_p99_ms",
            "gateway_overhead_p50_ms"
        ],
        "{stdout}"
    );
}
