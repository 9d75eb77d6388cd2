//! The boundary between the audit core and the machine being audited.
//!
//! Rule evaluation never touches the file system, `/proc` or a process table directly: it asks a
//! [`Host`]. [`RootedHost`] answers from a directory tree (`/` for the live machine, or an image or
//! fixture tree), with commands either run for real (no shell, timeout, output cap) or answered from
//! a [`CommandFixture`]. Tests build fixture trees and fixture command outputs; the core stays the same.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// A [`Host`] over a directory tree, `/` for the live machine.
#[derive(Debug, Clone)]
pub struct RootedHost {
    root: PathBuf,
    commands: CommandSource,
}

impl RootedHost {
    /// Audits the tree at `root` answering commands from `commands`.
    pub fn new(root: impl Into<PathBuf>, commands: CommandSource) -> Self {
        Self {
            root: root.into(),
            commands,
        }
    }

    /// The audited root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of `path` under the root. A `..` component is refused rather than resolved,
    /// so a rule can never read outside `--root` by walking up.
    fn host_path(&self, path: &str) -> Result<PathBuf, HostError> {
        let relative = Path::new(path.trim_start_matches('/'));
        if relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(HostError::OutsideRoot(path.to_owned()));
        }
        Ok(self.root.join(relative))
    }
}

fn io_error(path: &str, err: std::io::Error) -> HostError {
    if err.kind() == std::io::ErrorKind::NotFound {
        HostError::NotFound(path.to_owned())
    } else {
        HostError::Unreadable {
            path: path.to_owned(),
            reason: err.to_string(),
        }
    }
}

fn kind_of(ft: std::fs::FileType) -> FileKind {
    if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else {
        // Devices, fifos and sockets.
        FileKind::Other
    }
}

impl Host for RootedHost {
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let file = std::fs::File::open(self.host_path(path)?).map_err(|e| io_error(path, e))?;
        let mut buf = Vec::new();
        // `/proc` files report length 0, so bound the read itself rather than trusting metadata.
        file.take(FILE_BYTES_MAX + 1)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(path, e))?;
        if buf.len() as u64 > FILE_BYTES_MAX {
            return Err(HostError::TooLarge(path.to_owned()));
        }
        Ok(buf)
    }

    fn metadata(&self, path: &str, follow: bool) -> Result<FileMeta, HostError> {
        let p = self.host_path(path)?;
        let m = if follow {
            std::fs::metadata(&p)
        } else {
            std::fs::symlink_metadata(&p)
        }
        .map_err(|e| io_error(path, e))?;
        Ok(FileMeta {
            kind: kind_of(m.file_type()),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            len: m.len(),
        })
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, HostError> {
        let rd = std::fs::read_dir(self.host_path(path)?).map_err(|e| io_error(path, e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_error(path, e))?;
            let kind = entry.file_type().map(kind_of).unwrap_or(FileKind::Other);
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read_link(&self, path: &str) -> Result<String, HostError> {
        std::fs::read_link(self.host_path(path)?)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|e| io_error(path, e))
    }

    fn processes(&self) -> Result<Vec<String>, HostError> {
        if let CommandSource::Fixture(CommandFixture {
            processes: Some(p), ..
        }) = &self.commands
        {
            return Ok(p.clone());
        }
        let mut names = Vec::new();
        for entry in self.read_dir("/proc")? {
            if !entry.name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // Processes exit while we look; a vanished one is simply skipped.
            if let Ok(comm) = self.read_file(&format!("/proc/{}/comm", entry.name)) {
                names.push(String::from_utf8_lossy(&comm).trim_end().to_owned());
            }
            if let Ok(cmdline) = self.read_file(&format!("/proc/{}/cmdline", entry.name)) {
                if let Some(argv0) = cmdline.split(|b| *b == 0).next().filter(|a| !a.is_empty()) {
                    let argv0 = String::from_utf8_lossy(argv0);
                    let base = argv0.rsplit('/').next().unwrap_or(&argv0).to_owned();
                    names.push(base);
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn run_command(&self, line: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        match &self.commands {
            CommandSource::Disabled(reason) => Err(HostError::CommandNotRun {
                command: line.to_owned(),
                reason: reason.clone(),
            }),
            CommandSource::Fixture(fx) => {
                fx.commands
                    .get(line)
                    .cloned()
                    .ok_or_else(|| HostError::CommandNotRun {
                        command: line.to_owned(),
                        reason: "no answer in the command fixture".to_owned(),
                    })
            }
            CommandSource::Live(limits) => run_live(line, argv, *limits),
        }
    }
}

/// Runs `argv` directly (no shell) with a timeout and a per-stream output cap.
fn run_live(
    line: &str,
    argv: &[String],
    limits: CommandLimits,
) -> Result<CommandOutput, HostError> {
    let not_run = |reason: String| HostError::CommandNotRun {
        command: line.to_owned(),
        reason,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| not_run("empty command".into()))?;
    // Its own process group, so a timeout kills `sh -c` pipelines whole: a surviving grandchild
    // would keep the output pipes open and the readers waiting.
    let mut child = Command::new(program)
        .process_group(0)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
        .map_err(|e| not_run(e.to_string()))?;
    let cap = limits.output_bytes_max;
    let stdout = child
        .stdout
        .take()
        .expect("stdout must be piped as configured above");
    let stderr = child
        .stderr
        .take()
        .expect("stderr must be piped as configured above");
    let out_reader = std::thread::spawn(move || read_capped(stdout, cap));
    let err_reader = std::thread::spawn(move || read_capped(stderr, cap));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limits.timeout => {
                // Killing can only fail if the group already exited; the wait below reaps it either way.
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(not_run(e.to_string())),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        None => Err(not_run(format!(
            "timed out after {} ms",
            limits.timeout.as_millis()
        ))),
        Some(status) => Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit_code: status.code(),
        }),
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes (draining the rest so the child never blocks).
fn read_capped(mut r: impl Read, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

/// Splits a command line into words the way a POSIX shell would for plain words: single quotes are
/// literal, double quotes allow `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside quotes escapes
/// the next character. No expansion, pipes or redirections: those need an explicit `sh -c "..."`.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
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
                        None => return Err("unterminated single quote".into()),
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
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(ch) => cur.push(ch),
                    None => return Err("trailing backslash".into()),
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
        return Err("empty command".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_cannot_walk_out_of_the_root() {
        let outer = std::env::temp_dir().join(format!("bulwark-audit-root-{}", std::process::id()));
        let root = outer.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(outer.join("secret"), b"outside").unwrap();
        std::fs::write(root.join("etc/inside"), b"inside").unwrap();
        let host = RootedHost::new(&root, CommandSource::Disabled("test".into()));
        assert_eq!(host.read_file("/etc/inside").unwrap(), b"inside");
        for escape in ["/../secret", "/etc/../../secret", "../secret"] {
            assert!(
                matches!(host.read_file(escape), Err(HostError::OutsideRoot(_))),
                "{escape}"
            );
            assert!(matches!(
                host.metadata(escape, true),
                Err(HostError::OutsideRoot(_))
            ));
            assert!(matches!(
                host.read_dir("/etc/../.."),
                Err(HostError::OutsideRoot(_))
            ));
        }
        std::fs::remove_dir_all(&outer).unwrap();
    }

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
        assert!(split_command("echo 'open").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn live_command_times_out_and_caps_output() {
        let limits = CommandLimits {
            timeout: Duration::from_millis(200),
            output_bytes_max: 10,
        };
        let argv = split_command("sleep 5").unwrap();
        let err = run_live("sleep 5", &argv, limits).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        // A pipeline's grandchildren die with it: the call returns at the timeout, not after 5 s.
        let line = r#"sh -c "sleep 5 | cat""#;
        let started = Instant::now();
        let err = run_live(line, &split_command(line).unwrap(), limits).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let argv = split_command("seq 1 1000").unwrap();
        let out = run_live("seq 1 1000", &argv, limits).unwrap();
        assert_eq!(out.stdout.len(), 10);
        assert_eq!(out.exit_code, Some(0));
    }
}
