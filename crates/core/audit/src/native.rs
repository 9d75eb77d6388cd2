//! Native typed checks: facts read from the audited root without shelling out.
//!
//! Each fact has a typed reader (used by the role manifest) and a line form (used by the native rule
//! types such as `sysctl:` and `sshd:`, so the standard SCA content terms apply to them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::budget::Governor;
use crate::host::{FileKind, FileMeta, Host, HostError};

/// Errors reading a native fact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// The underlying file could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A system file did not have the expected format.
    #[error("{file}: unexpected format: {what}")]
    Format {
        /// File inside the root.
        file: String,
        /// What was wrong.
        what: String,
    },
    /// A whole-tree scan exceeded its entry budget.
    #[error("scan of {0} exceeded its budget of {1} entries")]
    Budget(String, usize),
}

fn text(host: &dyn Host, path: &str) -> Result<String, NativeError> {
    Ok(String::from_utf8_lossy(&host.read_file(path)?).into_owned())
}

/// Value of a sysctl key read from `/proc/sys` (dots map to slashes), whitespace collapsed to single
/// spaces; `None` when the key does not exist.
pub fn sysctl(host: &dyn Host, key: &str) -> Result<Option<String>, NativeError> {
    if key.contains("..") || key.starts_with('/') {
        return Ok(None);
    }
    match host.read_file(&format!("/proc/sys/{}", key.replace('.', "/"))) {
        Ok(b) => Ok(Some(
            String::from_utf8_lossy(&b)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )),
        Err(HostError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Metadata of a file with owner and group names resolved through the root's `/etc/passwd` and
/// `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStat {
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: &'static str,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Owner name, when the root's passwd names the uid.
    pub owner: Option<String>,
    /// Group name, when the root's group file names the gid.
    pub group: Option<String>,
}

impl FileStat {
    /// True when no permission bit outside `allowed` is set (e.g. `mode_at_most(0o640)`).
    pub fn mode_at_most(&self, allowed: u32) -> bool {
        self.mode & !allowed == 0
    }

    /// Line form: `type=file`, `mode=0640`, `uid=0`, `gid=42`, `owner=root`, `group=shadow`.
    pub fn lines(&self) -> Vec<String> {
        let mut l = vec![
            format!("type={}", self.kind),
            format!("mode={:04o}", self.mode),
            format!("uid={}", self.uid),
            format!("gid={}", self.gid),
        ];
        l.extend(self.owner.as_ref().map(|o| format!("owner={o}")));
        l.extend(self.group.as_ref().map(|g| format!("group={g}")));
        l
    }
}

fn id_name(host: &dyn Host, file: &str, id: u32) -> Option<String> {
    let t = text(host, file).ok()?;
    t.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        f.next()?;
        (f.next()?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

/// Stat of `path` (symlinks followed); `None` when it does not exist.
pub fn file_stat(host: &dyn Host, path: &str) -> Result<Option<FileStat>, NativeError> {
    let m: FileMeta = match host.metadata(path, true) {
        Ok(m) => m,
        Err(HostError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let kind = match m.kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Other => "other",
    };
    Ok(Some(FileStat {
        kind,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        owner: id_name(host, "/etc/passwd", m.uid),
        group: id_name(host, "/etc/group", m.gid),
    }))
}

/// Transport of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (v4 or v6).
    Tcp,
    /// UDP (v4 or v6).
    Udp,
}

/// A socket in LISTEN state (TCP) or bound and unconnected (UDP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Listener {
    /// Transport.
    pub proto: Proto,
    /// Local address.
    pub addr: IpAddr,
    /// Local port.
    pub port: u16,
}

impl Listener {
    /// Line form: `tcp 0.0.0.0:22`, `udp [::]:123`.
    pub fn line(&self) -> String {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        match self.addr {
            IpAddr::V4(a) => format!("{proto} {a}:{}", self.port),
            IpAddr::V6(a) => format!("{proto} [{a}]:{}", self.port),
        }
    }

    /// True for loopback-only sockets.
    pub fn is_loopback(&self) -> bool {
        self.addr.is_loopback()
    }
}

/// Listening sockets from `/proc/net/{tcp,tcp6,udp,udp6}` (missing tables are skipped), sorted and
/// deduplicated.
pub fn listeners(host: &dyn Host) -> Result<Vec<Listener>, NativeError> {
    let mut out = Vec::new();
    for (file, proto, state) in [
        ("/proc/net/tcp", Proto::Tcp, "0A"),
        ("/proc/net/tcp6", Proto::Tcp, "0A"),
        ("/proc/net/udp", Proto::Udp, "07"),
        ("/proc/net/udp6", Proto::Udp, "07"),
    ] {
        let t = match text(host, file) {
            Ok(t) => t,
            Err(NativeError::Host(HostError::NotFound(_))) => continue,
            Err(e) => return Err(e),
        };
        for line in t.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != state {
                continue;
            }
            let bad = |what: &str| NativeError::Format {
                file: file.to_owned(),
                what: what.to_owned(),
            };
            let (addr, port) = f[1].split_once(':').ok_or_else(|| bad("local address"))?;
            let port = u16::from_str_radix(port, 16).map_err(|_| bad("port"))?;
            let addr = parse_proc_addr(addr).ok_or_else(|| bad("address"))?;
            out.push(Listener { proto, addr, port });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `/proc/net` addresses are 32-bit words in host (little-endian) byte order.
fn parse_proc_addr(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::swap_bytes);
    // Byte offsets below slice the text: only ASCII keeps them on character boundaries.
    if !hex.is_ascii() {
        return None;
    }
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?.to_be_bytes());
            }
            let v6 = Ipv6Addr::from(b);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// Module names compare with `-` and `_` as the same character.
pub fn module_key(name: &str) -> String {
    name.replace('-', "_")
}

/// Loaded kernel modules from `/proc/modules` (normalized names).
pub fn loaded_modules(host: &dyn Host) -> Result<BTreeSet<String>, NativeError> {
    Ok(text(host, "/proc/modules")?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(module_key)
        .collect())
}

/// Modules disabled in `/etc/modprobe.d`, `/lib/modprobe.d` and `/usr/lib/modprobe.d` (`*.conf`):
/// `blacklist NAME`, or `install NAME /bin/false` (or `/bin/true`, `/usr/bin/false`, `/usr/bin/true`).
pub fn blacklisted_modules(host: &dyn Host) -> Result<BTreeSet<String>, NativeError> {
    let mut out = BTreeSet::new();
    for dir in ["/etc/modprobe.d", "/lib/modprobe.d", "/usr/lib/modprobe.d"] {
        let entries = match host.read_dir(dir) {
            Ok(e) => e,
            Err(HostError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for e in entries.iter().filter(|e| e.name.ends_with(".conf")) {
            let t = text(host, &format!("{dir}/{}", e.name))?;
            for line in t.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                match f.as_slice() {
                    ["blacklist", m, ..] => {
                        out.insert(module_key(m));
                    }
                    ["install", m, cmd, ..]
                        if matches!(
                            *cmd,
                            "/bin/false" | "/bin/true" | "/usr/bin/false" | "/usr/bin/true"
                        ) =>
                    {
                        out.insert(module_key(m));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// Installed packages (`Status: install ok installed`) from `/var/lib/dpkg/status`: name → version.
pub fn installed_packages(host: &dyn Host) -> Result<BTreeMap<String, String>, NativeError> {
    let t = text(host, "/var/lib/dpkg/status")?;
    let mut out = BTreeMap::new();
    for para in t.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, String::new(), false);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed") && v.starts_with("install");
            }
        }
        if let (Some(n), true) = (name, installed) {
            out.insert(n.to_owned(), version);
        }
    }
    Ok(out)
}

/// One entry of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Mount point (octal escapes decoded).
    pub mountpoint: String,
    /// File system type.
    pub fstype: String,
    /// Options, in order.
    pub options: Vec<String>,
}

impl Mount {
    /// Line form: `FSTYPE ,opt1,opt2,` (leading and trailing commas so `r:,nodev,` is exact).
    pub fn line(&self) -> String {
        format!("{} ,{},", self.fstype, self.options.join(","))
    }
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // `\NNN` up to `\377` is one byte; a larger octal value is not an escape (and would
        // overflow a byte), so it is kept as text.
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts from `/proc/mounts`, in order.
pub fn mounts(host: &dyn Host) -> Result<Vec<Mount>, NativeError> {
    Ok(text(host, "/proc/mounts")?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| Mount {
                mountpoint: unescape_octal(f[1]),
                fstype: f[2].to_owned(),
                options: f[3].split(',').map(str::to_owned).collect(),
            })
        })
        .collect())
}

/// The mount visible at `mountpoint` (the last one mounted there).
pub fn mount_at(host: &dyn Host, mountpoint: &str) -> Result<Option<Mount>, NativeError> {
    Ok(mounts(host)?
        .into_iter()
        .rev()
        .find(|m| m.mountpoint == mountpoint))
}

/// Files with the setuid or setgid bit under `dirs`, walking at most `entries_max` entries in total,
/// paced by `governor`. Symlinks are not followed; `/proc` and `/sys` are never entered.
pub fn setuid_files(
    host: &dyn Host,
    dirs: &[String],
    entries_max: usize,
    governor: &mut Governor<'_>,
) -> Result<Vec<String>, NativeError> {
    governor.enter();
    let found = setuid_walk(host, dirs, entries_max, governor);
    governor.leave();
    found
}

fn setuid_walk(
    host: &dyn Host,
    dirs: &[String],
    entries_max: usize,
    governor: &mut Governor<'_>,
) -> Result<Vec<String>, NativeError> {
    let mut out = Vec::new();
    let mut stack: Vec<String> = dirs.iter().rev().cloned().collect();
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        if dir == "/proc" || dir == "/sys" {
            continue;
        }
        let entries = match host.read_dir(&dir) {
            Ok(e) => e,
            Err(HostError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let base = dir.trim_end_matches('/');
        let mut subdirs = Vec::new();
        for e in entries {
            seen += 1;
            governor.charge_entry();
            if seen > entries_max {
                return Err(NativeError::Budget(dirs.join(","), entries_max));
            }
            let path = format!("{base}/{}", e.name);
            match e.kind {
                FileKind::Dir => subdirs.push(path),
                FileKind::File => {
                    let m = host.metadata(&path, false)?;
                    if m.mode & 0o6000 != 0 {
                        out.push(path);
                    }
                }
                _ => {}
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proc_addresses_decode() {
        assert_eq!(
            parse_proc_addr("0100007F").unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000000000000")
                .unwrap()
                .to_string(),
            "::"
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000")
                .unwrap()
                .to_string(),
            "::1"
        );
        assert_eq!(
            parse_proc_addr("0000000000000000FFFF00000100007F")
                .unwrap()
                .to_string(),
            "127.0.0.1"
        );
        assert!(parse_proc_addr("xyz").is_none());
        // 32 bytes but not 32 ASCII digits: refused, not a slice across a character boundary.
        assert!(parse_proc_addr(&format!("{}\u{e9}{}", "0".repeat(7), "0".repeat(23))).is_none());
    }

    #[test]
    fn octal_escapes_decode() {
        assert_eq!(unescape_octal(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_octal(r"/x\"), r"/x\");
        // Above `\377` is not a byte: kept as text instead of overflowing.
        assert_eq!(unescape_octal(r"/a\377"), "/a\u{fffd}");
        assert_eq!(unescape_octal(r"/a\777"), r"/a\777");
    }
}
