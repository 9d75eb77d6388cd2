//! Feeds arbitrary text to the rule parser: the first line is a rule (`[not ]TYPE:TARGET[ -> ...]`),
//! the rest is the content its terms are matched against (it is also the file `/fuzz/input` of the
//! in-memory host). Parsing may refuse the rule but must not panic; the syntax check used while
//! loading YAML must agree with the full parser; evaluation must not panic; and `not` must swap found
//! and not found while leaving invalid alone.

#![no_main]

mod audit_host;

use bulwark_audit::agent::rule_reads;
use bulwark_audit::eval::{content_matches, Scan};
use bulwark_audit::host::split_command;
use bulwark_audit::report::RuleOutcome;
use bulwark_audit::rule::{check_syntax, PatternCache, Rule, RuleKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = String::from_utf8_lossy(bytes);
    let (text, content) = input.split_once('\n').unwrap_or((&input, ""));
    let mut patterns = PatternCache::default();
    let parsed = Rule::parse(text, &mut patterns);
    assert_eq!(
        check_syntax(text).is_ok(),
        parsed.is_ok(),
        "check_syntax and Rule::parse must agree on `{text}`"
    );
    let Ok(rule) = parsed else {
        return;
    };
    assert_eq!(rule.text, text.trim());
    if let Some(terms) = &rule.content {
        let _ = content_matches(terms, [content]);
    }
    if rule.kind == RuleKind::Command {
        let _ = split_command(&rule.targets[0]);
    }
    let _ = rule_reads(&rule, "/etc/ssh/sshd_config");

    let host = audit_host::MemoryHost::fixture(content);
    let outcome = Scan::new(&host).rule(&rule).outcome;
    if rule.negated {
        return;
    }
    let Ok(negated) = Rule::parse(&format!("not {text}"), &mut patterns) else {
        return;
    };
    let flipped = Scan::new(&host).rule(&negated).outcome;
    let expected = match outcome {
        RuleOutcome::Found => RuleOutcome::NotFound,
        RuleOutcome::NotFound => RuleOutcome::Found,
        RuleOutcome::Invalid => RuleOutcome::Invalid,
    };
    assert_eq!(flipped, expected, "`not {text}` must negate `{text}`");
});
