//! Output formats are well formed and agree with the report.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_audit::agent::Auditor;
use bulwark_audit::format;
use bulwark_audit::policy::parse_policy;
use bulwark_audit::rule::PatternCache;
use bulwark_audit::COMMITTEE_NODE_POLICY;
use common::Variant;

#[test]
fn json_sarif_junit_and_text_agree() {
    let dir = common::tree(Variant::Failing);
    let host = common::host(dir.path(), Variant::Failing);
    let p = parse_policy(
        COMMITTEE_NODE_POLICY,
        "committee-node.yml",
        &mut PatternCache::default(),
    )
    .unwrap();
    let (report, _) = Auditor::new(vec![p], vec![], None).scan(&host, 7);
    let s = report.summary();

    let j: serde_json::Value = serde_json::from_str(&format::json(&report)).unwrap();
    assert_eq!(j["summary"]["failed"], s.failed);
    assert_eq!(j["report"]["generated_at_ms"], 7);

    let sarif: serde_json::Value = serde_json::from_str(&format::sarif(&report)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), report.policies[0].checks.len());
    let fails = results.iter().filter(|r| r["kind"] == "fail").count();
    assert_eq!(fails as u32, s.failed);
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == "bulwark_committee_node/900001" && r["level"] == "error"));

    let junit = format::junit(&report);
    assert!(junit.starts_with("<?xml"));
    assert_eq!(junit.matches("<failure ").count() as u32, s.failed);
    assert_eq!(
        junit.matches("<testcase ").count(),
        report.policies[0].checks.len()
    );
    assert!(!junit.contains("& "), "ampersands are escaped");

    let text = format::text(&report);
    assert!(text.contains("FAIL [critical] 900001"), "{text}");
}
