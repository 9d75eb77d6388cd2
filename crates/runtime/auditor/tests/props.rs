//! Property tests: decoders of untrusted text never panic, and evaluation of whatever parses never
//! panics either.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_audit::eval::{content_matches, Scan};
use bulwark_audit::host::split_command;
use bulwark_audit::manifest::Manifest;
use bulwark_audit::policy::parse_policy;
use bulwark_audit::rule::{PatternCache, Rule};
use bulwark_audit::sign::{verify_report, SignedReport};
use common::Variant;
use proptest::prelude::*;

/// One fixture tree for all cases (evaluation only reads it).
fn fixture_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| common::tree(Variant::Passing)).path()
}

fn rule_text() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("f:"),
        Just("d:"),
        Just("p:"),
        Just("c:"),
        Just("r:"),
        Just("not f:"),
        Just("sysctl:"),
        Just("sshd:"),
        Just("stat:"),
        Just("listen:"),
        Just("module:"),
        Just("blacklist:"),
        Just("pkg:"),
        Just("mount:"),
        Just("unit:"),
        Just("x:"),
        Just(""),
    ];
    let target = prop_oneof![
        Just("/etc/passwd".to_owned()),
        Just("/etc".to_owned()),
        Just("/nope".to_owned()),
        Just("echo hello".to_owned()),
        Just("tcp".to_owned()),
        "[ -~]{0,12}",
    ];
    let term = prop_oneof![
        "r:[ -~]{0,10}",
        "!r:[ -~]{0,10}",
        "n:[ -~]{0,8} compare [<>=!]{1,2} -?[0-9]{1,3}",
        "[ -~]{0,10}",
    ];
    (kind, target, proptest::collection::vec(term, 0..4)).prop_map(|(k, t, terms)| {
        if terms.is_empty() {
            format!("{k}{t}")
        } else {
            format!("{k}{t} -> {}", terms.join(" && "))
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rules_parse_and_evaluate_without_panicking(texts in proptest::collection::vec(rule_text(), 1..8)) {
        let host = common::host(fixture_root(), Variant::Passing);
        let mut scan = Scan::new(&host);
        let mut pc = PatternCache::default();
        for t in &texts {
            if let Ok(rule) = Rule::parse(t, &mut pc) {
                scan.rule(&rule);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_decoders(s in "\\PC{0,200}") {
        let _ = split_command(&s);
        let _ = Rule::parse(&s, &mut PatternCache::default());
        let _ = parse_policy(&s, "p.yml", &mut PatternCache::default());
        let _ = Manifest::parse(&s, "m.yml");
        let _ = verify_report(&SignedReport { report: s.clone(), node: s.clone(), signature: s.clone() });
    }

    #[test]
    fn content_matching_never_panics(re in "[ -~]{0,16}", text in "\\PC{0,200}") {
        let mut pc = PatternCache::default();
        if let Ok(r) = Rule::parse(&format!("f:/x -> r:{re} && !n:{re} compare >= 3"), &mut pc) {
            let _ = content_matches(r.content.as_ref().unwrap(), [text.as_str()]);
        }
    }
}
