//! Every rule form, every content term, every condition, both dialects, against a fixture host.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_audit::eval::Scan;
use bulwark_audit::policy::parse_policy;
use bulwark_audit::report::{Outcome, PolicyStatus, RuleOutcome};
use bulwark_audit::rule::{PatternCache, Rule};
use common::Variant;
use RuleOutcome::{Found, Invalid, NotFound};

fn outcomes(cases: &[(&str, RuleOutcome)]) {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut scan = Scan::new(&host);
    let mut pc = PatternCache::default();
    let mut bad = Vec::new();
    for (text, want) in cases {
        let r = scan.rule(&Rule::parse(text, &mut pc).unwrap());
        if r.outcome != *want {
            bad.push(format!(
                "{text}: got {:?} ({:?}), want {want:?}",
                r.outcome, r.reason
            ));
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

#[test]
fn file_rules() {
    outcomes(&[
        ("f:/etc/os-release", Found),
        ("f:/nope", NotFound),
        ("f:/etc", NotFound),
        ("f:/nope,/etc/passwd", Found),
        ("not f:/nope", Found),
        ("f:/etc/os-release -> r:^ID=debian", Found),
        ("f:/etc/os-release -> ID=debian", Found),
        ("f:/etc/os-release -> ID=deb", NotFound),
        ("f:/etc/os-release -> r:^NAME= && r:Debian", Found),
        ("f:/etc/os-release -> r:^NAME= && r:bookworm", NotFound),
        ("f:/etc/passwd -> !r:^evil:", Found),
        ("f:/etc/passwd -> !r:^root:", NotFound),
        ("f:/etc/passwd -> r:^root: && !r:/bin/sh$", Found),
        (
            r"f:/etc/ssh/sshd_config.d/10-bulwark.conf -> n:^MaxAuthTries\s+(\d+) compare <= 4",
            Found,
        ),
        (
            r"f:/etc/ssh/sshd_config.d/10-bulwark.conf -> n:^MaxAuthTries\s+(\d+) compare > 4",
            NotFound,
        ),
        (
            r"f:/etc/ssh/sshd_config.d/10-bulwark.conf -> !n:^MaxAuthTries\s+(\d+) compare > 4",
            Found,
        ),
        (
            r"not f:/etc/ssh/sshd_config.d/10-bulwark.conf -> n:^MaxAuthTries\s+(\d+) compare == 3",
            NotFound,
        ),
        ("f:/nope -> r:x", Invalid),
        ("not f:/nope -> r:x", Invalid),
        ("f:/etc/os-release -> r:(unclosed", Invalid),
        (r"f:/etc/os-release -> r:^(?!PRETTY)NAME", Found),
        (
            r"f:/etc/os-release -> n:VERSION_ID=(\d+) compare = 12",
            Invalid,
        ),
        (r"f:/etc/os-release -> r:^ID\h*=", Found),
        (
            r"f:/proc/sys/net/ipv4/ip_local_port_range -> r:^32768\t60999$",
            Found,
        ),
    ]);
}

#[test]
fn directory_process_command_registry_rules() {
    outcomes(&[
        ("d:/etc/ssh", Found),
        ("d:/nope", NotFound),
        ("d:/etc/os-release", NotFound),
        ("d:/etc -> passwd", Found),
        ("d:/etc -> nothing-here", NotFound),
        ("d:/etc -> r:^sshd_config$ -> r:^Include", Found),
        (
            r"d:/etc/modprobe.d -> r:\.conf$ -> r:^blacklist\s+usb-storage",
            Found,
        ),
        (
            r"d:/etc/modprobe.d -> r:\.conf$ -> r:^blacklist\s+floppy",
            NotFound,
        ),
        (
            "not d:/etc/modprobe.d -> r:.conf -> r:^install dccp",
            NotFound,
        ),
        ("d:/nope -> x", Invalid),
        ("d:/etc -> r:(bad -> r:x", Invalid),
        ("p:sshd", Found),
        ("p:telnetd", NotFound),
        ("not p:telnetd", Found),
        ("c:echo hello", Found),
        ("c:echo hello -> r:^world$", Found),
        ("c:echo hello -> hello", Found),
        ("c:echo hello -> !r:^bye", Found),
        ("c:echo hello -> r:^bye", NotFound),
        ("c:stat -c %a /etc/shadow -> r:^640$", Found),
        ("c:no-such-command --x", Invalid),
        ("not c:no-such-command --x", Invalid),
        ("c:echo 'unterminated", Invalid),
        (r"r:HKEY_LOCAL_MACHINE\SOFTWARE -> Value -> r:1", Invalid),
    ]);
}

#[test]
fn native_rules() {
    outcomes(&[
        ("sysctl:net.ipv4.ip_forward -> 0", Found),
        ("sysctl:net.ipv4.ip_forward -> 1", NotFound),
        ("sysctl:net.ipv4.ip_local_port_range -> 32768 60999", Found),
        ("sysctl:no.such.key", NotFound),
        ("sshd:PermitRootLogin -> no", Found),
        ("sshd:passwordauthentication -> no", Found),
        ("sshd:kbdinteractiveauthentication -> no", Found),
        ("sshd:permitemptypasswords -> no", Found),
        (r"sshd:maxauthtries -> n:^(\d+)$ compare <= 4", Found),
        ("sshd:nosuchkeyword", NotFound),
        ("stat:/etc/shadow -> r:^mode=0640$", Found),
        ("stat:/etc/shadow -> r:^type=file$", Found),
        ("stat:/nope", NotFound),
        ("listen:tcp -> r::22$", Found),
        (r"listen:tcp -> r:^tcp \[::\]:7100$", Found),
        ("listen:udp -> r:127.0.0.1:323", Found),
        ("listen:all -> r::8080$", NotFound),
        ("listen:tcp -> r:127.0.0.1:40960", NotFound),
        ("listen:udp", Found),
        ("listen:sctp", NotFound),
        ("module:nf_tables", Found),
        ("module:nf-tables", Found),
        ("module:usb_storage", NotFound),
        ("blacklist:usb_storage", Found),
        ("blacklist:dccp", Found),
        ("blacklist:floppy", NotFound),
        ("pkg:openssh-server", Found),
        ("pkg:openssh-server -> r:^1:9\\.2", Found),
        ("pkg:telnetd", NotFound),
        ("mount:/tmp -> r:,nodev, && r:,nosuid,", Found),
        ("mount:/tmp -> r:,noexec,", NotFound),
        ("mount:/mnt/my data -> r:^ext4 ", Found),
        ("mount:/var", NotFound),
        ("unit:ssh.service -> enabled", Found),
        ("unit:systemd-journald.service -> static", Found),
        ("unit:avahi-daemon.service -> disabled", Found),
        ("unit:ctrl-alt-del.target -> masked", Found),
        ("unit:nope.service", NotFound),
    ]);
}

fn check_outcome(condition: &str, rules: &[&str]) -> Outcome {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let rules: Vec<String> = rules.iter().map(|r| format!("      - '{r}'")).collect();
    let text = format!(
        "policy: {{id: t, name: T}}\nchecks:\n  - id: 1\n    name: c\n    condition: {condition}\n    rules:\n{}\n",
        rules.join("\n")
    );
    let p = parse_policy(&text, "t.yml", &mut PatternCache::default()).unwrap();
    Scan::new(&host).check(&p.checks[0]).outcome
}

#[test]
fn conditions_combine_found_not_found_and_invalid() {
    const F: &str = "f:/etc/passwd";
    const N: &str = "f:/nope";
    const I: &str = "f:/nope -> r:x";
    use Outcome::{Failed, NotApplicable as Na, Passed};
    let table: &[(&str, &[&str], Outcome)] = &[
        ("all", &[F, F], Passed),
        ("all", &[F, N], Failed),
        ("all", &[F, I], Na),
        ("all", &[N, I], Failed),
        ("any", &[N, F], Passed),
        ("any", &[N, N], Failed),
        ("any", &[N, I], Na),
        ("any", &[F, I], Passed),
        ("none", &[N, N], Passed),
        ("none", &[N, F], Failed),
        ("none", &[N, I], Na),
        ("none", &[F, I], Failed),
    ];
    for (cond, rules, want) in table {
        assert_eq!(check_outcome(cond, rules), *want, "{cond} {rules:?}");
    }
}

const DIALECT_4: &str = r#"
policy:
  id: "d4"
  file: "d4.yml"
  name: "4.x dialect"
requirements:
  title: "Debian 12"
  description: "needs Debian 12"
  condition: all
  rules:
    - 'f:/etc/debian_version -> r:^12'
variables:
  $sshd_dropins: /etc/ssh/sshd_config.d
checks:
  - id: 10
    title: "Drop-in disables root login"
    compliance:
      - cis: ["5.2.7"]
      - pci_dss: ["2.2"]
    condition: all
    rules:
      - 'd:$sshd_dropins -> r:\.conf$ -> r:^PermitRootLogin\s+no'
  - id: 11
    title: "No world-writable shadow"
    condition: none
    rules:
      - 'c:stat -c %a /etc/shadow -> r:[2367]$'
"#;

const DIALECT_5: &str = r#"
policy:
  id: "d5"
  file: "d5.yml"
  name: "5.x dialect"
requirements:
  name: "Not Debian 9"
  description: "skips"
  condition: all
  rules:
    - 'f:/etc/debian_version -> r:^9\.'
checks:
  - id: 20
    name: "never evaluated"
    compliance: { cis: ["1"] }
    mitre: { tactic: { id: ["TA0005"], name: ["Stealth"] } }
    condition: all
    rules: ['f:/etc/passwd']
"#;

#[test]
fn both_dialects_with_requirements_and_variables() {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut pc = PatternCache::default();
    let p4 = parse_policy(DIALECT_4, "d4.yml", &mut pc).unwrap();
    let r4 = Scan::new(&host).policy(&p4);
    assert_eq!(r4.status, PolicyStatus::Evaluated);
    assert_eq!(
        (r4.passed, r4.failed, r4.not_applicable, r4.score_bp),
        (2, 0, 0, Some(10_000))
    );

    let p5 = parse_policy(DIALECT_5, "d5.yml", &mut pc).unwrap();
    let r5 = Scan::new(&host).policy(&p5);
    assert!(
        matches!(r5.status, PolicyStatus::RequirementsNotMet { .. }),
        "{:?}",
        r5.status
    );
    assert!(r5.checks.is_empty());
}

#[test]
fn each_distinct_command_runs_once_per_scan() {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut pc = PatternCache::default();
    let mut scan = Scan::new(&host);
    for r in [
        "c:echo hello -> r:a",
        "c:echo hello -> r:b",
        "c:echo hello",
        "c:sshd -T -> r:x",
    ] {
        scan.rule(&Rule::parse(r, &mut pc).unwrap());
    }
    assert_eq!(scan.commands_run, 2);
}
