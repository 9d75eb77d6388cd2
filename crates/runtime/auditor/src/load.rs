//! Policies and role manifests read from files, with a size bound checked before the read.

use std::path::Path;

use bulwark_audit::manifest::{Manifest, ManifestError, MANIFEST_BYTES_MAX};
use bulwark_audit::policy::{parse_policy, Policy, PolicyError, POLICY_BYTES_MAX};
use bulwark_audit::rule::PatternCache;

/// Reads and parses a policy file (at most [`POLICY_BYTES_MAX`] bytes).
pub fn load_policy(path: &Path, patterns: &mut PatternCache) -> Result<Policy, PolicyError> {
    let file = path.display().to_string();
    let text = read_text_bounded(path, POLICY_BYTES_MAX).map_err(|e| PolicyError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    parse_policy(&text, &file, patterns)
}

/// Reads and parses every policy file: the ones that load, and why the others did not (a scan
/// reports those as policy errors, so its report is not clean).
pub fn load_policies(
    paths: &[std::path::PathBuf],
    patterns: &mut PatternCache,
) -> (Vec<Policy>, Vec<PolicyError>) {
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match load_policy(path, patterns) {
            Ok(policy) => policies.push(policy),
            Err(error) => errors.push(error),
        }
    }
    (policies, errors)
}

/// Reads and parses a role manifest file (at most [`MANIFEST_BYTES_MAX`] bytes).
pub fn load_manifest(path: &Path) -> Result<Manifest, ManifestError> {
    let file = path.display().to_string();
    let text = read_text_bounded(path, MANIFEST_BYTES_MAX).map_err(|e| ManifestError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    Manifest::parse(&text, &file)
}

/// Why a text file was not read. Its message is the reason only: the caller's error puts it next
/// to the file name.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: u64, max: u64 },
}

/// Reads a UTF-8 text file of at most `bytes_max` bytes, checking the size before reading.
fn read_text_bounded(path: &Path, bytes_max: u64) -> Result<String, ReadError> {
    let len = std::fs::metadata(path)?.len();
    if len > bytes_max {
        return Err(ReadError::TooLarge {
            len,
            max: bytes_max,
        });
    }
    Ok(std::fs::read_to_string(path)?)
}
