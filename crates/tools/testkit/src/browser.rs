//! A real browser for the console tests: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs), each run with a profile of its own in a temporary directory, killed if it hangs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium binary on this machine, if any.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Loads `url` in headless Chromium, lets its scripts run until the network is idle (up to
/// `budget` of page time) and returns the DOM as the page left it. `extra` adds flags (e.g. a
/// screenshot). `Ok(None)` when no Chromium is installed; `Err` when it fails or hangs past
/// `budget` + 60 s.
pub fn render(url: &str, budget: Duration, extra: &[String]) -> Result<Option<String>, String> {
    run(url, budget, extra, true)
}

/// Writes a `width`×`height` PNG screenshot of `url` to `png` after the page settles (up to
/// `budget` of page time). `Ok(false)` when no Chromium is installed.
pub fn screenshot(
    url: &str,
    budget: Duration,
    png: &Path,
    (width, height): (u32, u32),
) -> Result<bool, String> {
    let extra = [
        format!("--screenshot={}", png.display()),
        format!("--window-size={width},{height}"),
    ];
    Ok(run(url, budget, &extra, false)?.is_some())
}

fn run(
    url: &str,
    budget: Duration,
    extra: &[String],
    dump: bool,
) -> Result<Option<String>, String> {
    let Some(binary) = chromium() else {
        return Ok(None);
    };
    let profile = tempfile_dir()?;
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .args(extra)
        .args(dump.then_some("--dump-dom"))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let deadline = Instant::now() + budget + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&profile);
                return Err(format!("{binary} did not finish loading {url}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&profile);
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "bulwark-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
