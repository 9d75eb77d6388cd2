//! A throw-away SoftHSM2 token for the PKCS#11 tests.
//!
//! SoftHSM reads its configuration (where tokens live) from `SOFTHSM2_CONF` when a process first
//! initializes the module, so every token of one process lives in one fresh directory under the
//! system temp dir, set once per process. Each [`SoftHsm`] initializes its own token (its own
//! label, PINs in files readable by the owner only) with `softhsm2-util`, and deletes it when
//! dropped. Test tooling: it spawns processes and writes files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where Debian and a source build put the module.
const MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// Errors setting up a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoftHsmError {
    /// The module or `softhsm2-util` is missing.
    #[error("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")]
    NotInstalled,
    /// A file or process operation failed.
    #[error("{0}")]
    Setup(String),
}

/// The SoftHSM2 module, if installed (and `softhsm2-util` with it).
pub fn module() -> Option<PathBuf> {
    let util = Command::new("softhsm2-util")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !util {
        return None;
    }
    MODULES.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Tokens of this process alive now: the directory goes when the last one does.
static LIVE: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// This process's SoftHSM directory and configuration file (`SOFTHSM2_CONF` set once; the
/// directory made again if the last token removed it).
fn process_config() -> Result<PathBuf, SoftHsmError> {
    use std::os::unix::fs::DirBuilderExt as _;
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bulwark-softhsm-{}", std::process::id()));
        let config = dir.join("softhsm2.conf");
        // Every test thread of this process shares this one configuration, set before any of
        // them loads the module.
        std::env::set_var("SOFTHSM2_CONF", &config);
        config
    });
    let dir = config
        .parent()
        .expect("the configuration lies in a directory");
    let tokens = dir.join("tokens");
    let setup =
        |what: &Path, e: std::io::Error| SoftHsmError::Setup(format!("{}: {e}", what.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tokens)
        .map_err(|e| setup(&tokens, e))?;
    std::fs::write(
        config,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .map_err(|e| setup(config, e))?;
    Ok(config.clone())
}

/// One initialized token; deleted when dropped.
#[derive(Debug)]
pub struct SoftHsm {
    /// The PKCS#11 module to load.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file (0600) holding the user PIN.
    pub pin_file: PathBuf,
    config: PathBuf,
}

impl SoftHsm {
    /// Initializes a fresh token.
    pub fn start() -> Result<SoftHsm, SoftHsmError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let module = module().ok_or(SoftHsmError::NotInstalled)?;
        let mut live = LIVE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let config = process_config()?;
        *live += 1;
        drop(live);
        let token_label = format!(
            "bulwark-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let pin = format!("{:08}", rand_pin());
        let pin_file = config.with_file_name(format!("{token_label}.pin"));
        {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&pin_file)
                .map_err(|e| SoftHsmError::Setup(format!("{}: {e}", pin_file.display())))?;
            writeln!(file, "{pin}").map_err(|e| SoftHsmError::Setup(e.to_string()))?;
        }
        let output = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &config)
            .args([
                "--init-token",
                "--free",
                "--label",
                &token_label,
                "--pin",
                &pin,
                "--so-pin",
            ])
            .arg(format!("so-{pin}"))
            .output()
            .map_err(|e| SoftHsmError::Setup(format!("softhsm2-util: {e}")))?;
        if !output.status.success() {
            return Err(SoftHsmError::Setup(format!(
                "softhsm2-util --init-token: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(SoftHsm {
            module,
            token_label,
            pin_file,
            config,
        })
    }
}

fn rand_pin() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    (hasher.finish() % 100_000_000) as u32
}

impl Drop for SoftHsm {
    fn drop(&mut self) {
        let _ = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.config)
            .args(["--delete-token", "--token", &self.token_label])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.pin_file);
        let mut live = LIVE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *live = live.saturating_sub(1);
        if *live == 0 {
            if let Some(dir) = self.config.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
