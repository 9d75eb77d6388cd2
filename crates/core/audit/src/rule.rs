//! Rule syntax: `[not ]TYPE:TARGET[ -> CONTENT]` and the content terms of the SCA format.
//!
//! Parsing is split from evaluation: a syntax error is a policy error (reported with the file and
//! line), while a regex that does not compile only makes its rule *invalid* at evaluation time.

use std::collections::HashMap;
use std::sync::Arc;

/// Errors in a rule's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule has no `TYPE:` prefix or an unknown type.
    #[error("unknown rule type in `{0}` (expected f:, d:, p:, c:, r: or a bulwark native type)")]
    UnknownType(String),
    /// The rule names no target after `TYPE:`.
    #[error("rule `{0}` has an empty target")]
    EmptyTarget(String),
    /// A content term is empty (for example `r:a && `).
    #[error("rule `{0}` has an empty content term")]
    EmptyTerm(String),
}

/// What a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// `f:` a file (comma-separated list allowed).
    File,
    /// `d:` a directory, optionally searched for files by name and content.
    Dir,
    /// `p:` a running process.
    Process,
    /// `c:` a command's stdout and stderr.
    Command,
    /// `r:` the Windows registry: always invalid (not applicable) on Linux.
    Registry,
    /// `sysctl:KEY` value of `/proc/sys/KEY` (dots as slashes), whitespace collapsed.
    Sysctl,
    /// `sshd:KEYWORD` effective sshd_config value (lowercase keyword, defaults applied).
    Sshd,
    /// `stat:PATH` lines `type=`, `mode=`, `uid=`, `gid=`, `owner=`, `group=`.
    Stat,
    /// `listen:tcp|udp|all` lines `PROTO ADDR:PORT` for listening sockets.
    Listen,
    /// `module:NAME` a loaded kernel module.
    Module,
    /// `blacklist:NAME` a kernel module disabled in modprobe.d (blacklist or install to false/true).
    Blacklist,
    /// `pkg:NAME` an installed dpkg package; its line is the version.
    Package,
    /// `mount:MOUNTPOINT` line `FSTYPE ,opt1,opt2,` for the mount point.
    Mount,
    /// `unit:NAME` systemd unit state line, as `systemctl is-enabled` words it.
    Unit,
}

impl RuleKind {
    fn from_prefix(prefix: &str) -> Option<Self> {
        Some(match prefix {
            "f" => Self::File,
            "d" => Self::Dir,
            "p" => Self::Process,
            "c" => Self::Command,
            "r" => Self::Registry,
            "sysctl" => Self::Sysctl,
            "sshd" => Self::Sshd,
            "stat" => Self::Stat,
            "listen" => Self::Listen,
            "module" => Self::Module,
            "blacklist" => Self::Blacklist,
            "pkg" => Self::Package,
            "mount" => Self::Mount,
            "unit" => Self::Unit,
            _ => return None,
        })
    }

    /// True for the bulwark native types (not part of the Wazuh format).
    pub fn is_native(self) -> bool {
        !matches!(
            self,
            Self::File | Self::Dir | Self::Process | Self::Command | Self::Registry
        )
    }

    /// True when the rule reads files named by its target (so a file watch can re-check it).
    pub fn reads_target_files(self) -> bool {
        matches!(self, Self::File | Self::Dir | Self::Stat)
    }
}

/// Comparison operator of an `n:` term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl CompareOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "<" => Self::Lt,
            "<=" => Self::Le,
            "==" => Self::Eq,
            "!=" => Self::Ne,
            ">=" => Self::Ge,
            ">" => Self::Gt,
            _ => return None,
        })
    }

    /// Applies the operator as `lhs OP rhs`.
    pub fn holds(self, lhs: i64, rhs: i64) -> bool {
        match self {
            Self::Lt => lhs < rhs,
            Self::Le => lhs <= rhs,
            Self::Eq => lhs == rhs,
            Self::Ne => lhs != rhs,
            Self::Ge => lhs >= rhs,
            Self::Gt => lhs > rhs,
        }
    }
}

/// A compiled pattern, or the reason it did not compile.
#[derive(Debug)]
pub enum Pattern {
    /// Compiled by the `regex` crate (linear time).
    Std(regex::Regex),
    /// Needed backtracking features; compiled by `fancy-regex`.
    Fancy(fancy_regex::Regex),
    /// Compiled by neither; rules using it are invalid.
    Invalid(String),
}

impl Pattern {
    /// Compiles a PCRE-style pattern: `regex` first, then `fancy-regex`. `\h`/`\H` are translated.
    pub fn compile(src: &str) -> Self {
        let translated = translate_pcre(src);
        match regex::Regex::new(&translated) {
            Ok(re) => Self::Std(re),
            Err(std_err) => match fancy_regex::Regex::new(&translated) {
                Ok(re) => Self::Fancy(re),
                Err(_) => Self::Invalid(format!("regex `{src}` does not compile: {std_err}")),
            },
        }
    }

    /// Whether the pattern matches somewhere in `line`; `Err` for an invalid pattern or a
    /// backtracking limit hit.
    pub fn is_match(&self, line: &str) -> Result<bool, PatternError> {
        match self {
            Self::Std(re) => Ok(re.is_match(line)),
            Self::Fancy(re) => re
                .is_match(line)
                .map_err(|e| PatternError::Matching(e.to_string())),
            Self::Invalid(why) => Err(PatternError::DoesNotCompile(why.clone())),
        }
    }

    /// Text of the first capture group of the first match, if any.
    pub fn first_group<'a>(&self, line: &'a str) -> Result<Option<&'a str>, PatternError> {
        match self {
            Self::Std(re) => Ok(re.captures(line).and_then(|c| c.get(1)).map(|m| m.as_str())),
            Self::Fancy(re) => Ok(re
                .captures(line)
                .map_err(|e| PatternError::Matching(e.to_string()))?
                .and_then(|c| c.get(1))
                .map(|m| m.as_str())),
            Self::Invalid(why) => Err(PatternError::DoesNotCompile(why.clone())),
        }
    }
}

/// Why a pattern could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern does not compile under either regex engine (the reason names it).
    #[error("{0}")]
    DoesNotCompile(String),
    /// The backtracking engine gave up on this line (its limit).
    #[error("{0}")]
    Matching(String),
}

/// Rewrites PCRE escapes the `regex` crate lacks: `\h` → `[\t ]`, `\H` → `[^\t ]` (outside classes;
/// inside a class `\h` becomes `\t `).
fn translate_pcre(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains("\\h") && !src.contains("\\H") {
        return std::borrow::Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 8);
    let mut in_class = false;
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('h') if in_class => out.push_str("\\t "),
                Some('h') => out.push_str("[\\t ]"),
                Some('H') if !in_class => out.push_str("[^\\t ]"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Compiles each distinct pattern once across all loaded policies.
#[derive(Debug, Default)]
pub struct PatternCache {
    map: HashMap<String, Arc<Pattern>>,
}

impl PatternCache {
    /// The compiled form of `src`, compiling it on first use.
    pub fn get(&mut self, src: &str) -> Arc<Pattern> {
        if let Some(p) = self.map.get(src) {
            return Arc::clone(p);
        }
        let p = Arc::new(Pattern::compile(src));
        self.map.insert(src.to_owned(), Arc::clone(&p));
        p
    }
}

/// One term of a content expression.
#[derive(Debug, Clone)]
pub enum Term {
    /// `r:REGEX` (or `!r:` when `negated`).
    Regex {
        /// `!r:` form.
        negated: bool,
        /// The pattern.
        pattern: Arc<Pattern>,
    },
    /// `n:REGEX compare OP N` (or `!n:`): the first group parsed as an integer and compared.
    Numeric {
        /// `!n:` form.
        negated: bool,
        /// Pattern with one capture group.
        pattern: Arc<Pattern>,
        /// Operator.
        op: CompareOp,
        /// Right-hand side.
        value: i64,
    },
    /// A bare literal that must equal a whole line.
    Literal(String),
    /// A term that parsed but cannot be evaluated (unknown operator); its rule is invalid.
    Broken(String),
}

impl Term {
    /// True for `!r:` and `!n:`.
    pub fn is_negated(&self) -> bool {
        matches!(
            self,
            Self::Regex { negated: true, .. } | Self::Numeric { negated: true, .. }
        )
    }
}

/// A `d:` rule's file-name filter.
#[derive(Debug, Clone)]
pub enum NameFilter {
    /// Exact file name.
    Exact(String),
    /// `r:REGEX` over the file name.
    Regex(Arc<Pattern>),
}

/// A parsed, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule text after variable expansion, for reports.
    pub text: String,
    /// `not ` prefix: found and not found swap; invalid stays invalid.
    pub negated: bool,
    /// Rule type.
    pub kind: RuleKind,
    /// Target(s): for `f:` and `d:` comma-separated paths are split.
    pub targets: Vec<String>,
    /// `d:` file-name filter.
    pub name_filter: Option<NameFilter>,
    /// Content terms, all of which must hold on one line; `None` for an existence rule.
    pub content: Option<Vec<Term>>,
}

struct Split<'a> {
    negated: bool,
    kind: RuleKind,
    target: &'a str,
    filter: Option<&'a str>,
    content: Option<&'a str>,
}

fn split_rule(text: &str) -> Result<Split<'_>, RuleError> {
    let t = text.trim();
    let (negated, body) = match t.strip_prefix("not ") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    let (prefix, rest) = body
        .split_once(':')
        .ok_or_else(|| RuleError::UnknownType(text.to_owned()))?;
    let kind = RuleKind::from_prefix(prefix.trim())
        .ok_or_else(|| RuleError::UnknownType(text.to_owned()))?;
    let (target, after) = match rest.split_once(" -> ") {
        Some((t, a)) => (t.trim(), Some(a)),
        None => (rest.trim(), None),
    };
    if target.is_empty() {
        return Err(RuleError::EmptyTarget(text.to_owned()));
    }
    let (filter, content) = match (kind, after) {
        (RuleKind::Dir | RuleKind::Registry, Some(a)) => match a.split_once(" -> ") {
            Some((f, c)) => (Some(f.trim()), Some(c)),
            None => (Some(a.trim()), None),
        },
        (_, a) => (None, a),
    };
    Ok(Split {
        negated,
        kind,
        target,
        filter,
        content,
    })
}

/// Checks a rule's syntax without compiling anything (used while the YAML is parsed, so the error
/// carries the YAML line).
pub fn check_syntax(text: &str) -> Result<(), RuleError> {
    let s = split_rule(text)?;
    if let Some(content) = s.content {
        for term in content.split(" && ") {
            parse_term_shape(term, text)?;
        }
    }
    Ok(())
}

enum TermShape<'a> {
    Regex(bool, &'a str),
    Numeric(bool, &'a str, CompareOp, i64),
    Literal(&'a str),
    Broken(String),
}

fn parse_term_shape<'a>(term: &'a str, rule: &str) -> Result<TermShape<'a>, RuleError> {
    let term = term.trim();
    if term.is_empty() {
        return Err(RuleError::EmptyTerm(rule.to_owned()));
    }
    let (negated, body) = match term.strip_prefix('!') {
        Some(b) if b.starts_with("r:") || b.starts_with("n:") => (true, b),
        _ => (false, term),
    };
    if let Some(re) = body.strip_prefix("r:") {
        return Ok(TermShape::Regex(negated, re));
    }
    if let Some(num) = body.strip_prefix("n:") {
        // Stock content has numeric terms that break the grammar (`compare <=15`, `compare = 0`,
        // no `compare` at all). The glued form is unambiguous and accepted; the others load but make
        // their rule invalid at evaluation, like a regex that does not compile.
        let broken = |why: &str| {
            TermShape::Broken(format!(
                "`{term}`: {why} (expected `n:REGEX compare OP NUMBER`)"
            ))
        };
        let Some((re, cmp)) = num.rsplit_once(" compare ") else {
            return Ok(broken("no ` compare `"));
        };
        let cmp: String = cmp.split_whitespace().collect();
        let Some(op_len) = cmp.find(|c: char| c.is_ascii_digit() || c == '-') else {
            return Ok(broken("no number"));
        };
        let Ok(value) = cmp[op_len..].parse::<i64>() else {
            return Ok(broken("not an integer"));
        };
        return Ok(match CompareOp::parse(&cmp[..op_len]) {
            Some(op) => TermShape::Numeric(negated, re, op, value),
            None => broken("unknown operator"),
        });
    }
    Ok(TermShape::Literal(term))
}

impl Rule {
    /// Parses and compiles a rule whose variables are already expanded.
    pub fn parse(text: &str, patterns: &mut PatternCache) -> Result<Self, RuleError> {
        let s = split_rule(text)?;
        let targets = match s.kind {
            RuleKind::File | RuleKind::Dir => s
                .target
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => vec![s.target.to_owned()],
        };
        let name_filter = s.filter.map(|f| match f.strip_prefix("r:") {
            Some(re) => NameFilter::Regex(patterns.get(re)),
            None => NameFilter::Exact(f.to_owned()),
        });
        let content = match s.content {
            None => None,
            Some(c) => {
                let mut terms = Vec::new();
                for raw in c.split(" && ") {
                    terms.push(match parse_term_shape(raw, text)? {
                        TermShape::Regex(negated, re) => Term::Regex {
                            negated,
                            pattern: patterns.get(re),
                        },
                        TermShape::Numeric(negated, re, op, value) => Term::Numeric {
                            negated,
                            pattern: patterns.get(re),
                            op,
                            value,
                        },
                        TermShape::Literal(l) => Term::Literal(l.to_owned()),
                        TermShape::Broken(why) => Term::Broken(why),
                    });
                }
                Some(terms)
            }
        };
        Ok(Self {
            text: text.trim().to_owned(),
            negated: s.negated,
            kind: s.kind,
            targets,
            name_filter,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(t: &str) -> Rule {
        Rule::parse(t, &mut PatternCache::default()).unwrap()
    }

    #[test]
    fn parses_every_form() {
        let r = parse("not f:/etc/a,/etc/b -> r:^x && !r:y && n:^n (\\d+) compare <= 4 && exact");
        assert!(r.negated);
        assert_eq!(r.kind, RuleKind::File);
        assert_eq!(r.targets, ["/etc/a", "/etc/b"]);
        let terms = r.content.unwrap();
        assert_eq!(terms.len(), 4);
        assert!(matches!(terms[1], Term::Regex { negated: true, .. }));
        assert!(matches!(
            terms[2],
            Term::Numeric {
                op: CompareOp::Le,
                value: 4,
                ..
            }
        ));
        assert!(matches!(&terms[3], Term::Literal(l) if l == "exact"));

        let d = parse(r"d:/etc/sysctl.d -> r:\.conf$ -> r:^kernel");
        assert!(matches!(d.name_filter, Some(NameFilter::Regex(_))));
        assert_eq!(d.content.unwrap().len(), 1);
        let d = parse("d:/etc -> passwd");
        assert!(matches!(d.name_filter, Some(NameFilter::Exact(ref n)) if n == "passwd"));
        assert!(d.content.is_none());

        assert_eq!(parse("c:sshd -T -> r:x").targets, ["sshd -T"]);
        assert_eq!(parse("p:sshd").kind, RuleKind::Process);
        assert_eq!(parse(r"r:HKLM\X -> Y -> Z").kind, RuleKind::Registry);
        assert_eq!(parse("f: /etc/issue").targets, ["/etc/issue"]);
        assert_eq!(parse("sshd:permitrootlogin -> no").kind, RuleKind::Sshd);
    }

    #[test]
    fn syntax_errors_are_typed() {
        assert!(matches!(
            check_syntax("x:/a"),
            Err(RuleError::UnknownType(_))
        ));
        assert!(matches!(
            check_syntax("f: -> r:a"),
            Err(RuleError::EmptyTarget(_))
        ));
        let mut pc = PatternCache::default();
        let glued = Rule::parse("f:/a -> n:x=(\\d+) compare <=15", &mut pc).unwrap();
        assert!(matches!(
            glued.content.unwrap()[0],
            Term::Numeric {
                op: CompareOp::Le,
                value: 15,
                ..
            }
        ));
        let odd = Rule::parse("f:/a -> n:x=(\\d+) compare = 0", &mut pc).unwrap();
        assert!(matches!(odd.content.unwrap()[0], Term::Broken(_)));
        for bad in ["n:(\\d+) compare", "n:x >= 60", "n:(\\d+) compare <= x"] {
            let r = Rule::parse(&format!("f:/a -> {bad}"), &mut pc).unwrap();
            assert!(matches!(r.content.unwrap()[0], Term::Broken(_)), "{bad}");
        }
        assert!(matches!(
            check_syntax("f:/a -> r:a &&  && r:b"),
            Err(RuleError::EmptyTerm(_))
        ));
        // A bad regex is not a syntax error: the rule is invalid at evaluation.
        assert!(check_syntax("f:/a -> r:(unclosed").is_ok());
    }

    #[test]
    fn patterns_fall_back_and_never_panic() {
        assert!(matches!(Pattern::compile(r"^\s*x"), Pattern::Std(_)));
        assert!(matches!(Pattern::compile(r"^(?!#)x"), Pattern::Fancy(_)));
        assert!(matches!(
            Pattern::compile(r"(unclosed"),
            Pattern::Invalid(_)
        ));
        let h = Pattern::compile(r"^\h*PermitRootLogin\h+no");
        assert!(h.is_match("  PermitRootLogin\tno").unwrap());
        assert!(Pattern::compile(r"[\h,]x").is_match(" x").unwrap());
    }
}
