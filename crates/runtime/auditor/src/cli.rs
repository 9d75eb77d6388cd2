//! `bulwark audit`: one scan from the command line. The `bulwark` binary flattens [`AuditArgs`] into
//! its `audit` subcommand and returns [`run`]'s exit code.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bulwark_audit::agent::Auditor;
use bulwark_audit::budget::{Budget, BudgetError};
use bulwark_audit::eval::Scan;
use bulwark_audit::format;
use bulwark_audit::host::{CommandFixture, CommandLimits, CommandSource, HostError};
use bulwark_audit::report::RuleOutcome;
use bulwark_audit::rule::{PatternCache, Rule};

use crate::clock::SystemClock;
use crate::load::{load_manifest, load_policies};
use crate::machine::RootedHost;

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable summary of failures.
    Text,
    /// Full report as JSON with a summary.
    Json,
    /// JUnit XML (one test case per check).
    Junit,
    /// SARIF 2.1.0.
    Sarif,
}

/// Arguments of `bulwark audit`.
///
/// Exit codes: 0 every decided check passed, 1 at least one check failed, 2 an error (a policy,
/// manifest or fixture could not be loaded; the other policies are still scanned and reported).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Policy files (Wazuh SCA YAML, 4.x or 5.x dialect, or bulwark's own).
    #[arg(long = "policy", value_name = "FILE", num_args = 1.., required_unless_present = "rule")]
    pub policy: Vec<PathBuf>,
    /// Evaluate file rules against this directory tree instead of `/` (image builds, tests).
    /// Command rules then need --commands-fixture.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// Answer command and process rules from this YAML/JSON file instead of running anything.
    #[arg(long, value_name = "FILE")]
    pub commands_fixture: Option<PathBuf>,
    /// Role manifest (allowed ports, services, packages, modules, setuid binaries).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Evaluate one rule by itself and print its outcome (e.g. `--rule 'sshd:permitrootlogin -> no'`).
    #[arg(long, value_name = "RULE")]
    pub rule: Option<String>,
    /// Run every command for real instead of answering `dpkg-query -s`, `stat`, `sysctl`, `which`
    /// and `systemctl is-enabled` from the root's files.
    #[arg(long)]
    pub no_intrinsic_commands: bool,
    /// Per-command timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub command_timeout_ms: u64,
    /// Bytes of each command's stdout and stderr kept.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub command_output_max: usize,
    /// Pace whole-tree walks (`d:` searches, the manifest's setuid scan) to at most this share of
    /// one core, 1-100. A one-shot scan is unlimited unless given; agent mode defaults to 20.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub io_budget_percent: Option<u8>,
    /// Walk at most this many directory entries per second (default: unlimited).
    #[arg(long, value_name = "N")]
    pub io_budget_entries_per_s: Option<NonZeroU64>,
    /// Read at most this many bytes per second while searching directories (default: unlimited).
    #[arg(long, value_name = "BYTES")]
    pub io_budget_read_bytes_per_s: Option<NonZeroU64>,
}

impl AuditArgs {
    /// The walk budget the `--io-budget-*` flags ask for ([`Budget::unlimited`] without them).
    pub fn budget(&self) -> Result<Budget, BudgetError> {
        Ok(Budget::new(self.io_budget_percent.unwrap_or(100))?
            .with_entries_per_s_max(self.io_budget_entries_per_s)
            .with_read_bytes_per_s_max(self.io_budget_read_bytes_per_s))
    }
}

/// Why `--commands-fixture` could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The file could not be read.
    #[error("{}: cannot read the command fixture: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a command fixture.
    #[error(transparent)]
    Parse(#[from] HostError),
}

fn command_source(args: &AuditArgs) -> Result<CommandSource, FixtureError> {
    command_source_for(
        &args.root,
        args.commands_fixture.as_deref(),
        CommandLimits {
            timeout: Duration::from_millis(args.command_timeout_ms),
            output_bytes_max: args.command_output_max,
        },
    )
}

/// Where command rules get their answers when file rules read `root`: the fixture file if one
/// is given, the live system (within `limits`) when `root` is `/`, otherwise none, with why.
/// `bulwark audit` and the node's own audit agent choose alike.
pub fn command_source_for(
    root: &Path,
    fixture: Option<&Path>,
    limits: CommandLimits,
) -> Result<CommandSource, FixtureError> {
    if let Some(path) = fixture {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(CommandSource::Fixture(CommandFixture::parse(
            &text,
            &path.display().to_string(),
        )?));
    }
    if root == Path::new("/") {
        Ok(CommandSource::Live(limits))
    } else {
        Ok(CommandSource::Disabled(format!(
            "the root {} is not the live system; a commands fixture answers command rules",
            root.display()
        )))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs one scan and prints the report to stdout; diagnostics go to stderr.
pub fn run(args: AuditArgs) -> ExitCode {
    let mut errors = 0usize;
    let commands = match command_source(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\nhint: fix or drop --commands-fixture");
            return ExitCode::from(2);
        }
    };
    let budget = match args.budget() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}\nhint: pass --io-budget-percent between 1 and 100");
            return ExitCode::from(2);
        }
    };
    let host = RootedHost::new(&args.root, commands);
    let mut patterns = PatternCache::default();

    if let Some(text) = &args.rule {
        let rule = match Rule::parse(text, &mut patterns) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let r = Scan::new(&host)
            .with_intrinsic_commands(!args.no_intrinsic_commands)
            .with_budget(budget, &SystemClock)
            .rule(&rule);
        let why = r.reason.map(|w| format!(" ({w})")).unwrap_or_default();
        println!("{:?}{why}: {}", r.outcome, r.rule);
        return match r.outcome {
            RuleOutcome::Found => ExitCode::SUCCESS,
            RuleOutcome::NotFound => ExitCode::from(1),
            RuleOutcome::Invalid => ExitCode::from(2),
        };
    }

    let (policies, load_errors) = load_policies(&args.policy, &mut patterns);
    for e in &load_errors {
        eprintln!("error: {e}\nhint: fix the policy file; the other policies are still scanned");
        errors += 1;
    }
    let manifest = match &args.manifest {
        None => None,
        Some(path) => match load_manifest(path) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("error: {e}\nhint: fix the manifest; the policies are still scanned");
                errors += 1;
                None
            }
        },
    };
    let mut auditor = Auditor::new(policies, load_errors, manifest);
    auditor.set_intrinsic_commands(!args.no_intrinsic_commands);
    auditor.set_pace(budget, Arc::new(SystemClock));
    let (report, _) = auditor.scan(&host, now_ms());
    let out = match args.format {
        OutputFormat::Text => format::text(&report),
        OutputFormat::Json => format::json(&report),
        OutputFormat::Junit => format::junit(&report),
        OutputFormat::Sarif => format::sarif(&report),
    };
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    if errors > 0 {
        ExitCode::from(2)
    } else if report.summary().failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
