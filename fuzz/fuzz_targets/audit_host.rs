//! An in-memory [`Host`] shared by the `audit_*` targets (included with `mod audit_host;`, not a
//! target itself): a small fixed committee-node tree, so fuzzed rules, policies and manifests are
//! evaluated end to end without touching the machine. Commands are never run; the intrinsic forms
//! (`stat`, `sysctl`, `dpkg-query -s`, ...) are answered from this tree by the audit crate itself.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bulwark_audit::host::{CommandOutput, DirEntry, FileKind, FileMeta, Host, HostError};

enum Node {
    File { bytes: Vec<u8>, mode: u32 },
    Dir,
    Symlink(String),
}

/// A fixed tree of files, directories and symlinks, keyed by absolute path.
pub struct MemoryHost {
    nodes: BTreeMap<String, Node>,
}

fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let (dir, _) = path.rsplit_once('/')?;
    Some(if dir.is_empty() { "/" } else { dir })
}

impl MemoryHost {
    /// The fixture tree, plus `/fuzz/input` holding `extra` (so content terms see fuzzed lines).
    pub fn fixture(extra: &str) -> Self {
        let mut host = Self {
            nodes: BTreeMap::new(),
        };
        host.add_dir("/");
        let files: &[(&str, &str, u32)] = &[
            (
                "/etc/os-release",
                "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n",
                0o644,
            ),
            ("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644),
            ("/etc/group", "root:x:0:\nshadow:x:42:\n", 0o644),
            ("/etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640),
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\nMaxAuthTries 4\n\
                 Match User backup\n  PasswordAuthentication yes\n",
                0o600,
            ),
            (
                "/etc/ssh/sshd_config.d/10-bulwark.conf",
                "PasswordAuthentication no\n",
                0o600,
            ),
            (
                "/etc/modprobe.d/bulwark.conf",
                "blacklist usb-storage\ninstall dccp /bin/false\n",
                0o644,
            ),
            ("/proc/sys/net/ipv4/ip_forward", "0\n", 0o644),
            ("/proc/sys/kernel/randomize_va_space", "2\n", 0o644),
            (
                "/proc/net/tcp",
                "  sl  local_address rem_address   st\n   0: 00000000:0016 00000000:0000 0A\n   1: 0100007F:1F90 00000000:0000 0A\n",
                0o444,
            ),
            ("/proc/modules", "ext4 1 0 - Live 0x0\nnf_tables 2 0 - Live 0x0\n", 0o444),
            (
                "/proc/mounts",
                "/dev/sda1 / ext4 rw,relatime 0 0\ntmpfs /tmp tmpfs rw,nosuid,nodev,noexec 0 0\n",
                0o444,
            ),
            (
                "/var/lib/dpkg/status",
                "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n\n\
                 Package: telnetd\nStatus: deinstall ok config-files\nVersion: 0.17\n",
                0o644,
            ),
            (
                "/lib/systemd/system/ssh.service",
                "[Unit]\nDescription=ssh\n[Install]\nWantedBy=multi-user.target\n",
                0o644,
            ),
            ("/lib/systemd/system/getty@.service", "[Install]\nWantedBy=getty.target\n", 0o644),
            ("/usr/bin/passwd", "\x7fELF", 0o4755),
            ("/usr/bin/sysctl", "\x7fELF", 0o755),
        ];
        for (path, text, mode) in files {
            host.add_file(path, text.as_bytes().to_vec(), *mode);
        }
        host.add_file("/fuzz/input", extra.as_bytes().to_vec(), 0o644);
        host.add_link(
            "/etc/systemd/system/multi-user.target.wants/ssh.service",
            "/lib/systemd/system/ssh.service",
        );
        host.add_link("/etc/systemd/system/avahi.service", "/dev/null");
        host.add_link("/fuzz/loop", "/fuzz/loop");
        host
    }

    fn add_dir(&mut self, path: &str) {
        if let Some(p) = parent(path) {
            self.add_dir(p);
        }
        self.nodes.entry(path.to_owned()).or_insert(Node::Dir);
    }

    fn add_file(&mut self, path: &str, bytes: Vec<u8>, mode: u32) {
        self.add_dir(parent(path).expect("fixture paths are absolute"));
        self.nodes
            .insert(path.to_owned(), Node::File { bytes, mode });
    }

    fn add_link(&mut self, path: &str, target: &str) {
        self.add_dir(parent(path).expect("fixture paths are absolute"));
        self.nodes
            .insert(path.to_owned(), Node::Symlink(target.to_owned()));
    }

    /// Follows symlinks a few levels (a loop ends as "not found", like ELOOP ends as an error).
    fn resolve(&self, path: &str) -> Result<(&str, &Node), HostError> {
        let mut at = path;
        for _ in 0..8 {
            match self.nodes.get_key_value(at) {
                Some((_, Node::Symlink(t))) => at = t,
                Some((k, n)) => return Ok((k, n)),
                None => break,
            }
        }
        Err(HostError::NotFound(path.to_owned()))
    }
}

fn meta(node: &Node) -> FileMeta {
    let (kind, mode, len) = match node {
        Node::File { bytes, mode } => (FileKind::File, *mode, bytes.len() as u64),
        Node::Dir => (FileKind::Dir, 0o755, 4096),
        Node::Symlink(t) => (FileKind::Symlink, 0o777, t.len() as u64),
    };
    FileMeta {
        kind,
        mode,
        uid: 0,
        gid: if mode == 0o640 { 42 } else { 0 },
        len,
    }
}

impl Host for MemoryHost {
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        match self.resolve(path)?.1 {
            Node::File { bytes, .. } => Ok(bytes.clone()),
            _ => Err(HostError::Unreadable {
                path: path.to_owned(),
                reason: "is a directory".to_owned(),
            }),
        }
    }

    fn metadata(&self, path: &str, follow: bool) -> Result<FileMeta, HostError> {
        if follow {
            return Ok(meta(self.resolve(path)?.1));
        }
        self.nodes
            .get(path)
            .map(meta)
            .ok_or_else(|| HostError::NotFound(path.to_owned()))
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, HostError> {
        let (dir, node) = self.resolve(path)?;
        if !matches!(node, Node::Dir) {
            return Err(HostError::Unreadable {
                path: path.to_owned(),
                reason: "not a directory".to_owned(),
            });
        }
        Ok(self
            .nodes
            .iter()
            .filter(|(p, _)| p.as_str() != "/" && parent(p) == Some(dir))
            .map(|(p, n)| DirEntry {
                name: p.rsplit('/').next().unwrap_or_default().to_owned(),
                kind: meta(n).kind,
            })
            .collect())
    }

    fn read_link(&self, path: &str) -> Result<String, HostError> {
        match self.nodes.get(path) {
            Some(Node::Symlink(t)) => Ok(t.clone()),
            Some(_) => Err(HostError::Unreadable {
                path: path.to_owned(),
                reason: "not a symlink".to_owned(),
            }),
            None => Err(HostError::NotFound(path.to_owned())),
        }
    }

    fn processes(&self) -> Result<Vec<String>, HostError> {
        Ok(vec!["sshd".to_owned(), "systemd".to_owned()])
    }

    fn run_command(&self, line: &str, _argv: &[String]) -> Result<CommandOutput, HostError> {
        Err(HostError::CommandNotRun {
            command: line.to_owned(),
            reason: "the fuzz host runs no command".to_owned(),
        })
    }
}
