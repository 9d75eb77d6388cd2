//! The machine being audited: [`RootedHost`], the [`Host`] over a directory tree (`/` for the
//! live machine, or an image or fixture tree), with commands run for real (no shell, a timeout, an
//! output cap, the whole process group killed on timeout) or answered from a fixture.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulwark_audit::host::{
    CommandFixture, CommandLimits, CommandOutput, CommandSource, DirEntry, FileKind, FileMeta,
    Host, HostError, FILE_BYTES_MAX,
};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_audit::host::split_command;

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
