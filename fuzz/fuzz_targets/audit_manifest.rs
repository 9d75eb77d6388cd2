//! Feeds arbitrary bytes (as lossy UTF-8) to the role-manifest parser and to the `PROTO/PORT[-LAST]`
//! port rules it contains. A malformed manifest must come back as `ManifestError::Malformed` naming
//! the file; one that loads must evaluate against an in-memory host without panicking, into at most
//! the five fixed checks.

#![no_main]

mod audit_host;

use bulwark_audit::manifest::{Manifest, ManifestError, PortRule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    for word in text.split_whitespace().take(16) {
        if let Ok(rule) = word.parse::<PortRule>() {
            assert!(rule.first <= rule.last, "a port range must not be empty");
        }
    }
    let manifest = match Manifest::parse(&text, "fuzz.yml") {
        Ok(m) => m,
        Err(ManifestError::Malformed { file, .. }) => {
            assert_eq!(file, "fuzz.yml", "a manifest error must name its file");
            return;
        }
        Err(e) => panic!("parsing text can only be Malformed, got: {e}"),
    };
    let host = audit_host::MemoryHost::fixture("");
    let result = manifest.evaluate(&host);
    assert_eq!(result.id, format!("manifest:{}", manifest.role));
    assert!(result.checks.len() <= 5);
    assert!(result.checks.iter().all(|c| (1..=5).contains(&c.id)));
});
