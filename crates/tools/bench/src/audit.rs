//! `bulwark bench audit`: CPU time and peak memory of a scan of this host with cis_debian12 and the
//! distro-independent Linux policy, against lynis and OpenSCAP run in the same process, plus the
//! time to re-check after one file changes.
//!
//! Prints one JSON object per line with exactly the keys
//! `bench, metric, value, unit, peer, peer_value, ratio` (`ratio = value / peer_value`, below 1 is
//! better for us); a peer that is not installed gets `peer_value: null` and a reason on stderr.
//!
//! Inputs located at run time (never embedded):
//! - the Wazuh policies: `$BULWARK_SCA_POLICIES`, else `../shared/data/sca-policies/wazuh-main`
//!   from the working directory, else the same path relative to this crate's source;
//! - the Debian 12 SCAP content: `$BULWARK_SSG_DEBIAN12_DS`, else
//!   `/usr/share/xml/scap/ssg/content/ssg-debian12-ds.xml` (package `ssg-debian` ≥ 0.1.76).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

use bulwark_audit::agent::Auditor;
use bulwark_audit::host::{CommandFixture, CommandLimits, CommandSource};
use bulwark_audit::rule::PatternCache;
use bulwark_auditor::load::load_policy;
use bulwark_auditor::machine::RootedHost;
use bulwark_auditor::watch::FileWatch;

const POLICY_FILES: [&str; 2] = [
    "debian__cis_debian12.yml",
    "generic__sca_distro_independent_linux.yml",
];
const OSCAP_PROFILE: &str = "xccdf_org.ssgproject.content_profile_standard";

/// Errors inside the benchmark (reported on stderr; the affected lines carry nulls).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// An input is missing.
    #[error("{0}")]
    Missing(String),
    /// A measurement failed.
    #[error("{0}")]
    Failed(String),
}

fn cpu_s(who: UsageWho) -> f64 {
    getrusage(who).map_or(0.0, |u| {
        let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

fn cpu_total_s() -> f64 {
    cpu_s(UsageWho::RUSAGE_SELF) + cpu_s(UsageWho::RUSAGE_CHILDREN)
}

/// `VmHWM` of a process in MB, from `/proc/<pid>/status`.
fn vm_hwm_mb(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn policies_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("BULWARK_SCA_POLICIES").map(PathBuf::from),
        Some(PathBuf::from("../shared/data/sca-policies/wazuh-main")),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../../shared/data/sca-policies/wazuh-main"),
        ),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| POLICY_FILES.iter().all(|f| d.join(f).is_file()))
}

struct Ours {
    cpu_s: f64,
    self_cpu_s: f64,
    parse_cpu_s: f64,
    peak_mb: f64,
    checks: u32,
    commands: usize,
}

fn measure_ours(dir: &Path) -> Result<Ours, BenchError> {
    let cpu0 = cpu_total_s();
    let self0 = cpu_s(UsageWho::RUSAGE_SELF);
    let mut pc = PatternCache::default();
    let mut policies = Vec::new();
    for f in POLICY_FILES {
        policies.push(
            load_policy(&dir.join(f), &mut pc).map_err(|e| BenchError::Failed(e.to_string()))?,
        );
    }
    let parse_cpu_s = cpu_s(UsageWho::RUSAGE_SELF) - self0;
    let host = RootedHost::new("/", CommandSource::Live(CommandLimits::default()));
    let mut scan = bulwark_audit::eval::Scan::new(&host);
    let results: Vec<_> = policies.iter().map(|p| scan.policy(p)).collect();
    let cpu = cpu_total_s() - cpu0;
    let self_cpu_s = cpu_s(UsageWho::RUSAGE_SELF) - self0;
    let checks = results
        .iter()
        .map(|r| r.passed + r.failed + r.not_applicable)
        .sum();
    let peak_mb = vm_hwm_mb("self")
        .ok_or_else(|| BenchError::Failed("no VmHWM in /proc/self/status".into()))?;
    Ok(Ours {
        cpu_s: cpu,
        self_cpu_s,
        parse_cpu_s,
        peak_mb,
        checks,
        commands: scan.commands_run,
    })
}

struct Peer {
    cpu_s: f64,
    peak_mb: f64,
}

/// How a peer's peak memory is taken.
#[derive(Clone, Copy)]
enum PeerMemory {
    /// Poll the peer process's own `VmHWM` (a high-water mark: polling loses only the last
    /// milliseconds). Right for a single-process tool (oscap).
    OwnHighWater,
    /// `ru_maxrss` of RUSAGE_CHILDREN: the largest process among all descendants waited for so far.
    /// Right for a shell-script tool (lynis) when it is the first child this process runs.
    LargestDescendant,
}

/// Runs a peer to completion; CPU from RUSAGE_CHILDREN deltas (includes its descendants).
fn measure_peer(argv: &[&str], memory: PeerMemory) -> Result<Peer, BenchError> {
    let installed = [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(argv[0]).is_file());
    if !installed {
        return Err(BenchError::Missing(format!(
            "`{}` is not installed",
            argv[0]
        )));
    }
    let before = cpu_s(UsageWho::RUSAGE_CHILDREN);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Failed(format!("{}: {e}", argv[0])))?;
    let pid = child.id().to_string();
    let mut peak: f64 = 0.0;
    loop {
        if let Some(m) = vm_hwm_mb(&pid) {
            peak = peak.max(m);
        }
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(BenchError::Failed(e.to_string())),
        }
    }
    if let PeerMemory::LargestDescendant = memory {
        peak = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| u.max_rss() as f64 / 1024.0);
    }
    Ok(Peer {
        cpu_s: cpu_s(UsageWho::RUSAGE_CHILDREN) - before,
        peak_mb: peak,
    })
}

/// Whether `sshd` is installed here: the re-check of a file under `/etc/ssh` schedules the
/// policies' `sshd -T` command checks, which then run for real.
fn sshd_installed() -> bool {
    ["/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// Wall time from writing one watched file to the end of its re-check (inotify delivery included),
/// on a temporary Debian-like root with the same two policies plus the committee-node baseline
/// loaded; the change flips `PermitRootLogin`. With `live_commands` the command checks the change
/// schedules (`sshd -T ...`) run as processes on this machine and count in the figure; without,
/// they answer "not run" at once (and the figure says so).
fn measure_recheck(dir: &Path, live_commands: bool) -> Result<f64, BenchError> {
    let fail = |e: &dyn std::fmt::Display| BenchError::Failed(e.to_string());
    let root = std::env::temp_dir().join(format!("bulwark-audit-bench-{}", std::process::id()));
    let ssh = root.join("etc/ssh");
    std::fs::create_dir_all(&ssh).map_err(|e| fail(&e))?;
    let cfg = ssh.join("sshd_config");
    std::fs::write(&cfg, "PermitRootLogin no\nMaxAuthTries 4\n").map_err(|e| fail(&e))?;
    // Enough of a Debian 12 tree for both stock policies' requirements to pass.
    for (path, text) in [
        ("etc/debian_version", "12.8\n"),
        (
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nVERSION=\"12 (bookworm)\"\nID=debian\n",
        ),
        ("proc/sys/kernel/ostype", "Linux\n"),
    ] {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("fixture paths have a parent"))
            .map_err(|e| fail(&e))?;
        std::fs::write(p, text).map_err(|e| fail(&e))?;
    }
    let result = (|| {
        let mut pc = PatternCache::default();
        let mut policies = Vec::new();
        for f in POLICY_FILES {
            policies.push(load_policy(&dir.join(f), &mut pc).map_err(|e| fail(&e))?);
        }
        policies.push(
            bulwark_audit::policy::parse_policy(
                bulwark_audit::COMMITTEE_NODE_POLICY,
                "committee-node.yml",
                &mut pc,
            )
            .map_err(|e| fail(&e))?,
        );
        let commands = if live_commands {
            CommandSource::Live(bulwark_audit::host::CommandLimits::default())
        } else {
            CommandSource::Fixture(CommandFixture::default())
        };
        let host = RootedHost::new(&root, commands);
        let mut auditor = Auditor::new(policies, Vec::new(), None);
        auditor.scan(&host, 0);
        let watched: BTreeSet<String> = auditor.watched_paths();
        let watch = FileWatch::new(&root, &watched).map_err(|e| fail(&e))?;
        let t0 = Instant::now();
        std::fs::write(&cfg, "PermitRootLogin yes\nMaxAuthTries 4\n").map_err(|e| fail(&e))?;
        let changed = watch.wait(Duration::from_secs(2), Duration::from_millis(2));
        if changed.is_empty() {
            return Err(BenchError::Failed("no inotify event within 2 s".into()));
        }
        let diff = auditor.recheck(&host, &changed, 1);
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if diff.is_empty() {
            return Err(BenchError::Failed(
                "re-check found no change after flipping PermitRootLogin".into(),
            ));
        }
        Ok(ms)
    })();
    // Best effort: a leftover temp dir is harmless.
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn line(metric: &str, value: Option<f64>, unit: &str, peer: &str, peer_value: Option<f64>) {
    crate::report::figure("audit", metric, value, unit, Some(peer), peer_value);
}

/// Runs the audit benchmark and prints its JSON lines to stdout (diagnostics to stderr).
pub fn run_bench() {
    // lynis runs first: its peak memory is read from RUSAGE_CHILDREN, which must not yet include
    // any larger child.
    let lynis = measure_peer(
        &["lynis", "audit", "system", "--quick", "--no-colors"],
        PeerMemory::LargestDescendant,
    );
    let dir = policies_dir();
    let ours = match &dir {
        Some(d) => match measure_ours(d) {
            Ok(o) => {
                eprintln!(
                    "bench audit: ours evaluated {} checks and answered {} distinct commands in \
                     {:.3} s CPU ({:.3} s in-process of which {:.3} s parsing YAML, the rest in \
                     spawned commands), {:.1} MB peak",
                    o.checks, o.commands, o.cpu_s, o.self_cpu_s, o.parse_cpu_s, o.peak_mb
                );
                Some(o)
            }
            Err(e) => {
                eprintln!("bench audit: our scan failed: {e}");
                None
            }
        },
        None => {
            eprintln!("bench audit: Wazuh policies not found (set BULWARK_SCA_POLICIES or run from the repo root with ../shared/data present)");
            None
        }
    };

    let ds = std::env::var_os("BULWARK_SSG_DEBIAN12_DS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/xml/scap/ssg/content/ssg-debian12-ds.xml"));
    let oscap = if ds.is_file() {
        let ds = ds.display().to_string();
        measure_peer(
            &["oscap", "xccdf", "eval", "--profile", OSCAP_PROFILE, &ds],
            PeerMemory::OwnHighWater,
        )
    } else {
        Err(BenchError::Missing(format!(
            "{} is absent (Debian 12 SCAP content ships in ssg-debian >= 0.1.76; set BULWARK_SSG_DEBIAN12_DS)",
            ds.display()
        )))
    };
    for (name, r) in [("lynis", &lynis), ("oscap", &oscap)] {
        match r {
            Ok(p) => eprintln!(
                "bench audit: {name} {:.3} s CPU, {:.1} MB peak",
                p.cpu_s, p.peak_mb
            ),
            Err(e) => eprintln!("bench audit: {name} not measured: {e}"),
        }
    }

    let our_cpu = ours.as_ref().map(|o| o.cpu_s);
    let our_mb = ours.as_ref().map(|o| o.peak_mb);
    line(
        "cpu_time",
        our_cpu,
        "s",
        "lynis",
        lynis.as_ref().ok().map(|p| p.cpu_s),
    );
    line(
        "cpu_time",
        our_cpu,
        "s",
        "oscap",
        oscap.as_ref().ok().map(|p| p.cpu_s),
    );
    line(
        "peak_rss",
        our_mb,
        "MB",
        "oscap",
        oscap.as_ref().ok().map(|p| p.peak_mb),
    );
    line(
        "peak_rss",
        our_mb,
        "MB",
        "lynis",
        lynis.as_ref().ok().map(|p| p.peak_mb),
    );

    // The re-check includes the `sshd -T` checks a change under /etc/ssh schedules when sshd
    // is installed; without it those checks cannot run and the metric's name says so.
    let live = sshd_installed();
    let recheck = match &dir {
        Some(d) => measure_recheck(d, live)
            .map_err(|e| eprintln!("bench audit: re-check not measured: {e}"))
            .ok(),
        None => None,
    };
    let metric = if live {
        "recheck_one_file_with_sshd_T"
    } else {
        eprintln!("bench audit: sshd is not installed: the re-check's scheduled `sshd -T` checks answer \"not run\" at once, so this figure leaves them out (apt-get install openssh-server to include them)");
        "recheck_one_file_without_sshd_T"
    };
    // The goal (50 ms) is the reference: no peer re-checks on file change.
    line(metric, recheck, "ms", "goal_50ms", Some(50.0));
}
