//! Rule, check and policy evaluation over a [`Host`].
//!
//! A [`Scan`] holds per-scan caches: each distinct command runs once, and each native fact (sshd
//! config, sockets, packages, …) is read once. Start a new `Scan` for every scan or re-check. A scan
//! also holds the [`Governor`] that paces its `d:` searches (and the manifest's setuid walk) to a
//! [`Budget`]; pacing changes how long a walk takes, never what it finds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::budget::{Budget, Clock, Governor, PaceStats};
use crate::host::{split_command, CommandOutput, FileKind, Host, HostError};
use crate::native::{self, Listener, Mount};
use crate::policy::{Check, Condition, Policy};
use crate::report::{CheckResult, Outcome, PolicyResult, PolicyStatus, RuleOutcome, RuleResult};
use crate::rule::{NameFilter, Rule, RuleKind, Term};
use crate::sshd::SshdConfig;

/// Entries a `d:` rule may visit before it gives up (bounded work per rule).
pub const DIR_ENTRIES_MAX: usize = 100_000;
/// Depth a `d:` rule descends to.
pub const DIR_DEPTH_MAX: usize = 8;

/// Errors from evaluation. Evaluation itself never fails (problems make a rule invalid); this enum
/// exists for the callers that need a typed reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A rule could not be decided.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for EvalError {
    fn from(reason: String) -> Self {
        Self::Invalid(reason)
    }
}

impl From<&str> for EvalError {
    fn from(reason: &str) -> Self {
        Self::Invalid(reason.to_owned())
    }
}

impl From<crate::rule::PatternError> for EvalError {
    fn from(error: crate::rule::PatternError) -> Self {
        Self::Invalid(error.to_string())
    }
}

/// A rule that cannot be decided, for this reason.
fn invalid(reason: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(reason.to_string())
}

type Fact<T> = Option<Result<T, EvalError>>;

/// One scan's caches over a host.
pub struct Scan<'h> {
    host: &'h dyn Host,
    commands: HashMap<String, Result<CommandOutput, EvalError>>,
    processes: Fact<BTreeSet<String>>,
    sshd: Fact<SshdConfig>,
    listeners: Fact<Vec<Listener>>,
    modules: Fact<BTreeSet<String>>,
    blacklist: Fact<BTreeSet<String>>,
    packages: Fact<BTreeMap<String, String>>,
    mounts: Fact<Vec<Mount>>,
    /// Number of commands actually run (or answered by the fixture) in this scan.
    pub commands_run: usize,
    intrinsics: bool,
    governor: Governor<'h>,
}

fn fact<T>(
    slot: &mut Fact<T>,
    read: impl FnOnce() -> Result<T, EvalError>,
) -> Result<&T, EvalError> {
    slot.get_or_insert_with(read).as_ref().map_err(Clone::clone)
}

impl<'h> Scan<'h> {
    /// A scan with empty caches.
    pub fn new(host: &'h dyn Host) -> Self {
        Self {
            host,
            commands: HashMap::new(),
            processes: None,
            sshd: None,
            listeners: None,
            modules: None,
            blacklist: None,
            packages: None,
            mounts: None,
            commands_run: 0,
            intrinsics: true,
            governor: Governor::unlimited(),
        }
    }

    /// Paces this scan's whole-tree walks to `budget`, measuring and sleeping through `clock`
    /// (default: [`Budget::unlimited`]).
    pub fn with_budget(mut self, budget: Budget, clock: &'h dyn Clock) -> Self {
        self.governor = Governor::new(budget, clock);
        self
    }

    /// The governor of this scan's walks, for walks done on its behalf (the role manifest's).
    pub fn governor(&mut self) -> &mut Governor<'h> {
        &mut self.governor
    }

    /// What the walks of this scan have counted and slept so far.
    pub fn pace_stats(&self) -> PaceStats {
        self.governor.stats()
    }

    /// Whether `dpkg-query -s`, `stat`, `sysctl`, `which` and `systemctl is-enabled` are answered
    /// natively ([`crate::intrinsic`], the default) or always run for real.
    pub fn with_intrinsic_commands(mut self, on: bool) -> Self {
        self.intrinsics = on;
        self
    }

    /// The host this scan reads.
    pub fn host(&self) -> &'h dyn Host {
        self.host
    }

    /// Evaluates a policy: requirements first, then every check.
    pub fn policy(&mut self, policy: &Policy) -> PolicyResult {
        if let Some(req) = &policy.requirements {
            let (outcome, reason, _) = self.rules(req.condition, &req.rules);
            if outcome != Outcome::Passed {
                let mut r = PolicyResult::from_checks(
                    policy.id.clone(),
                    policy.name.clone(),
                    policy.file.clone(),
                    Vec::new(),
                );
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                r.status = PolicyStatus::RequirementsNotMet {
                    reason: format!("requirements `{}` {:?}{why}", req.title, outcome),
                };
                return r;
            }
        }
        let checks = policy.checks.iter().map(|c| self.check(c)).collect();
        PolicyResult::from_checks(
            policy.id.clone(),
            policy.name.clone(),
            policy.file.clone(),
            checks,
        )
    }

    /// Evaluates one check.
    pub fn check(&mut self, check: &Check) -> CheckResult {
        let (outcome, reason, rules) = self.rules(check.condition, &check.rules);
        CheckResult {
            id: check.id,
            title: check.title.clone(),
            severity: check.severity,
            outcome,
            reason: if outcome == Outcome::NotApplicable {
                reason
            } else {
                None
            },
            rules,
        }
    }

    fn rules(
        &mut self,
        cond: Condition,
        rules: &[Rule],
    ) -> (Outcome, Option<String>, Vec<RuleResult>) {
        let results: Vec<RuleResult> = rules.iter().map(|r| self.rule(r)).collect();
        let has = |o| results.iter().any(|r| r.outcome == o);
        let invalid_reason = results.iter().find_map(|r| r.reason.clone());
        let outcome = match cond {
            Condition::All if has(RuleOutcome::NotFound) => Outcome::Failed,
            Condition::Any if has(RuleOutcome::Found) => Outcome::Passed,
            Condition::None if has(RuleOutcome::Found) => Outcome::Failed,
            _ if has(RuleOutcome::Invalid) => Outcome::NotApplicable,
            Condition::Any => Outcome::Failed,
            Condition::All | Condition::None => Outcome::Passed,
        };
        (outcome, invalid_reason, results)
    }

    /// Evaluates one rule (the `not` prefix applied).
    pub fn rule(&mut self, rule: &Rule) -> RuleResult {
        let raw = self.rule_raw(rule);
        let (outcome, reason) = match raw {
            Ok(found) => (
                if found != rule.negated {
                    RuleOutcome::Found
                } else {
                    RuleOutcome::NotFound
                },
                None,
            ),
            Err(why) => (RuleOutcome::Invalid, Some(why.to_string())),
        };
        RuleResult {
            rule: rule.text.clone(),
            outcome,
            reason,
        }
    }

    /// `Ok(found)` before negation, or `Err(reason)` for invalid.
    fn rule_raw(&mut self, rule: &Rule) -> Result<bool, EvalError> {
        let target = rule.targets.first().map(String::as_str).unwrap_or_default();
        match rule.kind {
            RuleKind::Registry => Err("registry rules apply only to Windows".into()),
            RuleKind::File => self.file_rule(rule),
            RuleKind::Dir => self.dir_rule(rule),
            RuleKind::Process => {
                let host = self.host;
                let procs = fact(&mut self.processes, || {
                    host.processes()
                        .map(|p| p.into_iter().collect())
                        .map_err(invalid)
                })?;
                Ok(procs.contains(target))
            }
            RuleKind::Command => {
                let out = self.command(target)?;
                match &rule.content {
                    None => Ok(true),
                    Some(terms) => {
                        content_matches(terms, [out.stdout.as_str(), out.stderr.as_str()])
                    }
                }
            }
            _ => {
                let lines = self.native_lines(rule.kind, target)?;
                match (lines, &rule.content) {
                    (None, _) => Ok(false),
                    (Some(_), None) => Ok(true),
                    (Some(lines), Some(terms)) => {
                        content_matches(terms, [lines.join("\n").as_str()])
                    }
                }
            }
        }
    }

    /// Runs (once per scan) and returns a command's output.
    pub fn command(&mut self, line: &str) -> Result<&CommandOutput, EvalError> {
        if !self.commands.contains_key(line) {
            let result = split_command(line)
                .map_err(|e| EvalError::Invalid(format!("command `{line}`: {e}")))
                .and_then(|argv| {
                    self.intrinsics
                        .then(|| crate::intrinsic::answer(self.host, &argv))
                        .flatten()
                        .unwrap_or_else(|| self.host.run_command(line, &argv))
                        .map_err(invalid)
                });
            self.commands_run += 1;
            self.commands.insert(line.to_owned(), result);
        }
        self.commands[line].as_ref().map_err(Clone::clone)
    }

    fn file_rule(&mut self, rule: &Rule) -> Result<bool, EvalError> {
        let Some(terms) = &rule.content else {
            let mut err = None;
            for t in &rule.targets {
                match self.host.metadata(t, true) {
                    Ok(m) if m.kind == FileKind::File => return Ok(true),
                    Ok(_) | Err(HostError::NotFound(_)) => {}
                    Err(e) => err = Some(invalid(e)),
                }
            }
            return err.map_or(Ok(false), Err);
        };
        let mut decided = false;
        let mut last_err = None;
        for t in &rule.targets {
            match self.host.read_file(t) {
                Ok(bytes) => {
                    decided = true;
                    if content_matches(terms, [String::from_utf8_lossy(&bytes).as_ref()])? {
                        return Ok(true);
                    }
                }
                Err(e) => last_err = Some(invalid(e)),
            }
        }
        if decided {
            Ok(false)
        } else {
            Err(last_err.unwrap_or_else(|| "no file to read".into()))
        }
    }

    fn dir_rule(&mut self, rule: &Rule) -> Result<bool, EvalError> {
        let Some(filter) = &rule.name_filter else {
            for t in &rule.targets {
                if let Ok(m) = self.host.metadata(t, true) {
                    if m.kind == FileKind::Dir {
                        return Ok(true);
                    }
                }
            }
            return Ok(false);
        };
        if let NameFilter::Regex(p) = filter {
            if let crate::rule::Pattern::Invalid(why) = &**p {
                return Err(why.clone().into());
            }
        }
        self.governor.enter();
        let found = self.dir_search(rule, filter);
        self.governor.leave();
        found
    }

    /// The search form of a `d:` rule, inside the governor's walk time.
    fn dir_search(&mut self, rule: &Rule, filter: &NameFilter) -> Result<bool, EvalError> {
        let mut any_dir = false;
        for t in &rule.targets {
            let mut files = Vec::new();
            match self.walk(t, filter, &mut files) {
                Ok(()) => any_dir = true,
                Err(HostError::NotFound(_)) => continue,
                Err(e) => return Err(invalid(e)),
            }
            for f in files {
                let Some(terms) = &rule.content else {
                    return Ok(true);
                };
                // An unreadable file inside the directory does not decide the rule.
                if let Ok(bytes) = self.host.read_file(&f) {
                    self.governor.charge_read(bytes.len() as u64);
                    if content_matches(terms, [String::from_utf8_lossy(&bytes).as_ref()])? {
                        return Ok(true);
                    }
                }
            }
        }
        if any_dir {
            Ok(false)
        } else {
            Err(format!("directory {} not found", rule.targets.join(",")).into())
        }
    }

    /// Files under `dir` (recursively, bounded, paced) whose name passes `filter`.
    fn walk(
        &mut self,
        dir: &str,
        filter: &NameFilter,
        out: &mut Vec<String>,
    ) -> Result<(), HostError> {
        let mut stack = vec![(dir.trim_end_matches('/').to_owned(), 0usize)];
        let mut seen = 0usize;
        let mut first = true;
        while let Some((d, depth)) = stack.pop() {
            let entries = match self.host.read_dir(if d.is_empty() { "/" } else { &d }) {
                Ok(e) => e,
                Err(e) if first => return Err(e),
                Err(_) => continue,
            };
            first = false;
            for e in entries {
                seen += 1;
                self.governor.charge_entry();
                if seen > DIR_ENTRIES_MAX {
                    // A partial search could wrongly report "not found": make the rule invalid.
                    return Err(HostError::Unreadable {
                        path: dir.to_owned(),
                        reason: format!("more than {DIR_ENTRIES_MAX} entries to search"),
                    });
                }
                let path = format!("{d}/{}", e.name);
                match e.kind {
                    FileKind::Dir if depth < DIR_DEPTH_MAX => stack.push((path, depth + 1)),
                    FileKind::File | FileKind::Symlink => {
                        let hit = match filter {
                            NameFilter::Exact(n) => e.name == *n,
                            NameFilter::Regex(p) => p.is_match(&e.name).unwrap_or(false),
                        };
                        if hit {
                            out.push(path);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Line form of a native fact; `Ok(None)` when the thing does not exist.
    fn native_lines(
        &mut self,
        kind: RuleKind,
        target: &str,
    ) -> Result<Option<Vec<String>>, EvalError> {
        let host = self.host;
        let s = |e: native::NativeError| invalid(e);
        Ok(match kind {
            RuleKind::Sysctl => native::sysctl(host, target).map_err(s)?.map(|v| vec![v]),
            RuleKind::Sshd => {
                let cfg = fact(&mut self.sshd, || SshdConfig::read(host).map_err(invalid))?;
                let v = cfg.values(target);
                (!v.is_empty()).then_some(v)
            }
            RuleKind::Stat => native::file_stat(host, target)
                .map_err(s)?
                .map(|st| st.lines()),
            RuleKind::Listen => {
                let all = fact(&mut self.listeners, || native::listeners(host).map_err(s))?;
                let lines: Vec<String> = all
                    .iter()
                    .map(Listener::line)
                    .filter(|l| target == "all" || l.starts_with(&format!("{target} ")))
                    .collect();
                // Existence form: found when at least one socket of that kind listens.
                (!lines.is_empty()).then_some(lines)
            }
            RuleKind::Module => {
                let m = fact(&mut self.modules, || {
                    native::loaded_modules(host).map_err(s)
                })?;
                m.contains(&native::module_key(target))
                    .then(|| vec![target.to_owned()])
            }
            RuleKind::Blacklist => {
                let b = fact(&mut self.blacklist, || {
                    native::blacklisted_modules(host).map_err(s)
                })?;
                b.contains(&native::module_key(target))
                    .then(|| vec![target.to_owned()])
            }
            RuleKind::Package => {
                let p = fact(&mut self.packages, || {
                    native::installed_packages(host).map_err(s)
                })?;
                p.get(target).map(|v| vec![v.clone()])
            }
            RuleKind::Mount => {
                let m = fact(&mut self.mounts, || native::mounts(host).map_err(s))?;
                m.iter()
                    .rev()
                    .find(|m| m.mountpoint == target)
                    .map(|m| vec![m.line()])
            }
            RuleKind::Unit => crate::systemd::unit_state(host, target)
                .map_err(s)?
                .map(|st| vec![st.as_str().to_owned()]),
            RuleKind::File
            | RuleKind::Dir
            | RuleKind::Process
            | RuleKind::Command
            | RuleKind::Registry => {
                unreachable!("non-native kinds are handled in rule_raw")
            }
        })
    }
}

/// Whether `term` (ignoring its negation) hits `line`.
fn term_hits(term: &Term, line: &str) -> Result<bool, EvalError> {
    match term {
        Term::Regex { pattern, .. } => Ok(pattern.is_match(line)?),
        Term::Numeric {
            pattern, op, value, ..
        } => Ok(pattern
            .first_group(line)?
            .and_then(|g| g.trim().parse::<i64>().ok())
            .is_some_and(|n| op.holds(n, *value))),
        Term::Literal(l) => Ok(line == l),
        Term::Broken(why) => Err(why.clone().into()),
    }
}

/// SCA content semantics over one or more texts (a command's stdout and stderr): with at least one
/// positive term, found when some line satisfies every term (negated ones must not hit); with only
/// negated terms, found when no line hits any of them.
pub fn content_matches<'a>(
    terms: &[Term],
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<bool, EvalError> {
    let positive = terms.iter().any(|t| !t.is_negated());
    for text in texts {
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if positive {
                let mut all = true;
                for t in terms {
                    if term_hits(t, line)? == t.is_negated() {
                        all = false;
                        break;
                    }
                }
                if all {
                    return Ok(true);
                }
            } else {
                for t in terms {
                    if term_hits(t, line)? {
                        return Ok(false);
                    }
                }
            }
        }
    }
    Ok(!positive)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rule::PatternCache;

    fn m(content: &str, text: &str) -> Result<bool, EvalError> {
        let r = Rule::parse(&format!("f:/x -> {content}"), &mut PatternCache::default()).unwrap();
        content_matches(r.content.as_ref().unwrap(), [text])
    }

    #[test]
    fn content_terms_on_one_line() {
        let t = "PermitRootLogin no\nMaxAuthTries 4\n# comment\n";
        assert!(m(r"r:^PermitRootLogin && r:no$", t).unwrap());
        assert!(
            !m(r"r:^PermitRootLogin && r:^MaxAuthTries", t).unwrap(),
            "terms must hit one line"
        );
        assert!(m(r"r:^MaxAuthTries && !r:5", t).unwrap());
        assert!(
            !m(r"!r:^PermitRootLogin", t).unwrap(),
            "lone negation: no line may match"
        );
        assert!(m(r"!r:^Banner", t).unwrap());
        assert!(m(r"n:^MaxAuthTries\s+(\d+) compare <= 4", t).unwrap());
        assert!(!m(r"n:^MaxAuthTries\s+(\d+) compare < 4", t).unwrap());
        assert!(m(r"r:^Max && !n:^MaxAuthTries\s+(\d+) compare > 4", t).unwrap());
        assert!(m("# comment", t).unwrap(), "literal equals a whole line");
        assert!(!m("# comm", t).unwrap());
        assert!(
            m("r:(bad", t).is_err(),
            "bad regex is an error, not a panic"
        );
    }
}
