//! Signed audit reports from untrusted peers. Two inputs per run:
//! 1. the bytes as a JSON envelope: `SignedReport::decode` then `verify_report` must not panic, and
//!    nothing but the reference envelope may verify (the fuzzer cannot sign);
//! 2. the bytes as an edit of a genuine envelope (field selector, offset, deleted length, inserted
//!    text): the edited envelope must verify only if it is unchanged, so no re-spelling of the report,
//!    node key or signature (hex case, signs, whitespace) is accepted.

#![no_main]

use std::sync::OnceLock;

use bulwark_audit::policy::Severity;
use bulwark_audit::report::{CheckResult, Outcome, PolicyResult, Report, RuleOutcome, RuleResult};
use bulwark_audit::sign::{sign_report, verify_report, SignedReport, SigningKey};
use libfuzzer_sys::fuzz_target;

/// A genuine signed report and the report it carries.
fn reference() -> &'static (SignedReport, Report) {
    static REFERENCE: OnceLock<(SignedReport, Report)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let check = CheckResult {
            id: 900001,
            title: "Root login \"off\" \\ é".to_owned(),
            severity: Severity::Critical,
            outcome: Outcome::Failed,
            reason: None,
            rules: vec![RuleResult {
                rule: "sshd:permitrootlogin -> no".to_owned(),
                outcome: RuleOutcome::NotFound,
                reason: None,
            }],
        };
        let policy = PolicyResult::from_checks(
            "committee-node".to_owned(),
            "Committee node".to_owned(),
            "committee-node.yml".to_owned(),
            vec![check],
        );
        let mut report = Report {
            version: 1,
            node: None,
            generated_at_ms: 1_700_000_000_000,
            policies: vec![policy],
        };
        let signed = sign_report(&mut report, &SigningKey::from_bytes(&[7u8; 32]));
        (signed, report)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let (genuine, report) = reference();
    if let Ok(envelope) = SignedReport::decode(bytes) {
        if let Ok(verified) = verify_report(&envelope) {
            assert_eq!(&envelope, genuine, "only the genuine envelope can verify");
            assert_eq!(&verified, report);
        }
    }

    let [select, offset_lo, offset_hi, delete, insert @ ..] = bytes else {
        return;
    };
    let mut edited = genuine.clone();
    let field = match select % 3 {
        0 => &mut edited.report,
        1 => &mut edited.node,
        _ => &mut edited.signature,
    };
    let mut start = usize::from(u16::from_le_bytes([*offset_lo, *offset_hi])) % (field.len() + 1);
    while !field.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + usize::from(*delete)).min(field.len());
    while !field.is_char_boundary(end) {
        end += 1;
    }
    field.replace_range(start..end, &String::from_utf8_lossy(insert));
    match verify_report(&edited) {
        Ok(verified) => {
            assert_eq!(&edited, genuine, "an edited envelope must not verify");
            assert_eq!(&verified, report);
        }
        Err(_) => assert_ne!(&edited, genuine, "the genuine envelope must verify"),
    }
});
