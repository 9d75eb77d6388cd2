//! Intrinsic commands must print what the real tools print (for the lines stock rules read).
//! Compared on this host against the real binaries when they are installed.
#![allow(clippy::unwrap_used)]

use bulwark_audit::host::{split_command, CommandLimits, CommandSource, Host};
use bulwark_audit::intrinsic::answer;
use bulwark_auditor::machine::RootedHost;

fn compare(line: &str, keep: impl Fn(&str) -> bool) {
    let argv = split_command(line).unwrap();
    let live = RootedHost::new("/", CommandSource::Live(CommandLimits::default()));
    let real = match live.run_command(line, &argv) {
        Ok(o) => o,
        Err(e) => {
            println!("SKIP `{line}`: {e}");
            return;
        }
    };
    if real.stderr.contains("not found") && real.exit_code == Some(127) {
        println!("SKIP `{line}`: not installed");
        return;
    }
    let ours = answer(&live, &argv).expect("an intrinsic form").unwrap();
    let filt = |s: &str| {
        s.lines()
            .filter(|l| keep(l))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(filt(&ours.stdout), filt(&real.stdout), "stdout of `{line}`");
    assert_eq!(
        ours.stderr.is_empty(),
        real.stderr.is_empty(),
        "stderr of `{line}`: {:?} vs {:?}",
        ours.stderr,
        real.stderr
    );
    assert_eq!(ours.exit_code, real.exit_code, "exit code of `{line}`");
}

#[test]
fn intrinsics_match_the_real_tools() {
    let all = |_: &str| true;
    compare("dpkg-query -s bash", all);
    compare("dpkg-query -s bash coreutils", all);
    compare("dpkg -s no-such-package-xyz", all);
    compare("dpkg-query -s bash no-such-package-xyz", all);
    let access = |l: &str| l.starts_with("  File:") || l.starts_with("Access: (");
    compare("stat -L /etc/passwd", access);
    compare("stat -L /etc /usr/bin/passwd", access);
    compare("stat -L /no/such/file", access);
    compare(
        r#"stat -Lc "%n %a %u %U %g %G" /etc/passwd /etc/shadow"#,
        all,
    );
    compare(r#"stat -Lc "%a %A %u %U %g %G" /tmp"#, all);
    compare("sysctl kernel.randomize_va_space", all);
    compare("sysctl net.ipv4.ip_local_port_range kernel.ostype", all);
    compare("sysctl no.such.key", all);
    compare("which ls sh", all);
    compare("which no-such-binary-xyz", all);
    let live = RootedHost::new("/", CommandSource::Live(CommandLimits::default()));
    assert!(
        answer(&live, &split_command("stat -c %y /etc").unwrap()).is_none(),
        "unknown forms fall back"
    );
    assert!(answer(&live, &split_command("sysctl -a").unwrap()).is_none());
}

#[test]
fn systemctl_is_enabled_matches_for_every_unit_on_this_host() {
    let live = RootedHost::new("/", CommandSource::Live(CommandLimits::default()));
    let listing = "systemctl list-unit-files --no-legend";
    let Ok(list) = live.run_command(listing, &split_command(listing).unwrap()) else {
        println!("SKIP: systemctl is not installed");
        return;
    };
    let mut units: Vec<String> = list
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    units.push("no-such-unit-xyz.service".into());
    let (mut compared, mut fell_back) = (0, 0);
    for u in &units {
        let line = format!("systemctl is-enabled {u}");
        let argv = split_command(&line).unwrap();
        let Some(ours) = answer(&live, &argv) else {
            fell_back += 1;
            continue;
        };
        let ours = ours.unwrap();
        let real = live.run_command(&line, &argv).unwrap();
        assert_eq!(
            (ours.stdout.trim(), ours.exit_code),
            (real.stdout.trim(), real.exit_code),
            "`{line}`: stderr ours {:?} real {:?}",
            ours.stderr,
            real.stderr
        );
        compared += 1;
    }
    println!("systemctl is-enabled: {compared} units compared, {fell_back} left to the real tool");
    assert!(compared > 0);
}
