//! The `bulwark attest ...` commands: keys, operator sets, manifests, evidence from the dev attestor,
//! the node's TPM (feature `tpm`) or imported SEV-SNP/TDX reports, and appraisal. They read and
//! write files and read the clock; the appraisal itself is `bulwark_attest`'s, pure.

use bulwark_attest::appraisal::Status;
use bulwark_attest::dev::DevAttestor;
use bulwark_attest::evidence::{AppMeasurements, Evidence};
use bulwark_attest::hexbytes::{HexBytes, Sha256Digest};
use bulwark_attest::manifest::{
    DevReference, OperatorSet, ReferenceManifest, SignedManifest, TpmReference,
};
use bulwark_attest::nonce::Nonce;
use bulwark_attest::time::parse_time_ms;
use bulwark_attest::verifier::{AppraisalRequest, EnrolledAk, Verifier, VerifierConfig};
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore as _};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod appraise;
mod error;
mod policy;
mod tpm;

use appraise::{dev_quote, import, verify};
pub use error::AttestCliError;
use policy::policy;
use tpm::{ek, enroll, measure, quote, read_reference_pcrs};

/// `bulwark attest`: produce and appraise attestation evidence, manage reference manifests.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AttestCommand,
}

/// `bulwark attest` subcommands.
#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Quote PCRs 0-7 and the launch PCR 15 of a TPM with a verifier nonce, with the launch log.
    Quote(QuoteArgs),
    /// The launcher's measured launch, run before the node starts: log the SHA-256 of binary,
    /// config and policy and extend the launch PCR 15 with them (it resets only with the platform).
    Measure(MeasureArgs),
    /// Bind this TPM's AK to its EK by credential activation and record the enrollment (run at
    /// provisioning, on a host the operator trusts).
    Enroll(EnrollArgs),
    /// Read this TPM's EK and its manufacturer's certificate for the operators' inventory (a
    /// node's `[[peers]] tpm_ek` and `tpm_ek_cert`), checking the certificate with `--ca`.
    Ek(EkArgs),
    /// INSECURE development attestor: software-signed measurements, no hardware root of trust.
    DevQuote(DevQuoteArgs),
    /// Appraise evidence against a signed manifest; exit 0 only when affirming.
    Verify(VerifyArgs),
    /// Wrap a SEV-SNP report or a TDX quote (with its certificate or collateral) into evidence JSON.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Create, sign and show reference-value manifests.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Generate an Ed25519 key (operator, verifier or dev attestor) into a file readable only by you.
    Keygen {
        /// Where to write the secret key (hex).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Arguments of `attest quote`.
#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// TCTI, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
    #[arg(long)]
    pub tcti: String,
    /// The verifier's nonce (64 hex digits).
    #[arg(long)]
    pub nonce: String,
    /// The launch log the launcher (`attest measure`) keeps; sent with the quote.
    #[arg(long)]
    pub log: PathBuf,
    /// Where to write the evidence JSON.
    #[arg(long)]
    pub out: PathBuf,
    /// What the quote binds besides the nonce.
    #[command(flatten)]
    pub binding: BindingArgs,
}

/// What `attest quote` and `attest dev-quote` bind into the qualifying data besides the nonce.
#[derive(Debug, Args)]
pub struct BindingArgs {
    /// SHA-256 of the node's TLS public key (64 hex digits); default: SHA-256 of nothing, binding no key.
    #[arg(long)]
    pub node_key_sha256: Option<String>,
    /// Committee epoch bound into the quote.
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
}

/// The three files a measured launch hashes (`measure` into the launch PCR, `dev-quote`).
#[derive(Debug, Args)]
pub struct AppFileArgs {
    /// Node binary.
    #[arg(long)]
    pub binary: PathBuf,
    /// Node config.
    #[arg(long)]
    pub config: PathBuf,
    /// Policy the node runs.
    #[arg(long)]
    pub policy: PathBuf,
}

impl AppFileArgs {
    /// Reads the three files and hashes them.
    fn measurements(&self) -> Result<AppMeasurements, AttestCliError> {
        Ok(AppMeasurements::from_contents(
            &read(&self.binary)?,
            &read(&self.config)?,
            &read(&self.policy)?,
        ))
    }
}

/// Arguments of `attest measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// TCTI.
    #[arg(long)]
    pub tcti: String,
    /// The launch log to append to (created after a platform reset).
    #[arg(long)]
    pub log: PathBuf,
    /// The files to measure.
    #[command(flatten)]
    pub files: AppFileArgs,
}

/// Arguments of `attest enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// TCTI.
    #[arg(long)]
    pub tcti: String,
    /// Node identifier to record.
    #[arg(long)]
    pub node_id: String,
    /// Where to write the enrollment JSON.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `attest ek`.
#[derive(Debug, Args)]
pub struct EkArgs {
    /// TCTI.
    #[arg(long)]
    pub tcti: String,
    /// PEM of the trusted EK CA certificates (the TPM manufacturers' issuing CAs): the EK
    /// certificate must be signed by one of them, be valid now and certify this EK. Without
    /// it the certificate is printed unchecked (and this says so).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// Arguments of `attest dev-quote`.
#[derive(Debug, Args)]
pub struct DevQuoteArgs {
    /// Dev attestor secret key file (from `attest keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// The verifier's nonce (64 hex digits).
    #[arg(long)]
    pub nonce: String,
    /// The files to measure.
    #[command(flatten)]
    pub files: AppFileArgs,
    /// Where to write the evidence JSON.
    #[arg(long)]
    pub out: PathBuf,
    /// What the evidence binds besides the nonce.
    #[command(flatten)]
    pub binding: BindingArgs,
}

/// Arguments of `attest verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Evidence JSON (from `attest quote` or `attest dev-quote`).
    #[arg(long)]
    pub evidence: PathBuf,
    /// Signed manifest JSON (from `attest policy`).
    #[arg(long)]
    pub policy: PathBuf,
    /// The nonce the evidence must answer (64 hex digits).
    #[arg(long)]
    pub nonce: String,
    /// Operator set JSON: {"keys": [hex...], "threshold": M}.
    #[arg(long)]
    pub operators: PathBuf,
    /// Appraisal time: RFC 3339 UTC (2026-11-26T12:00:00Z) or Unix milliseconds; default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Enrollment JSON (from `attest enroll`); required for TPM evidence.
    #[arg(long)]
    pub enrollment: Option<PathBuf>,
    /// SHA-256 of the TLS key the node authenticated with; default: the key hash the evidence claims.
    #[arg(long)]
    pub node_key_sha256: Option<String>,
    /// Epoch expected; default: the epoch the evidence claims.
    #[arg(long)]
    pub epoch: Option<u64>,
    /// Verifier secret key file to sign the appraisal; default: a one-off key (said on stderr).
    #[arg(long)]
    pub verifier_key: Option<PathBuf>,
    /// Also write the signed appraisal JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Appraise DEVELOPMENT evidence (`dev-quote`) at all; without it such evidence is refused
    /// whatever the manifest allows.
    #[arg(long)]
    pub accept_dev_evidence: bool,
}

/// `attest import` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// SEV-SNP: a 1184-byte report (binary or hex text), its VCEK certificate (DER) and AMD's
    /// CRL for the product (DER; appraisal refuses evidence without one).
    Snp {
        /// Report file.
        #[arg(long)]
        report: PathBuf,
        /// VCEK certificate, DER.
        #[arg(long)]
        vcek: PathBuf,
        /// AMD's CRL for the product, DER (KDS `/vcek/v1/{product}/crl`).
        #[arg(long)]
        crl: Option<PathBuf>,
        /// Output evidence file.
        #[arg(long)]
        out: PathBuf,
    },
    /// TDX: a quote and its DCAP collateral JSON.
    Tdx {
        /// Quote file (binary).
        #[arg(long)]
        quote: PathBuf,
        /// Collateral JSON (dcap-qvl's QuoteCollateralV3 form).
        #[arg(long)]
        collateral: PathBuf,
        /// Output evidence file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `attest policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write an unsigned manifest.
    Create {
        /// Node role.
        #[arg(long)]
        role: String,
        /// Release.
        #[arg(long)]
        release: String,
        /// Validity from now, in days.
        #[arg(long, default_value_t = 30)]
        valid_days: u64,
        /// Allowed PCR value, `INDEX=HEX` (repeatable; several values for one index are alternatives).
        #[arg(long = "pcr")]
        pcrs: Vec<String>,
        /// Read the boot PCRs 0-7 from this TPM as the reference values.
        #[arg(long)]
        from_tcti: Option<String>,
        /// Allowed node binary in the launch log (SHA-256 hex; repeatable). A TPM section needs
        /// at least one binary, config and policy.
        #[arg(long)]
        launch_binary: Vec<String>,
        /// Allowed node configuration in the launch log (SHA-256 hex; repeatable).
        #[arg(long)]
        launch_config: Vec<String>,
        /// Allowed policy in the launch log (SHA-256 hex; repeatable).
        #[arg(long)]
        launch_policy: Vec<String>,
        /// Allow INSECURE dev evidence signed by this Ed25519 public key (hex; repeatable).
        #[arg(long)]
        dev_signer: Vec<String>,
        /// Allowed dev application measurement (hex; repeatable).
        #[arg(long)]
        dev_measurement: Vec<String>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add an operator signature to a manifest file, in place.
    Sign {
        /// Manifest file.
        #[arg(long)]
        policy: PathBuf,
        /// Operator secret key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print a manifest and, with --operators, whether it is acceptable.
    Show {
        /// Manifest file.
        #[arg(long)]
        policy: PathBuf,
        /// Operator set JSON.
        #[arg(long)]
        operators: Option<PathBuf>,
        /// Time to check validity at (as for verify); default now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Write an operator set file.
    Operators {
        /// Operator Ed25519 public key (hex; repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Signatures required.
        #[arg(long)]
        threshold: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

type CliResult = Result<ExitCode, AttestCliError>;

/// Runs `bulwark attest ...`. Errors are printed with what to do next.
pub fn run(args: AttestArgs) -> ExitCode {
    let result = match args.command {
        AttestCommand::Quote(a) => quote(a),
        AttestCommand::Measure(a) => measure(a),
        AttestCommand::Enroll(a) => enroll(a),
        AttestCommand::Ek(a) => ek(a),
        AttestCommand::DevQuote(a) => dev_quote(a),
        AttestCommand::Verify(a) => verify(a),
        AttestCommand::Import(c) => import(c),
        AttestCommand::Policy(c) => policy(c),
        AttestCommand::Keygen { out } => keygen(&out),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("bulwark attest: {error}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn read(path: &Path) -> Result<Vec<u8>, AttestCliError> {
    std::fs::read(path).map_err(|source| AttestCliError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AttestCliError> {
    std::fs::write(path, bytes).map_err(|source| AttestCliError::Write {
        path: path.to_owned(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AttestCliError> {
    let bytes = read(path)?;
    if bytes.len() > bulwark_attest::evidence::EVIDENCE_LEN_MAX {
        return Err(AttestCliError::TooLarge {
            path: path.to_owned(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| AttestCliError::Json {
        path: path.to_owned(),
        source,
    })
}

fn bad_file(path: &Path, reason: &'static str) -> AttestCliError {
    AttestCliError::BadFile {
        path: path.to_owned(),
        reason,
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), AttestCliError> {
    let mut text = serde_json::to_string_pretty(value).expect("documents always serialize");
    text.push('\n');
    write(path, text.as_bytes())
}

fn hex32(text: &str, option: &'static str) -> Result<[u8; 32], AttestCliError> {
    Sha256Digest::from_hex(text)
        .map(|d| d.0)
        .map_err(|source| AttestCliError::Hex { option, source })
}

fn read_secret_key(path: &Path) -> Result<SigningKey, AttestCliError> {
    let text = zeroize::Zeroizing::new(read(path)?);
    let text = std::str::from_utf8(&text).map_err(|_| bad_file(path, "is not hex"))?;
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| bad_file(path, "is not hex"))?,
    );
    let secret: &[u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad_file(path, "must hold a 32-byte key (64 hex digits)"))?;
    Ok(SigningKey::from_bytes(secret))
}

fn default_key_hash(given: Option<&str>) -> Result<[u8; 32], AttestCliError> {
    match given {
        Some(text) => hex32(text, "--node-key-sha256"),
        None => Ok(bulwark_attest::nonce::node_key_hash(&[])),
    }
}

fn keygen(out: &Path) -> CliResult {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(secret.as_mut());
    let key = SigningKey::from_bytes(&secret);
    let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(secret.as_ref())));
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|source| AttestCliError::Create {
                path: out.to_owned(),
                source,
            })?;
        file.write_all(text.as_bytes())
            .map_err(|source| AttestCliError::Write {
                path: out.to_owned(),
                source,
            })?;
    }
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    eprintln!(
        "secret key written to {} (mode 0600); public key printed above",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn ephemeral_key() -> SigningKey {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(secret.as_mut());
    SigningKey::from_bytes(&secret)
}
