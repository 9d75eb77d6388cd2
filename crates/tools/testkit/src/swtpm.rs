//! A throw-away software TPM (`swtpm`) for tests and benchmarks.
//!
//! Everything lives in a fresh directory under the system temp dir — TPM state, the swtpm_setup config
//! and its local CA — so nothing is written to /var/lib. The process is killed and the directory removed
//! on drop. This is test and bench tooling: it does I/O and spawns processes, and no appraisal code
//! uses it.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for swtpm to accept connections.
const START_TIMEOUT_MS: u64 = 10_000;

/// Errors starting swtpm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwtpmError {
    /// `swtpm` or `swtpm_setup` is not on PATH.
    #[error("swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)")]
    NotInstalled,
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// swtpm_setup failed.
    #[error("swtpm_setup failed: {0}")]
    Setup(String),
    /// swtpm did not start listening.
    #[error("swtpm did not accept connections on port {0} in time")]
    NotListening(u16),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> SwtpmError {
    move |source| SwtpmError::Io { what, source }
}

/// True when `swtpm` and `swtpm_setup` are on PATH.
pub fn installed() -> bool {
    ["swtpm", "swtpm_setup"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

/// A running swtpm on 127.0.0.1.
#[derive(Debug)]
pub struct SoftwareTpm {
    child: Child,
    dir: PathBuf,
    /// The local CA that certified this TPM's EK (its "manufacturer").
    ca: PathBuf,
    port: u16,
    /// Keep the directory (TPM state) when dropped: [`SoftwareTpm::start_persistent`].
    keep: bool,
}

fn free_port_pair() -> Result<u16, SwtpmError> {
    for _ in 0..32 {
        let first =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("binding a probe port"))?;
        let port = first.local_addr().map_err(io("probe port"))?.port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(SwtpmError::Setup("no free pair of TCP ports".into()))
}

fn write(path: &Path, text: &str) -> Result<(), SwtpmError> {
    let mut file = std::fs::File::create(path).map_err(io("writing swtpm config"))?;
    file.write_all(text.as_bytes())
        .map_err(io("writing swtpm config"))
}

/// The local CA directory of a TPM in `dir` without a shared one.
fn own_ca(dir: &Path) -> PathBuf {
    dir.join("localca")
}

/// Runs swtpm_setup in `dir` (created if missing), with an RSA EK certificate signed by the
/// local CA in `ca` (created on first use; `dir/localca` when `None`); returns the canonical
/// directory and CA directory.
fn manufacture(dir: &Path, ca: Option<&Path>) -> Result<(PathBuf, PathBuf), SwtpmError> {
    let state = dir.join("state");
    let ca = ca.map_or_else(|| own_ca(dir), Path::to_path_buf);
    for d in [dir, state.as_path(), ca.as_path()] {
        std::fs::create_dir_all(d).map_err(io("creating the swtpm directory"))?;
    }
    let dir = dir
        .canonicalize()
        .map_err(io("resolving the swtpm directory"))?;
    let ca = ca
        .canonicalize()
        .map_err(io("resolving the swtpm CA directory"))?;
    let state = dir.join("state");
    write(
            &dir.join("swtpm-localca.conf"),
            &format!(
                "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
                ca = ca.display()
            ),
        )?;
    write(
        &dir.join("swtpm-localca.options"),
        "--platform-manufacturer bulwark\n--platform-version 2.1\n--platform-model test\n",
    )?;
    write(
            &dir.join("swtpm_setup.conf"),
            &format!(
                "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {d}/swtpm-localca.conf\ncreate_certs_tool_options = {d}/swtpm-localca.options\nactive_pcr_banks = sha256\n",
                d = dir.display()
            ),
        )?;
    let setup = Command::new("swtpm_setup")
        .arg("--tpm2")
        .arg("--config")
        .arg(dir.join("swtpm_setup.conf"))
        .arg("--tpmstate")
        .arg(&state)
        .arg("--overwrite")
        .arg("--pcr-banks")
        .arg("sha256")
        .arg("--create-ek-cert")
        .env("XDG_CONFIG_HOME", &dir)
        .env("HOME", &dir)
        .output()
        .map_err(io("running swtpm_setup"))?;
    if !setup.status.success() {
        return Err(SwtpmError::Setup(format!(
            "{}{}",
            String::from_utf8_lossy(&setup.stdout),
            String::from_utf8_lossy(&setup.stderr)
        )));
    }
    Ok((dir, ca))
}

/// Serves the TPM state in `dir` on `port` and `port + 1`.
fn serve(dir: PathBuf, ca: PathBuf, port: u16, keep: bool) -> Result<SoftwareTpm, SwtpmError> {
    let state = dir.join("state");
    let child = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting swtpm"))?;
    let tpm = SoftwareTpm {
        child,
        dir,
        ca,
        port,
        keep,
    };
    let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
    let ctrl = SocketAddr::from((Ipv4Addr::LOCALHOST, port + 1));
    loop {
        // Probe the control port: swtpm serves one client on the server port at a time, and a probe
        // there would briefly occupy it.
        if TcpStream::connect_timeout(&ctrl, Duration::from_millis(100)).is_ok() {
            return Ok(tpm);
        }
        if Instant::now() > deadline {
            return Err(SwtpmError::NotListening(port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl SoftwareTpm {
    /// Manufactures a fresh TPM (sha256 bank only) and starts serving it. Takes a few seconds.
    pub fn start() -> Result<Self, SwtpmError> {
        if !installed() {
            return Err(SwtpmError::NotInstalled);
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "bulwark-swtpm-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let (dir, ca) = manufacture(&dir, None).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let port = free_port_pair()?;
        serve(dir, ca, port, false)
    }

    /// A TPM whose state lives in `dir` and survives this process: manufactured on first use,
    /// served on `port` (and `port + 1` for control) from the state already there afterwards.
    /// Each start is a power-on (TPM2_Startup(CLEAR)): PCRs start from their reset values and
    /// the reset counter advances, as on a reboot. The directory is kept when dropped.
    ///
    /// `manufacturer` is the local CA directory that certifies the EK when the TPM is
    /// manufactured: TPMs given the same one share a "manufacturer" (and one trusted EK CA);
    /// `None` gives the TPM a CA of its own in `dir`.
    pub fn start_persistent(
        dir: &Path,
        port: u16,
        manufacturer: Option<&Path>,
    ) -> Result<Self, SwtpmError> {
        if !installed() {
            return Err(SwtpmError::NotInstalled);
        }
        if port == u16::MAX {
            return Err(SwtpmError::Setup(
                "the port after the server port must exist".into(),
            ));
        }
        let manufactured = dir.join("state").join("tpm2-00.permall").exists();
        let (dir, ca) = if manufactured {
            let dir = dir
                .canonicalize()
                .map_err(io("resolving the swtpm directory"))?;
            let ca = manufacturer.map_or_else(|| own_ca(&dir), Path::to_path_buf);
            (dir, ca)
        } else {
            manufacture(dir, manufacturer)?
        };
        serve(dir, ca, port, true)
    }

    /// The TCTI string for `bulwark_attestor::device::TpmDevice::open`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Sets the locality of the commands that follow, through swtpm's control channel
    /// (`CMD_SET_LOCALITY`): what a platform's chipset does, and what an attacker with the whole
    /// host may try in order to reset a PCR that locality 0 cannot.
    pub fn set_locality(&self, locality: u8) -> Result<(), SwtpmError> {
        use std::io::{Read as _, Write as _};
        const CMD_SET_LOCALITY: u32 = 5;
        let ctrl = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port + 1));
        let mut stream = TcpStream::connect_timeout(&ctrl, Duration::from_secs(2))
            .map_err(io("connecting to the swtpm control channel"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io("setting a control-channel timeout"))?;
        let mut request = CMD_SET_LOCALITY.to_be_bytes().to_vec();
        request.push(locality);
        stream
            .write_all(&request)
            .map_err(io("sending CMD_SET_LOCALITY"))?;
        let mut result = [0u8; 4];
        stream
            .read_exact(&mut result)
            .map_err(io("reading the CMD_SET_LOCALITY result"))?;
        match u32::from_be_bytes(result) {
            0 => Ok(()),
            code => Err(SwtpmError::Setup(format!(
                "swtpm refused locality {locality} (result {code:#x})"
            ))),
        }
    }

    /// PEM of the local CA that signed this TPM's EK certificate: the one certificate to trust
    /// for it (`bulwark_attest::tpm::EkAnchors::from_pem`).
    pub fn ek_ca_pem(&self) -> Result<String, SwtpmError> {
        std::fs::read_to_string(self.ca.join("issuercert.pem"))
            .map_err(io("reading the swtpm local CA certificate"))
    }
}

impl Drop for SoftwareTpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
