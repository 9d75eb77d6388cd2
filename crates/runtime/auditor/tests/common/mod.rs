//! Fixture root trees for a hardened ("passing") committee node and a drifted ("failing") one,
//! built in a temporary directory so file modes and symlinks are exact.
#![allow(clippy::unwrap_used, dead_code)]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use bulwark_audit::host::{CommandFixture, CommandOutput, CommandSource};
use bulwark_auditor::machine::RootedHost;

/// Which host to build.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// Meets the committee-node baseline and manifest.
    Passing,
    /// Drifted: root login, forwarding, an extra listener, telnetd, USB storage, an extra setuid file.
    Failing,
}

pub fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub fn chmod(root: &Path, path: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, path: &str, target: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

/// True when the tests run as root (file ownership checks expect uid 0).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// The core audit crate's directory, which holds the shipped policies (`policies/`).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../core/audit")
}

/// The shared Wazuh data set, or `None` with a printed SKIP line.
pub fn stock_dir() -> Option<PathBuf> {
    let d = manifest_dir().join("../../../../shared/data/sca-policies");
    if d.is_dir() {
        Some(d)
    } else {
        println!("SKIP: {} is absent; test not run", d.display());
        None
    }
}

/// Builds the host tree under `root`.
pub fn build(root: &Path, v: Variant) {
    let fail = v == Variant::Failing;
    build_users(root, fail);
    build_sshd(root, fail);
    build_sysctl(root, fail);
    build_mounts_modules_packages(root, fail);
    build_systemd(root, fail);
    build_net_and_binaries(root, fail);
}

/// The OS release and the user and group databases.
fn build_users(root: &Path, fail: bool) {
    write(root, "/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n");
    write(root, "/etc/debian_version", "12.8\n");
    write(
        root,
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n",
    );
    write(root, "/etc/group", "root:x:0:\nshadow:x:42:\n");
    write(root, "/etc/shadow", "root:*:19000:0:99999:7:::\n");
    chmod(root, "/etc/passwd", 0o644);
    chmod(root, "/etc/shadow", if fail { 0o644 } else { 0o640 });
}

/// sshd's main file and drop-in.
fn build_sshd(root: &Path, fail: bool) {
    // sshd: the drop-in comes first through Include, so its value wins over the main file's.
    write(
        root,
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nPasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\nX11Forwarding no\nAllowAgentForwarding no\n\
         Match User backup\n  PermitRootLogin yes\n",
    );
    chmod(root, "/etc/ssh/sshd_config", 0o600);
    write(
        root,
        "/etc/ssh/sshd_config.d/10-bulwark.conf",
        &format!(
            "PermitRootLogin {}\nPasswordAuthentication no\nMaxAuthTries 3\n",
            if fail { "yes" } else { "no" }
        ),
    );
}

/// Kernel parameters under /proc/sys.
fn build_sysctl(root: &Path, fail: bool) {
    for (key, pass, failv) in [
        ("kernel/ostype", "Linux", "Linux"),
        ("kernel/randomize_va_space", "2", "2"),
        ("kernel/kptr_restrict", "1", "1"),
        ("kernel/dmesg_restrict", "1", "1"),
        ("kernel/yama/ptrace_scope", "1", "1"),
        ("kernel/unprivileged_bpf_disabled", "2", "2"),
        ("fs/suid_dumpable", "0", "0"),
        ("fs/protected_symlinks", "1", "1"),
        ("fs/protected_hardlinks", "1", "1"),
        ("net/ipv4/ip_forward", "0", "1"),
        ("net/ipv4/conf/all/accept_redirects", "0", "0"),
        ("net/ipv4/conf/all/send_redirects", "0", "0"),
        ("net/ipv4/conf/all/accept_source_route", "0", "0"),
        ("net/ipv4/tcp_syncookies", "1", "1"),
        (
            "net/ipv4/ip_local_port_range",
            "32768\t60999",
            "32768\t60999",
        ),
    ] {
        write(
            root,
            &format!("/proc/sys/{key}"),
            &format!("{}\n", if fail { failv } else { pass }),
        );
    }
}

/// Mounts, kernel modules and the dpkg database.
fn build_mounts_modules_packages(root: &Path, fail: bool) {
    write(
        root,
        "/proc/mounts",
        "/dev/sda1 / ext4 rw,relatime 0 0\ntmpfs /tmp tmpfs rw,nosuid,nodev,relatime 0 0\n\
         tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec 0 0\n/dev/sdb1 /mnt/my\\040data ext4 rw 0 0\n",
    );
    write(
        root,
        "/etc/modprobe.d/bulwark.conf",
        "# disabled modules\nblacklist usb-storage\ninstall dccp /bin/false\nblacklist sctp\nblacklist cramfs\n",
    );
    write(
        root,
        "/proc/modules",
        &format!(
            "ext4 1003520 1 - Live 0x0000000000000000\nnf_tables 372736 0 - Live 0x0000000000000000\n{}",
            if fail { "usb_storage 81920 0 - Live 0x0000000000000000\n" } else { "" }
        ),
    );
    let mut status = String::from(
        "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2+deb12u3\n\n\
         Package: systemd-timesyncd\nStatus: install ok installed\nVersion: 252.30-1\n\n\
         Package: telnetd\nStatus: deinstall ok config-files\nVersion: 0.17\n\n",
    );
    if fail {
        status.push_str(
            "Package: inetutils-telnetd\nStatus: install ok installed\nVersion: 2.4-2\n\n",
        );
    }
    write(root, "/var/lib/dpkg/status", &status);
}

/// systemd units and their enablement links.
fn build_systemd(root: &Path, fail: bool) {
    write(
        root,
        "/lib/systemd/system/ssh.service",
        "[Unit]\nDescription=ssh\n[Install]\nWantedBy=multi-user.target\n",
    );
    write(
        root,
        "/lib/systemd/system/systemd-timesyncd.service",
        "[Unit]\n[Install]\nWantedBy=sysinit.target\n",
    );
    write(
        root,
        "/lib/systemd/system/systemd-journald.service",
        "[Unit]\nDescription=journal\n",
    );
    write(
        root,
        "/lib/systemd/system/avahi-daemon.service",
        "[Unit]\n[Install]\nWantedBy=multi-user.target\n",
    );
    link(
        root,
        "/etc/systemd/system/multi-user.target.wants/ssh.service",
        "/lib/systemd/system/ssh.service",
    );
    link(
        root,
        "/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service",
        "/lib/systemd/system/systemd-timesyncd.service",
    );
    link(root, "/etc/systemd/system/ctrl-alt-del.target", "/dev/null");
    if fail {
        link(
            root,
            "/etc/systemd/system/multi-user.target.wants/avahi-daemon.service",
            "/lib/systemd/system/avahi-daemon.service",
        );
    }
}

/// Listening sockets under /proc/net and setuid binaries.
fn build_net_and_binaries(root: &Path, fail: bool) {
    // /proc/net: sshd on 0.0.0.0:22, postgres on loopback, a committee port on [::]:7100, and on the
    // failing host an extra listener on 0.0.0.0:8080.
    let hdr = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    let mut tcp = format!(
        "{hdr}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   \
         1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 2\n   \
         2: 0100007F:1538 0100007F:A000 01 00000000:00000000 00:00000000 00000000   100        0 3\n"
    );
    if fail {
        tcp.push_str("   3: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4\n");
    }
    write(root, "/proc/net/tcp", &tcp);
    write(
        root,
        "/proc/net/tcp6",
        &format!("{hdr}   0: 00000000000000000000000000000000:1BBC 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5\n"),
    );
    write(root, "/proc/net/udp", &format!("{hdr}   0: 0100007F:0143 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 6\n"));

    write(root, "/usr/bin/passwd", "binary");
    chmod(root, "/usr/bin/passwd", 0o4755);
    write(root, "/usr/bin/ls", "binary");
    chmod(root, "/usr/bin/ls", 0o755);
    if fail {
        write(root, "/usr/local/bin/rootshell", "binary");
        chmod(root, "/usr/local/bin/rootshell", 0o4755);
    }
}

/// Command and process answers for the fixture host.
pub fn fixture(v: Variant) -> CommandFixture {
    let mut f = CommandFixture::default();
    let out = |s: &str| CommandOutput {
        stdout: s.to_owned(),
        stderr: String::new(),
        exit_code: Some(0),
    };
    let root_login = if v == Variant::Failing { "yes" } else { "no" };
    f.commands.insert(
        "sshd -T".into(),
        out(&format!(
            "port 22\npermitrootlogin {root_login}\nPermitRootLogin {root_login}\nmaxauthtries 3\n"
        )),
    );
    f.commands
        .insert("echo hello".into(), out("hello\nworld\n"));
    f.commands.insert(
        "stat -c %a /etc/shadow".into(),
        CommandOutput {
            stdout: String::new(),
            stderr: "640\n".into(),
            exit_code: Some(0),
        },
    );
    f.processes = Some(vec![
        "systemd".into(),
        "sshd".into(),
        "systemd-timesyncd".into(),
    ]);
    f
}

pub fn host(root: &Path, v: Variant) -> RootedHost {
    RootedHost::new(root, CommandSource::Fixture(fixture(v)))
}

pub fn tree(v: Variant) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), v);
    d
}
