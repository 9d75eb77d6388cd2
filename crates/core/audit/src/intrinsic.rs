//! Commands answered natively from the audited root instead of spawning a process.
//!
//! Stock policies run `dpkg-query -s`, `stat`, `sysctl` and `which` about a hundred times per scan;
//! a process spawn costs more CPU than the answer. Each form here reproduces the output lines the
//! stock rules read (same text, same stream, same exit code) and reads the *audited root*, so the
//! same rules also work on an image tree. Any other flag or format falls back to running the real
//! command (returns `None`).

use crate::host::{CommandOutput, FileKind, Host, HostError};
use crate::native;

/// The native answer to `argv`, or `None` when the command is not one of the intrinsic forms.
pub fn answer(host: &dyn Host, argv: &[String]) -> Option<Result<CommandOutput, HostError>> {
    let (cmd, args) = argv.split_first()?;
    let base = cmd.rsplit('/').next().unwrap_or(cmd);
    let plain =
        |a: &[String]| !a.is_empty() && a.iter().all(|x| !x.starts_with('-') && !x.is_empty());
    match (base, args) {
        ("dpkg" | "dpkg-query", [flag, pkgs @ ..])
            if (flag == "-s" || flag == "--status") && plain(pkgs) =>
        {
            Some(dpkg_status(host, pkgs))
        }
        ("stat", [flag, paths @ ..]) if flag == "-L" && plain(paths) => {
            Some(Ok(stat_long(host, paths)))
        }
        ("stat", [flag, fmt, paths @ ..]) if flag == "-Lc" && plain(paths) => {
            stat_format(host, fmt, paths)
        }
        ("sysctl", keys) if plain(keys) => Some(sysctl(host, keys)),
        ("systemctl", [sub, units @ ..]) if sub == "is-enabled" && plain(units) => {
            is_enabled(host, units)
        }
        ("which", names) if plain(names) && names.iter().all(|n| !n.contains('/')) => {
            Some(which(host, names))
        }
        _ => None,
    }
}

fn out(stdout: String, stderr: String, code: i32) -> CommandOutput {
    CommandOutput {
        stdout,
        stderr,
        exit_code: Some(code),
    }
}

fn dpkg_status(host: &dyn Host, pkgs: &[String]) -> Result<CommandOutput, HostError> {
    let status = String::from_utf8_lossy(&host.read_file("/var/lib/dpkg/status")?).into_owned();
    let (mut stdout, mut stderr, mut code) = (String::new(), String::new(), 0);
    for (i, p) in pkgs.iter().enumerate() {
        let para = status
            .split("\n\n")
            .find(|para| para.lines().any(|l| l.strip_prefix("Package: ") == Some(p)));
        match para {
            Some(para) => {
                stdout.push_str(para.trim_matches('\n'));
                stdout.push('\n');
                // dpkg-query separates a found package from the next argument by a blank line.
                if i + 1 < pkgs.len() {
                    stdout.push('\n');
                }
            }
            None => {
                stderr.push_str(&format!(
                    "dpkg-query: package '{p}' is not installed and no information is available\n"
                ));
                code = 1;
            }
        }
    }
    Ok(out(stdout, stderr, code))
}

/// `ls -l` style mode string (`-rw-r-----`, `drwxr-xr-t`, `-rwsr-xr-x`).
fn mode_string(kind: &str, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "file" => '-',
        _ => '?',
    });
    let bit = |b: u32, c: char| if mode & b != 0 { c } else { '-' };
    let special =
        |x: u32, sp: u32, on: char, off: char, plain: char| match (mode & x != 0, mode & sp != 0) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => plain,
            (false, false) => '-',
        };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S', 'x'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S', 'x'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T', 'x'));
    s
}

fn missing(path: &str) -> String {
    format!("stat: cannot statx '{path}': No such file or directory\n")
}

/// GNU `stat -L PATH`: the `File:` and `Access: (MODE/STRING)  Uid: (…)   Gid: (…)` lines.
fn stat_long(host: &dyn Host, paths: &[String]) -> CommandOutput {
    let (mut stdout, mut stderr, mut code) = (String::new(), String::new(), 0);
    for p in paths {
        match native::file_stat(host, p) {
            Ok(Some(st)) => {
                stdout.push_str(&format!(
                    "  File: {p}\nAccess: ({:04o}/{})  Uid: ({:>5}/{:>8})   Gid: ({:>5}/{:>8})\n",
                    st.mode,
                    mode_string(st.kind, st.mode),
                    st.uid,
                    st.owner.as_deref().unwrap_or("UNKNOWN"),
                    st.gid,
                    st.group.as_deref().unwrap_or("UNKNOWN"),
                ));
            }
            Ok(None) | Err(_) => {
                stderr.push_str(&missing(p));
                code = 1;
            }
        }
    }
    out(stdout, stderr, code)
}

/// GNU `stat -Lc FORMAT PATH...` for `%n %a %A %u %U %g %G %%`; other directives → `None`.
fn stat_format(
    host: &dyn Host,
    fmt: &str,
    paths: &[String],
) -> Option<Result<CommandOutput, HostError>> {
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c == '%'
            && !matches!(
                it.next(),
                Some('n' | 'a' | 'A' | 'u' | 'U' | 'g' | 'G' | '%')
            )
        {
            return None;
        }
    }
    let (mut stdout, mut stderr, mut code) = (String::new(), String::new(), 0);
    for p in paths {
        let st = match native::file_stat(host, p) {
            Ok(Some(st)) => st,
            Ok(None) | Err(_) => {
                stderr.push_str(&missing(p));
                code = 1;
                continue;
            }
        };
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                stdout.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => stdout.push_str(p),
                Some('a') => stdout.push_str(&format!("{:o}", st.mode)),
                Some('A') => stdout.push_str(&mode_string(st.kind, st.mode)),
                Some('u') => stdout.push_str(&st.uid.to_string()),
                Some('U') => stdout.push_str(st.owner.as_deref().unwrap_or("UNKNOWN")),
                Some('g') => stdout.push_str(&st.gid.to_string()),
                Some('G') => stdout.push_str(st.group.as_deref().unwrap_or("UNKNOWN")),
                _ => stdout.push('%'),
            }
        }
        stdout.push('\n');
    }
    Some(Ok(out(stdout, stderr, code)))
}

/// procps `sysctl KEY...`: `KEY = VALUE` lines.
fn sysctl(host: &dyn Host, keys: &[String]) -> Result<CommandOutput, HostError> {
    let (mut stdout, mut stderr, mut code) = (String::new(), String::new(), 0);
    for k in keys {
        let key = k.replace('/', ".");
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        if key.contains("..") {
            return Err(HostError::NotFound(path));
        }
        match host.read_file(&path) {
            // procps prints the value as read, without its trailing newline (tabs kept).
            Ok(v) => stdout.push_str(&format!(
                "{key} = {}\n",
                String::from_utf8_lossy(&v).trim_end_matches('\n')
            )),
            Err(HostError::NotFound(_)) => {
                stderr.push_str(&format!(
                    "sysctl: cannot stat {path}: No such file or directory\n"
                ));
                code = 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out(stdout, stderr, code))
}

/// `systemctl is-enabled UNIT...` from unit files; `None` (run the real one) for states this
/// reading cannot tell apart (templates that are not enabled, linked units).
fn is_enabled(host: &dyn Host, units: &[String]) -> Option<Result<CommandOutput, HostError>> {
    use crate::systemd::{unit_state, UnitState};
    let (mut stdout, mut stderr, mut code) = (String::new(), String::new(), 1);
    for u in units {
        match unit_state(host, u) {
            Ok(Some(UnitState::Linked)) => return None,
            Ok(Some(UnitState::Disabled | UnitState::Indirect)) if u.contains('@') => return None,
            Ok(Some(st)) => {
                stdout.push_str(st.as_str());
                stdout.push('\n');
                // systemctl exits 0 when at least one unit is enabled (or static, alias, ...).
                if !matches!(st, UnitState::Disabled | UnitState::Masked) {
                    code = 0;
                }
            }
            Ok(None) => {
                stderr.push_str(&format!(
                    "Failed to get unit file state for {u}: No such file or directory\n"
                ));
                return Some(Ok(out(stdout, stderr, 1)));
            }
            Err(crate::native::NativeError::Host(e)) => return Some(Err(e)),
            Err(e) => {
                return Some(Err(HostError::Unreadable {
                    path: u.clone(),
                    reason: e.to_string(),
                }))
            }
        }
    }
    Some(Ok(out(stdout, stderr, code)))
}

/// debianutils `which NAME...` over the default root PATH.
fn which(host: &dyn Host, names: &[String]) -> Result<CommandOutput, HostError> {
    const PATH: [&str; 6] = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ];
    let (mut stdout, mut code) = (String::new(), 0);
    for n in names {
        let found = PATH.iter().map(|d| format!("{d}/{n}")).find(|p| {
            host.metadata(p, true)
                .is_ok_and(|m| m.kind == FileKind::File && m.mode & 0o111 != 0)
        });
        match found {
            Some(p) => {
                stdout.push_str(&p);
                stdout.push('\n');
            }
            None => code = 1,
        }
    }
    Ok(out(stdout, String::new(), code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string("file", 0o640), "-rw-r-----");
        assert_eq!(mode_string("file", 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string("dir", 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string("file", 0o2644), "-rw-r-Sr--");
    }
}
