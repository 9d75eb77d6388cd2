//! Feeds arbitrary bytes (as lossy UTF-8) to the SCA policy loader. A malformed policy must come
//! back as `PolicyError::Malformed` naming the file, never a panic; a policy that loads must keep the
//! loader's invariants (unique check ids, no check without rules) and evaluate without panicking
//! against an in-memory host, with one result per check and counts that add up.

#![no_main]

mod audit_host;

use std::collections::BTreeSet;

use bulwark_audit::eval::Scan;
use bulwark_audit::policy::{parse_policy, PolicyError};
use bulwark_audit::report::PolicyStatus;
use bulwark_audit::rule::PatternCache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let policy = match parse_policy(&text, "fuzz.yml", &mut PatternCache::default()) {
        Ok(policy) => policy,
        Err(PolicyError::Malformed { file, .. }) => {
            assert_eq!(file, "fuzz.yml", "a policy error must name its file");
            return;
        }
        Err(e) => panic!("parsing text can only be Malformed, got: {e}"),
    };
    let mut ids = BTreeSet::new();
    for check in &policy.checks {
        assert!(ids.insert(check.id), "check ids must be unique");
        assert!(!check.rules.is_empty(), "a check must have rules");
    }
    let host = audit_host::MemoryHost::fixture(&text);
    let result = Scan::new(&host).policy(&policy);
    if result.status == PolicyStatus::Evaluated {
        assert_eq!(result.checks.len(), policy.checks.len());
        let counted = result.passed + result.failed + result.not_applicable;
        assert_eq!(counted as usize, result.checks.len(), "counts must add up");
        assert!(result.score_bp.is_none_or(|bp| bp <= 10_000));
    } else {
        assert!(result.checks.is_empty(), "a skipped policy has no results");
    }
});
