//! The boundary between the audit core and the machine being audited.
//!
//! Rule evaluation never touches the file system, `/proc` or a process table directly: it asks a
//! [`Host`]. `bulwark_auditor::machine::RootedHost` (runtime tier) answers from a directory tree (`/`
//! for the live machine, or an image or fixture tree), with commands either run for real (no shell,
//! timeout, output cap) or answered from a [`CommandFixture`]. Tests build fixture trees and fixture
//! command outputs; the core stays the same.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Largest file the audit reads whole; bigger files make their rule invalid rather than exhaust memory.
pub const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Errors from a [`Host`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The path does not exist under the audited root.
    #[error("{0}: not found")]
    NotFound(String),
    /// The path exists but could not be read (permissions, I/O error, not valid for the operation).
    #[error("{path}: {reason}")]
    Unreadable {
        /// Path inside the audited root.
        path: String,
        /// Why reading failed.
        reason: String,
    },
    /// The path has a `..` component and could leave the audited root; it is never opened.
    #[error("{0}: a `..` component could leave the audited root; refused")]
    OutsideRoot(String),
    /// A file is larger than [`FILE_BYTES_MAX`].
    #[error("{0}: larger than {FILE_BYTES_MAX} bytes")]
    TooLarge(String),
    /// The command could not be run (not found, not allowed, timed out, no fixture answer).
    #[error("command `{command}` not run: {reason}")]
    CommandNotRun {
        /// The command line as written in the rule.
        command: String,
        /// Why it was not run.
        reason: String,
    },
    /// A command fixture file could not be read or parsed.
    #[error("command fixture {path}: {reason}")]
    Fixture {
        /// Fixture file path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What kind of object a path names (symlinks not followed unless stated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, socket, fifo).
    Other,
}

/// The metadata the audit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Object kind.
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes.
    pub len: u64,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// File name (no directory part).
    pub name: String,
    /// Kind of the entry itself (a symlink is reported as [`FileKind::Symlink`]).
    pub kind: FileKind,
}

/// Output of one command, each stream already truncated to the output limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CommandOutput {
    /// Standard output (lossy UTF-8).
    #[serde(default)]
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    #[serde(default)]
    pub stderr: String,
    /// Exit code, if the process exited normally. SCA rules ignore it.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Bounds for running a real command.
#[derive(Clone, Copy, Debug)]
pub struct CommandLimits {
    /// Wall-clock limit; the process is killed after it.
    pub timeout: Duration,
    /// Bytes kept per stream; the rest is read and discarded.
    pub output_bytes_max: usize,
}

impl Default for CommandLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            output_bytes_max: 1024 * 1024,
        }
    }
}

/// Everything rule evaluation may ask of the audited machine. Paths are absolute paths *inside* the
/// audited root (`/etc/ssh/sshd_config`), never host paths.
pub trait Host {
    /// Reads a whole file (symlinks followed), at most [`FILE_BYTES_MAX`] bytes.
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError>;
    /// Metadata of a path; `follow` decides whether a final symlink is followed.
    fn metadata(&self, path: &str, follow: bool) -> Result<FileMeta, HostError>;
    /// Entries of a directory, sorted by name.
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, HostError>;
    /// Target of a symbolic link, as stored.
    fn read_link(&self, path: &str) -> Result<String, HostError>;
    /// Names of running processes (`comm` and the base name of `argv[0]`).
    fn processes(&self) -> Result<Vec<String>, HostError>;
    /// Runs one command given as an argument vector (no shell). `line` is the command as written.
    fn run_command(&self, line: &str, argv: &[String]) -> Result<CommandOutput, HostError>;
}

/// Where command answers come from.
#[derive(Debug, Clone)]
pub enum CommandSource {
    /// Run commands on this machine with these limits.
    Live(CommandLimits),
    /// Answer from a fixture; commands missing from it are "not run".
    Fixture(CommandFixture),
    /// Commands are not run; every command rule is invalid with this reason.
    Disabled(String),
}

/// Fixture answers for command and process rules, loaded from YAML or JSON:
///
/// ```yaml
/// commands:
///   "sshd -T": { stdout: "permitrootlogin no\n", exit_code: 0 }
/// processes: [sshd, systemd]
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFixture {
    /// Output per command line, keyed exactly as written in the rule (after variable expansion).
    #[serde(default)]
    pub commands: BTreeMap<String, CommandOutput>,
    /// Running process names; when absent, processes are read from `/proc` under the root.
    #[serde(default)]
    pub processes: Option<Vec<String>>,
}

impl CommandFixture {
    /// Parses a fixture document.
    pub fn parse(text: &str, path: &str) -> Result<Self, HostError> {
        serde_yaml_ng::from_str(text).map_err(|e| HostError::Fixture {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Why a command line could not be split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// A `'` is never closed.
    #[error("unterminated single quote")]
    UnterminatedSingleQuote,
    /// A `"` is never closed.
    #[error("unterminated double quote")]
    UnterminatedDoubleQuote,
    /// The line ends in a lone `\`.
    #[error("trailing backslash")]
    TrailingBackslash,
    /// No words at all.
    #[error("empty command")]
    Empty,
}

/// Splits a command line into words the way a POSIX shell would for plain words: single quotes are
/// literal, double quotes allow `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside quotes escapes
/// the next character. No expansion, pipes or redirections: those need an explicit `sh -c "..."`.
pub fn split_command(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(SplitError::UnterminatedSingleQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(SplitError::UnterminatedDoubleQuote),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(SplitError::UnterminatedDoubleQuote),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(ch) => cur.push(ch),
                    None => return Err(SplitError::TrailingBackslash),
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splits_like_a_shell_without_expansion() {
        assert_eq!(split_command("sshd -T").unwrap(), ["sshd", "-T"]);
        assert_eq!(
            split_command(r#"sh -c "cut -f1 -d\":\" /etc/group | wc -l""#).unwrap(),
            ["sh", "-c", r#"cut -f1 -d":" /etc/group | wc -l"#]
        );
        assert_eq!(
            split_command(r"grep -P '^\h*x' /a\ b").unwrap(),
            ["grep", "-P", r"^\h*x", "/a b"]
        );
        assert_eq!(
            split_command("echo 'open"),
            Err(SplitError::UnterminatedSingleQuote)
        );
        assert_eq!(split_command("   "), Err(SplitError::Empty));
        assert_eq!(split_command("a\\"), Err(SplitError::TrailingBackslash));
        assert_eq!(
            split_command("\"a"),
            Err(SplitError::UnterminatedDoubleQuote)
        );
    }
}
