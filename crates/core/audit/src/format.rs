//! Report renderings: text for people, JSON for machines, JUnit XML for CI dashboards, SARIF 2.1.0
//! for code-scanning tools.

use std::fmt::Write as _;

use serde_json::json;

use crate::policy::Severity;
use crate::report::{Outcome, PolicyStatus, Report};

/// Text: one block per policy listing failed and not-applicable checks, then totals.
pub fn text(report: &Report) -> String {
    let mut s = String::new();
    for p in &report.policies {
        let score = p
            .score_bp
            .map_or("-".to_owned(), |b| format!("{}.{:02}%", b / 100, b % 100));
        match &p.status {
            PolicyStatus::Error { message } => {
                let _ = writeln!(s, "ERROR  {message}");
                continue;
            }
            PolicyStatus::RequirementsNotMet { reason } => {
                let _ = writeln!(s, "SKIP   {} ({}): {reason}", p.id, p.file);
                continue;
            }
            PolicyStatus::Evaluated => {}
        }
        let _ = writeln!(
            s,
            "POLICY {} — {}: score {score}, {} passed, {} failed, {} not applicable",
            p.id, p.name, p.passed, p.failed, p.not_applicable
        );
        for c in &p.checks {
            let tag = match c.outcome {
                Outcome::Passed => continue,
                Outcome::Failed => "FAIL",
                Outcome::NotApplicable => "N/A ",
            };
            let sev = format!("{:?}", c.severity).to_ascii_lowercase();
            let _ = write!(s, "  {tag} [{sev}] {} {}", c.id, c.title);
            if let Some(r) = &c.reason {
                let _ = write!(s, " — {r}");
            }
            s.push('\n');
        }
    }
    let sum = report.summary();
    let score = sum
        .score_bp
        .map_or("-".to_owned(), |b| format!("{}.{:02}%", b / 100, b % 100));
    let _ = writeln!(
        s,
        "TOTAL  score {score}: {} passed, {} failed, {} not applicable, {} critical failures, {} policy errors",
        sum.passed,
        sum.failed,
        sum.not_applicable,
        sum.critical_failures.len(),
        sum.policy_errors
    );
    s
}

/// JSON: `{"summary": …, "report": …}`, pretty-printed.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(&json!({ "summary": report.summary(), "report": report }))
        .expect("report JSON serialization must not fail")
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: a test suite per policy, a test case per check; failed → `<failure>`, not
/// applicable → `<skipped>`, a policy that failed to load → one `<error>` case.
pub fn junit(report: &Report) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bulwark-audit\">\n",
    );
    for p in &report.policies {
        let (tests, errors) = match &p.status {
            PolicyStatus::Error { .. } => (1, 1),
            _ => (p.checks.len(), 0),
        };
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{}\">",
            xml_escape(&p.id),
            p.failed,
            p.not_applicable
        );
        if let PolicyStatus::Error { message } = &p.status {
            let _ = writeln!(
                s,
                "    <testcase classname=\"{0}\" name=\"load\"><error message=\"{1}\"/></testcase>",
                xml_escape(&p.id),
                xml_escape(message)
            );
        }
        for c in &p.checks {
            let _ = write!(
                s,
                "    <testcase classname=\"{}\" name=\"{} {}\">",
                xml_escape(&p.id),
                c.id,
                xml_escape(&c.title)
            );
            let why = xml_escape(c.reason.as_deref().unwrap_or(""));
            match c.outcome {
                Outcome::Passed => {}
                Outcome::Failed => {
                    let _ = write!(s, "<failure message=\"{why}\" type=\"{:?}\"/>", c.severity);
                }
                Outcome::NotApplicable => {
                    let _ = write!(s, "<skipped message=\"{why}\"/>");
                }
            }
            s.push_str("</testcase>\n");
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// SARIF 2.1.0: one reporting rule per check (`policy/check`), one result per check with `kind`
/// pass / fail / notApplicable and a level from the severity.
pub fn sarif(report: &Report) -> String {
    let mut rules = Vec::new();
    let mut results = Vec::new();
    for p in &report.policies {
        for c in &p.checks {
            let id = format!("{}/{}", p.id, c.id);
            rules.push(json!({ "id": id, "shortDescription": { "text": c.title } }));
            let (kind, level) = match c.outcome {
                Outcome::Passed => ("pass", "none"),
                Outcome::NotApplicable => ("notApplicable", "none"),
                Outcome::Failed => (
                    "fail",
                    match c.severity {
                        Severity::Critical | Severity::High => "error",
                        Severity::Medium => "warning",
                        Severity::Low => "note",
                    },
                ),
            };
            let text = match &c.reason {
                Some(r) => format!("{}: {r}", c.title),
                None => c.title.clone(),
            };
            let mut result = json!({
                "ruleId": id,
                "kind": kind,
                "level": level,
                "message": { "text": text },
            });
            if !p.file.is_empty() {
                result["locations"] =
                    json!([{ "physicalLocation": { "artifactLocation": { "uri": p.file } } }]);
            }
            results.push(result);
        }
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "bulwark-audit",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF serialization must not fail")
}
