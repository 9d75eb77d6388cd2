//! A production node's configuration file (TOML) and the venue's genesis file (JSON).
//!
//! ```toml
//! name = "node-0"                      # label in logs and status
//! data_center = "dc-a"                 # placement label; at most f members per data center
//! key_file = "node.key"                # 64 hex chars: the node's ed25519 seed (secret)
//! data_dir = "."                       # storage: finalized log, simplex journal, DKG share
//! genesis_file = "genesis.json"        # identical at every member
//! p2p_listen = "127.0.0.1:7100"        # consensus and gossip (authenticated, encrypted)
//! client_listen = "127.0.0.1:7200"     # submission endpoint for clients
//! loopback = true                      # allow private/loopback peer addresses (local test)
//! block_txs_max = 2048                 # most client transactions per block
//! verify_threads = 2                   # threads for client-signature batch verification
//! snapshot_every = 1000                # engine snapshot every N heights (0: never); restarts
//!                                      # replay only the log after the newest one
//!
//! [operator]                           # optional: the read-only operator port
//! listen = "127.0.0.1:7300"            # /metrics (Prometheus); loopback unless allow_remote
//!
//! [[peers]]                            # every member, this node included, in any order
//! public_key = "…64 hex…"
//! address = "127.0.0.1:7100"
//! data_center = "dc-a"
//! ```
//!
//! Relative paths are relative to the directory of the configuration file.

use bulwark_consensus::genesis::GenesisAccount;
pub use bulwark_console::OperatorConfig;
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::AccountId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration or genesis file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file parses but a value is not acceptable.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The committee's placement lets one data center hold more than f members.
    #[error("data center {data_center} holds {count} of {n} members; at most f = {f} may share one (refusing to start)")]
    Placement {
        /// The over-full data center.
        data_center: String,
        /// Members in it.
        count: usize,
        /// Committee size.
        n: usize,
        /// Faults tolerated.
        f: usize,
    },
    /// One data center would hold t or more of the vault's key shares.
    #[error(transparent)]
    VaultPlacement(#[from] bulwark_vault::placement::PlacementError),
}

/// Why a secret key file ([`read_hex32`]) or text ([`parse_hex32`]) does not hold 32 bytes.
/// The text does not name the file; callers add the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file cannot be read, or is not text.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The text is not 64 hex characters.
    #[error("not 64 hex characters")]
    NotHex32,
}

/// One committee member as every node's configuration lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its ed25519 public key, hex.
    pub public_key: String,
    /// Where its p2p endpoint listens.
    pub address: SocketAddr,
    /// Its data center label.
    pub data_center: String,
    /// Its client endpoint, where peers fetch its attestation evidence (needed when
    /// `[admission]` is on).
    #[serde(default)]
    pub client_address: Option<SocketAddr>,
    /// Its TPM endorsement key, the marshalled `TPMT_PUBLIC` in hex, from the operators'
    /// inventory (`bulwark attest ek`); needed with `[admission] mode = "tpm"`. Its attestation
    /// key is enrolled against this EK by credential activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_ek: Option<String>,
    /// The manufacturer's certificate of `tpm_ek`, DER in hex (read from the TPM's NV memory
    /// by `bulwark attest ek`); needed when `[admission] ek_ca_file` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_ek_cert: Option<String>,
    /// A machine outside the genesis committee that may take a vacant seat (issue #13,
    /// `bulwark admin replace`): members appraise it, read its audit reports, let it connect
    /// and serve it the finalized log, but it is no participant of the genesis epoch, no DKG or
    /// vault member and no oracle member, until an admission makes it join at an epoch change.
    /// Its data center must hold fewer than f genesis members, so that whichever seat it takes
    /// no data center holds more than f.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub candidate: bool,
}

fn default_interval_ms() -> u64 {
    1_000
}

/// One underlying's real price sources (`[[oracle]]`): live WebSocket venues or capture
/// replay, in `bulwark_oracle::source`'s format under `[oracle.sources]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleSourceConfig {
    /// The genesis underlying these venues price (index into `index_micros`).
    pub underlying: u16,
    /// The venues and how they are read.
    pub sources: bulwark_oracle::source::SourcesConfig,
}

/// How a node proves what it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdmissionMode {
    /// Quotes from the node's TPM (measured by its launcher into the launch PCR 15 with an
    /// event log, AK enrolled by credential activation, secrets sealed to the measured PCRs).
    Tpm,
    /// Software-signed DEVELOPMENT evidence, accepted only by a manifest that allows it.
    Dev,
    /// An AMD SEV-SNP confidential VM: reports from configfs-tsm (`sev_guest`), signed by the
    /// chip's VCEK, appraised to AMD's roots against the manifest's `snp` section.
    Snp,
    /// An Intel TDX trust domain: quotes from configfs-tsm (`tdx_guest`) with DCAP collateral,
    /// appraised to Intel's root against the manifest's `tdx` section.
    Tdx,
}

/// Attested admission (see `bulwark_consensus::admission`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// `tpm`: quotes from the node's TPM (measured by its launcher into the launch PCR 15 with
    /// an event log, AK enrolled by credential activation, secrets sealed to the measured PCRs).
    /// `snp` / `tdx`: reports or quotes from a confidential VM's configfs-tsm. `dev`:
    /// software-signed DEVELOPMENT evidence, accepted only by a manifest that allows it.
    pub mode: AdmissionMode,
    /// The TPM's TCTI (`mode = "tpm"`), e.g. `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcti: Option<String>,
    /// `mode = "tpm"` (required): the launch log of the launcher that measured this node into
    /// the launch PCR before it started (`bulwark attest measure --log`, or `bulwark up --tpm`).
    /// The node never measures itself, since a tampered binary would measure the honest digests;
    /// it refuses to start unless the log replays to the PCR and its last launch is this binary,
    /// genesis and operator set, and it sends the log with every quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_log: Option<PathBuf>,
    /// Re-attestation interval, milliseconds (at least 500).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// How long an affirming appraisal admits a peer; default 3 intervals.
    #[serde(default)]
    pub appraisal_ttl_ms: Option<u64>,
    /// The signed reference-value manifest (bulwark-attest JSON).
    pub manifest_file: PathBuf,
    /// The operator set that must sign the manifest (keys and threshold, JSON). Part of this
    /// node's measured policy.
    pub operators_file: PathBuf,
    /// The dev attestor's secret, 64 hex characters (`mode = "dev"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestor_key_file: Option<PathBuf>,
    /// `mode = "tpm"`: PEM of the CA certificates trusted to certify EKs (the TPM
    /// manufacturers' issuing CAs). When set, the node starts only if every peer's
    /// `tpm_ek_cert` is signed by one of them, is valid now and certifies exactly its
    /// `tpm_ek`: an operator cannot hand in a software TPM's EK. Without it the EKs are
    /// trusted from the inventory alone, and the node warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ek_ca_file: Option<PathBuf>,
    /// `mode = "snp"` / `"tdx"`: the configfs-tsm report directory; default
    /// `/sys/kernel/config/tsm/report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsm_dir: Option<PathBuf>,
    /// `mode = "snp"`: the chip's VCEK certificate (DER, from AMD's KDS for this chip and TCB),
    /// used when the host's extended report carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcek_file: Option<PathBuf>,
    /// `mode = "snp"` (required): AMD's CRL for the chip's product (DER, from KDS
    /// `/vcek/v1/{product}/crl`), read for every report, so the operator keeps it fresh: peers
    /// refuse a report without a current CRL signed by AMD's ARK, or whose ASK or VCEK it revokes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_file: Option<PathBuf>,
    /// `mode = "tdx"` (required): DCAP collateral for this platform as
    /// `dcap_qvl::QuoteCollateralV3` JSON (from Intel PCS or a PCCS), read for every quote, so
    /// the operator keeps it fresh: peers refuse a quote whose collateral expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral_file: Option<PathBuf>,
}

fn default_block_txs_max() -> usize {
    2_048
}

fn default_snapshot_every() -> u64 {
    1_000
}

fn default_verify_threads() -> usize {
    2
}

/// A node's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Label in logs and status.
    pub name: String,
    /// This node's data center.
    pub data_center: String,
    /// The node's secret ed25519 seed, 64 hex characters.
    pub key_file: PathBuf,
    /// Storage directory.
    pub data_dir: PathBuf,
    /// The venue's genesis file.
    pub genesis_file: PathBuf,
    /// p2p listen address.
    pub p2p_listen: SocketAddr,
    /// Client endpoint listen address.
    pub client_listen: SocketAddr,
    /// Allow private and loopback peer addresses (a committee on one host).
    #[serde(default)]
    pub loopback: bool,
    /// Most client transactions per block.
    #[serde(default = "default_block_txs_max")]
    pub block_txs_max: usize,
    /// Threads for client-signature verification.
    #[serde(default = "default_verify_threads")]
    pub verify_threads: usize,
    /// Write an engine snapshot every this many committed heights (0: never); a restart
    /// restores the newest one the log confirms and replays only the heights after it.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Every member, this node included.
    pub peers: Vec<Peer>,
    /// Real price sources per underlying; none = the DEVELOPMENT synthetic feed (which says
    /// so when it runs). With some, underlyings not listed are not observed by this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracle: Vec<OracleSourceConfig>,
    /// Attested admission; absent = every listed peer is admitted without evidence (and the
    /// node says so at start), which only a `development` node accepts.
    #[serde(default)]
    pub admission: Option<AdmissionConfig>,
    /// Where this member keeps its vault key shares (`docs/vault.md`); absent: the DEVELOPMENT
    /// file backend on a development node, no vault shares on a production node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultConfig>,
    /// The node's own configuration audit (`docs/node.md`): the audit agent scans this machine
    /// on a schedule and signs each report with the node key; peers read the newest one, record
    /// a failed one as sentinel evidence, and affirm the node for re-admission only on a clean,
    /// fresh one. Absent: the node publishes no report (and says so at start), so no peer can
    /// affirm it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    /// The operator port (`docs/metrics.md`): Prometheus metrics at `/metrics`, read-only.
    /// Absent: no operator port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorConfig>,
    /// A DEVELOPMENT committee on one machine (`bulwark up` writes `development = true`).
    /// Only such a node accepts a development path: admission left out, the DEVELOPMENT
    /// attestor (`mode = "dev"`, which also needs every address on loopback), or the synthetic
    /// price feed. Default false: production, which refuses all of them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub development: bool,
}

/// The `[audit]` section: the node's own configuration audit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// SCA policy files (Wazuh YAML or bulwark's own, e.g. the shipped
    /// `committee-node.yml`); at least one.
    pub policies: Vec<PathBuf>,
    /// The role manifest (allowed ports, services, packages, modules, setuid binaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// The tree file rules read; default `/`. Command rules run only against `/`.
    #[serde(default = "default_audit_root")]
    pub root: PathBuf,
    /// Full scans this often, milliseconds (±20 % jitter; 1 000 to 86 400 000; default 300 000).
    #[serde(default = "default_audit_interval_ms")]
    pub interval_ms: u64,
    /// Answer command rules from this file instead of running them: DEVELOPMENT only (a
    /// production node audits the machine it runs on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_fixture: Option<PathBuf>,
    /// A peer's report older than this is stale and affirms nothing; default 3 intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_ttl_ms: Option<u64>,
}

impl AuditConfig {
    /// How old a peer's report may be and still count, on a node without `[audit]`: three
    /// default intervals.
    pub const DEFAULT_REPORT_TTL_MS: u64 = 900_000;

    /// How old a peer's report may be and still count.
    pub fn report_ttl_ms(&self) -> u64 {
        self.report_ttl_ms
            .unwrap_or_else(|| self.interval_ms.saturating_mul(3))
    }
}

fn default_audit_root() -> PathBuf {
    PathBuf::from("/")
}

fn default_audit_interval_ms() -> u64 {
    300_000
}

/// Which backend seals the vault's key shares (`[vault] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultBackend {
    /// AES-256-GCM under a non-extractable key inside a PKCS#11 token (`[vault.pkcs11]`).
    Pkcs11,
    /// The keystore key sealed by the node's TPM (needs a TPM-sealed keystore: admission mode
    /// `tpm`, or `snp`/`tdx` with a vTPM `tcti`).
    Tpm,
    /// The keystore key in a file beside the secrets: DEVELOPMENT only.
    File,
}

/// The `[vault]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The backend.
    pub backend: VaultBackend,
    /// The token, for `backend = "pkcs11"` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<VaultPkcs11Config>,
}

/// `[vault.pkcs11]`: where the token is and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VaultPkcs11Config {
    /// The PKCS#11 module (the HSM vendor's shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file holding the user PIN on one line, readable by its owner alone.
    pub pin_file: PathBuf,
    /// The label of the AES key that seals this member's vault files (generated in the token
    /// on first use).
    pub key_label: String,
}

impl NodeConfig {
    /// The vault backend this node uses: the configured one, or the DEVELOPMENT file backend on
    /// a development node, or none on a production node without `[vault]`.
    pub fn vault_backend(&self) -> Option<VaultBackend> {
        match &self.vault {
            Some(vault) => Some(vault.backend),
            None if self.development => Some(VaultBackend::File),
            None => None,
        }
    }

    /// Whether the node's keystore key is sealed by a (v)TPM (see `attest::measured_launch`).
    pub fn keystore_sealed_by_tpm(&self) -> bool {
        self.admission.as_ref().is_some_and(|a| {
            a.mode == AdmissionMode::Tpm || (a.tcti.is_some() && a.mode != AdmissionMode::Dev)
        })
    }

    /// What is wrong with the `[vault]` section, if anything.
    fn vault_problem(&self) -> Option<String> {
        let vault = self.vault.as_ref()?;
        match (vault.backend, &vault.pkcs11) {
            (VaultBackend::Pkcs11, None) => {
                Some("[vault] backend = \"pkcs11\" needs a [vault.pkcs11] section (module, token_label, pin_file, key_label)".into())
            }
            (VaultBackend::Pkcs11, Some(p)) if p.token_label.is_empty() || p.key_label.is_empty() => {
                Some("[vault.pkcs11] token_label and key_label must not be empty".into())
            }
            (VaultBackend::Tpm | VaultBackend::File, Some(_)) => {
                Some("[vault.pkcs11] is for backend = \"pkcs11\" only".into())
            }
            (VaultBackend::Tpm, None) if !self.keystore_sealed_by_tpm() => Some(
                "[vault] backend = \"tpm\" needs a TPM-sealed keystore: [admission] mode = \"tpm\" (or snp/tdx with a vTPM tcti)".into(),
            ),
            (VaultBackend::File, None) if !self.development => Some(
                "[vault] backend = \"file\" is DEVELOPMENT only and refused in production: use \"pkcs11\" or \"tpm\"".into(),
            ),
            _ => None,
        }
    }
}

/// The largest fault count `n` members tolerate: f with n ≥ 3f + 1.
pub fn faults_tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

impl NodeConfig {
    /// Reads, parses and validates `path`; relative paths inside become relative to its
    /// directory.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut files = vec![
            &mut config.key_file,
            &mut config.data_dir,
            &mut config.genesis_file,
        ];
        if let Some(admission) = config.admission.as_mut() {
            files.push(&mut admission.manifest_file);
            files.push(&mut admission.operators_file);
            if let Some(file) = admission.ek_ca_file.as_mut() {
                files.push(file);
            }
            if let Some(file) = admission.launch_log.as_mut() {
                files.push(file);
            }
            for file in [
                admission.tsm_dir.as_mut(),
                admission.vcek_file.as_mut(),
                admission.crl_file.as_mut(),
                admission.collateral_file.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                files.push(file);
            }
            if let Some(file) = admission.attestor_key_file.as_mut() {
                files.push(file);
            }
        }
        if let Some(audit) = config.audit.as_mut() {
            files.extend(audit.policies.iter_mut());
            files.push(&mut audit.root);
            for file in [audit.manifest.as_mut(), audit.commands_fixture.as_mut()]
                .into_iter()
                .flatten()
            {
                files.push(file);
            }
        }
        for feed in &mut config.oracle {
            for venue in &mut feed.sources.venues {
                if let Some(capture) = venue.capture.as_mut() {
                    files.push(capture);
                }
            }
        }
        for file in files {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values and the committee's placement.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let n = self.members().count();
        if n < 4 {
            return Err(invalid(format!(
                "a committee needs at least 4 members (n = 3f + 1 with f ≥ 1); {n} listed (candidates not counted)"
            )));
        }
        if self.block_txs_max == 0 || self.block_txs_max > bulwark_consensus::block::BLOCK_TXS_MAX {
            return Err(invalid(format!(
                "block_txs_max must be 1..={}",
                bulwark_consensus::block::BLOCK_TXS_MAX
            )));
        }
        if self.verify_threads == 0 || self.verify_threads > 64 {
            return Err(invalid("verify_threads must be 1..=64".into()));
        }
        let mut keys = std::collections::BTreeSet::new();
        for peer in &self.peers {
            if peer.public_key.len() != 64 || hex_decode(&peer.public_key).is_none() {
                return Err(invalid(format!(
                    "peer public_key {:?} is not 64 hex characters",
                    peer.public_key
                )));
            }
            if !keys.insert(peer.public_key.to_ascii_lowercase()) {
                return Err(invalid(format!("peer {} listed twice", peer.public_key)));
            }
        }
        // A development committee lives on one machine: its development paths (admission left
        // out, the dev attestor, the synthetic feed) must not reach past loopback.
        if self.development {
            if let Some(address) = self.non_loopback_address() {
                return Err(invalid(format!(
                    "development = true needs loopback = true and every address on loopback; {address} is not"
                )));
            }
        }
        if let Some(reason) = self
            .operator
            .as_ref()
            .and_then(|o| o.problem(&[self.p2p_listen, self.client_listen]))
        {
            return Err(invalid(reason));
        }
        if let Some(reason) = self.vault_problem() {
            return Err(invalid(reason));
        }
        if let Some(reason) = self.audit.as_ref().and_then(|a| self.audit_problem(a)) {
            return Err(invalid(reason));
        }
        match &self.admission {
            Some(admission) => {
                if let Some(reason) = self.admission_problem(admission) {
                    return Err(invalid(reason));
                }
            }
            None if !self.development => {
                return Err(invalid(
                    "a production node needs [admission] (mode = \"tpm\"): without it every listed peer would be admitted without evidence. Only a DEVELOPMENT committee (development = true, written by `bulwark up`) may leave it out".into(),
                ));
            }
            None => {}
        }
        let mut underlyings = std::collections::BTreeSet::new();
        for feed in &self.oracle {
            if !underlyings.insert(feed.underlying) {
                return Err(invalid(format!(
                    "[[oracle]] lists underlying {} twice",
                    feed.underlying
                )));
            }
            feed.sources
                .validate()
                .map_err(|e| invalid(format!("[[oracle]] underlying {}: {e}", feed.underlying)))?;
        }
        let f = faults_tolerated(n);
        let mut per_center: BTreeMap<&str, usize> = BTreeMap::new();
        for peer in self.members() {
            *per_center.entry(peer.data_center.as_str()).or_default() += 1;
        }
        if let Some((data_center, count)) = per_center.iter().find(|(_, count)| **count > f) {
            return Err(ConfigError::Placement {
                data_center: data_center.to_string(),
                count: *count,
                n,
                f,
            });
        }
        // Candidates may take any vacant seats, over several epochs: a data center must still
        // hold at most f members once every candidate in it is seated, whichever members they
        // replace.
        let mut with_candidates = per_center.clone();
        for candidate in self.peers.iter().filter(|p| p.candidate) {
            *with_candidates
                .entry(candidate.data_center.as_str())
                .or_default() += 1;
        }
        for candidate in self.peers.iter().filter(|p| p.candidate) {
            let center = candidate.data_center.as_str();
            let count = with_candidates.get(center).copied().unwrap_or(0);
            if count > f {
                return Err(invalid(format!(
                    "candidate {} is in data center {center}, which would hold {count} members with every candidate there seated: a data center's genesis members and candidates together must be at most f = {f}, so that whichever seats they take no data center holds more than f",
                    candidate.public_key
                )));
            }
        }
        // The vault's own rule (issue #14): no data center holds t of its shares. Implied by the
        // one above while t = n - f, and checked by name so that a change of either is caught.
        let centers: Vec<&str> = self.members().map(|p| p.data_center.as_str()).collect();
        bulwark_vault::placement::check(&centers, bulwark_vault::threshold(n))?;
        Ok(())
    }

    /// The genesis committee's members: the peers that are not candidates.
    pub fn members(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| !p.candidate)
    }

    /// The first address that is not loopback (or `loopback = false`), if any: development
    /// evidence is accepted only by a committee that lives on one machine.
    fn non_loopback_address(&self) -> Option<String> {
        if !self.loopback {
            return Some("loopback = false".into());
        }
        let addresses = [self.p2p_listen, self.client_listen]
            .into_iter()
            .chain(self.peers.iter().map(|p| p.address))
            .chain(self.peers.iter().filter_map(|p| p.client_address));
        addresses
            .into_iter()
            .find(|a| !a.ip().is_loopback())
            .map(|a| a.to_string())
    }

    /// What is wrong with the `[audit]` section, if anything.
    fn audit_problem(&self, audit: &AuditConfig) -> Option<String> {
        if audit.policies.is_empty() {
            return Some("[audit] policies lists no policy file".into());
        }
        if !(1_000..=86_400_000).contains(&audit.interval_ms) {
            return Some(format!(
                "[audit] interval_ms is {}: it must be 1 000 to 86 400 000",
                audit.interval_ms
            ));
        }
        if audit.report_ttl_ms() < audit.interval_ms.saturating_add(audit.interval_ms / 2) {
            return Some(format!(
                "[audit] report_ttl_ms is {}: under 1.5 × interval_ms {} (a scan may come 20 % late), a report would go stale before the next",
                audit.report_ttl_ms(),
                audit.interval_ms
            ));
        }
        if audit.commands_fixture.is_some() && !self.development {
            return Some("[audit] commands_fixture answers command rules from a file: DEVELOPMENT only (development = true); a production node audits the machine it runs on".into());
        }
        None
    }

    /// What is wrong with the `[admission]` section, if anything.
    fn admission_problem(&self, admission: &AdmissionConfig) -> Option<String> {
        let tee = matches!(admission.mode, AdmissionMode::Snp | AdmissionMode::Tdx);
        for (set, what, applies) in [
            (
                admission.tsm_dir.is_some(),
                "tsm_dir",
                "\"snp\" and \"tdx\"",
            ),
            (admission.vcek_file.is_some(), "vcek_file", "\"snp\""),
            (admission.crl_file.is_some(), "crl_file", "\"snp\""),
            (
                admission.collateral_file.is_some(),
                "collateral_file",
                "\"tdx\"",
            ),
        ] {
            let fits = match what {
                "tsm_dir" => tee,
                "vcek_file" | "crl_file" => admission.mode == AdmissionMode::Snp,
                _ => admission.mode == AdmissionMode::Tdx,
            };
            if set && !fits {
                return Some(format!("{what} applies to admission mode {applies} only"));
            }
        }
        if tee {
            for (set, what) in [
                (admission.ek_ca_file.is_some(), "ek_ca_file"),
                (admission.attestor_key_file.is_some(), "attestor_key_file"),
            ] {
                if set {
                    return Some(format!(
                        "{what} does not apply to admission mode \"snp\" or \"tdx\""
                    ));
                }
            }
            // Sealing to the TEE itself is not built: the keystore is sealed by the VM's vTPM,
            // measured by its launcher as in mode "tpm". Without one only the DEVELOPMENT file
            // keystore is left, which production refuses.
            match (admission.tcti.is_some(), admission.launch_log.is_some()) {
                (true, true) => {}
                (false, false) if self.development => {}
                (false, false) => return Some("admission mode \"snp\"/\"tdx\" in production needs tcti and launch_log: the node's secrets are sealed by the VM's vTPM and its launcher measures it, as in mode \"tpm\" (sealing to the TEE itself is not built, and the DEVELOPMENT file keystore is refused in production)".into()),
                _ => return Some("admission mode \"snp\"/\"tdx\": tcti and launch_log go together (the vTPM that seals the keystore, and its launcher's log)".into()),
            }
        }
        match admission.mode {
            AdmissionMode::Snp => {
                if admission.crl_file.is_none() {
                    return Some("admission mode \"snp\" needs crl_file: AMD's CRL for this chip's product (DER, from KDS /vcek/v1/{product}/crl), kept fresh by the operator; peers refuse a report without one".into());
                }
            }
            AdmissionMode::Tdx => {
                if admission.collateral_file.is_none() {
                    return Some("admission mode \"tdx\" needs collateral_file: DCAP collateral JSON for this platform (from Intel PCS or a PCCS), kept fresh by the operator".into());
                }
            }
            AdmissionMode::Dev => {
                if !self.development {
                    return Some("admission mode \"dev\" (the DEVELOPMENT attestor) is refused in production; use mode = \"tpm\" (only a DEVELOPMENT committee, development = true, accepts dev evidence)".into());
                }
                if admission.ek_ca_file.is_some() {
                    return Some("ek_ca_file applies to admission mode \"tpm\" only".into());
                }
                if admission.launch_log.is_some() {
                    return Some("launch_log applies to admission mode \"tpm\" only".into());
                }
                if admission.attestor_key_file.is_none() {
                    return Some("admission mode \"dev\" needs attestor_key_file".into());
                }
            }
            AdmissionMode::Tpm => {
                if admission.tcti.as_deref().is_none_or(str::is_empty) {
                    return Some(
                        "admission mode \"tpm\" needs tcti (e.g. \"device:/dev/tpmrm0\")".into(),
                    );
                }
                if admission.launch_log.is_none() {
                    return Some(
                        "admission mode \"tpm\" needs launch_log: the log its launcher (`bulwark attest measure --log`) keeps; a node does not measure itself".into(),
                    );
                }
                for peer in &self.peers {
                    if admission.ek_ca_file.is_some()
                        && peer
                            .tpm_ek_cert
                            .as_deref()
                            .and_then(hex_decode)
                            .is_none_or(|c| c.is_empty())
                    {
                        return Some(format!(
                            "ek_ca_file is set, so every peer needs tpm_ek_cert (hex DER of its EK certificate); {} has none or it is not hex",
                            peer.public_key
                        ));
                    }
                    match peer.tpm_ek.as_deref().map(hex_decode) {
                        Some(Some(bytes)) if !bytes.is_empty() => {}
                        Some(_) => {
                            return Some(format!(
                                "peer {}: tpm_ek is not hex",
                                peer.public_key
                            ))
                        }
                        None => {
                            return Some(format!(
                                "admission mode \"tpm\" needs every peer's tpm_ek (its EK from the operators' inventory); {} has none",
                                peer.public_key
                            ))
                        }
                    }
                }
            }
        }
        if admission.interval_ms < 500 {
            return Some("admission interval_ms must be at least 500".into());
        }
        if let Some(peer) = self.peers.iter().find(|p| p.client_address.is_none()) {
            return Some(format!(
                "admission needs every peer's client_address; {} has none",
                peer.public_key
            ));
        }
        None
    }
}

/// An account opened at genesis, as the genesis file lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccountEntry {
    /// Account id.
    pub account: u64,
    /// Its ed25519 public key, hex.
    pub public_key: String,
    /// Collateral at genesis, micros of USD.
    pub deposit_micros: i64,
}

/// The venue's genesis file (JSON), identical at every member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// The venue's time origin: engine time 0, milliseconds since the UNIX epoch.
    pub venue_epoch_ms: u64,
    /// Starting index price per underlying (BTC, ETH), micros of USD.
    pub index_micros: Vec<i64>,
    /// Accounts opened at genesis.
    pub accounts: Vec<GenesisAccountEntry>,
    /// The oracle committee: ed25519 public keys (hex) whose signed observations certify index
    /// rounds (2f+1 of them per round). Empty: unsigned index prices from genesis only.
    #[serde(default)]
    pub oracle_members: Vec<String>,
    /// The sentinel's policy for this committee (see `docs/sentinel.md`); absent: the safe
    /// defaults. Part of the genesis state, so every member applies the same numbers.
    #[serde(default)]
    pub sentinel: Option<bulwark_sentinel::Policy>,
    /// The operators whose quorum approves a replacement member (`{"keys": [hex, ...],
    /// "quorum": M}`, M a majority of the keys); absent: no replacement can be approved.
    #[serde(default)]
    pub operators: Option<bulwark_sentinel::Operators>,
}

impl GenesisFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<GenesisFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The sentinel's policy: the `sentinel` section, or the safe defaults when it is absent.
    /// A section with an unusable value (a zero threshold, a window of 0, `min_members` below 3)
    /// is a configuration error naming the field; unknown keys are refused by [`GenesisFile::load`].
    pub fn sentinel_policy(&self, path: &Path) -> Result<bulwark_sentinel::Policy, ConfigError> {
        let policy = self.sentinel.clone().unwrap_or_default();
        policy.validate().map_err(|reason| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason: format!("sentinel: {reason}"),
        })?;
        Ok(policy)
    }

    /// The sentinel's policy and operators: [`GenesisFile::sentinel_policy`] and the `operators`
    /// section (none when absent). An unusable operator set (a key twice, a quorum that is not a
    /// majority) is a configuration error naming it.
    pub fn sentinel(
        &self,
        path: &Path,
    ) -> Result<(bulwark_sentinel::Policy, bulwark_sentinel::Operators), ConfigError> {
        let policy = self.sentinel_policy(path)?;
        let operators = self.operators.clone().unwrap_or_default();
        operators
            .validate()
            .map_err(|reason| ConfigError::Invalid {
                path: path.to_path_buf(),
                reason: reason.to_string(),
            })?;
        Ok((policy, operators))
    }

    /// The engine's oracle committee from `oracle_members` (f = (n - 1) / 3).
    pub fn oracle_config(&self, path: &Path) -> Result<OracleConfig, ConfigError> {
        let members = self
            .oracle_members
            .iter()
            .map(|hex| {
                hex_decode(hex)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        reason: format!("oracle member {hex:?} is not 64 hex characters"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let f = faults_tolerated(members.len()) as u32;
        Ok(OracleConfig {
            members,
            f,
            ..OracleConfig::default()
        })
    }

    /// The accounts in the engine's terms.
    pub fn accounts(&self, path: &Path) -> Result<Vec<GenesisAccount>, ConfigError> {
        self.accounts
            .iter()
            .map(|entry| {
                let key = hex_decode(&entry.public_key)
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        reason: format!("account {} has a malformed public key", entry.account),
                    })?;
                Ok(GenesisAccount {
                    account: AccountId(entry.account),
                    public_key: key,
                    deposit_micros: entry.deposit_micros,
                })
            })
            .collect()
    }
}

/// The 32 bytes of a secret file holding 64 hex characters (surrounding whitespace allowed):
/// node keys, attestor keys, client keys. The error says what is wrong, without the path.
pub fn read_hex32(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path)?;
    parse_hex32(&text)
}

/// 32 bytes from 64 hex characters (surrounding whitespace ignored).
pub fn parse_hex32(text: &str) -> Result<[u8; 32], KeyFileError> {
    hex_decode(text)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(KeyFileError::NotHex32)
}

/// Bytes of a hex string (surrounding whitespace ignored); `None` when it is not hex.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(centers: &[&str]) -> NodeConfig {
        NodeConfig {
            name: "n".into(),
            data_center: centers[0].into(),
            key_file: "k".into(),
            data_dir: ".".into(),
            genesis_file: "g".into(),
            p2p_listen: "127.0.0.1:1".parse().unwrap(),
            client_listen: "127.0.0.1:2".parse().unwrap(),
            loopback: true,
            block_txs_max: 10,
            verify_threads: 1,
            snapshot_every: 1_000,
            peers: centers
                .iter()
                .enumerate()
                .map(|(i, dc)| Peer {
                    public_key: format!("{i:064x}"),
                    address: "127.0.0.1:3".parse().unwrap(),
                    data_center: dc.to_string(),
                    client_address: None,
                    tpm_ek: None,
                    tpm_ek_cert: None,
                    candidate: false,
                })
                .collect(),
            admission: None,
            oracle: Vec::new(),
            vault: None,
            audit: None,
            operator: None,
            development: true,
        }
    }

    #[test]
    fn candidates_are_outside_n_and_their_data_centers_stay_within_f_once_all_are_seated() {
        let path = Path::new("node.toml");
        let with = |centers: &[&str], candidates: &[&str]| {
            let mut c = config(centers);
            for (i, center) in candidates.iter().enumerate() {
                c.peers.push(Peer {
                    public_key: format!("{:064x}", 100 + i),
                    address: "127.0.0.1:4".parse().unwrap(),
                    data_center: center.to_string(),
                    client_address: None,
                    tpm_ek: None,
                    tpm_ek_cert: None,
                    candidate: true,
                });
            }
            c.validate(path).map_err(|e| e.to_string())
        };
        let four = ["dc-0", "dc-1", "dc-2", "dc-3"];
        assert!(with(&four, &["dc-4"]).is_ok());
        assert!(with(&four, &["dc-4", "dc-5"]).is_ok());
        // A candidate is not a member: three members and a candidate are too few.
        let error = with(&four[..3], &["dc-4"]).unwrap_err();
        assert!(error.contains("at least 4 members"), "{error}");
        // f = 1: a candidate in a member's data center, or two candidates in one new data
        // center (seated over two epochs), would put two members in it.
        for candidates in [&["dc-0"][..], &["dc-4", "dc-4"]] {
            let error = with(&four, candidates).unwrap_err();
            assert!(error.contains("at most f = 1"), "{error}");
        }
    }

    #[test]
    fn the_audit_section_is_checked_and_a_command_fixture_is_development_only() {
        let path = Path::new("node.toml");
        let audit = AuditConfig {
            policies: vec!["committee-node.yml".into()],
            manifest: None,
            root: "/".into(),
            interval_ms: 60_000,
            commands_fixture: None,
            report_ttl_ms: None,
        };
        assert_eq!(audit.report_ttl_ms(), 180_000);
        let with = |audit: AuditConfig, development: bool| {
            let mut c = config(&["dc-0", "dc-1", "dc-2", "dc-3"]);
            c.development = development;
            c.audit = Some(audit);
            c.validate(path)
        };
        assert!(with(audit.clone(), true).is_ok());
        let refused = |audit: AuditConfig, development: bool, needle: &str| {
            let error = with(audit, development).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        };
        refused(
            AuditConfig {
                policies: Vec::new(),
                ..audit.clone()
            },
            true,
            "no policy file",
        );
        refused(
            AuditConfig {
                interval_ms: 10,
                ..audit.clone()
            },
            true,
            "interval_ms is 10",
        );
        refused(
            AuditConfig {
                report_ttl_ms: Some(1_000),
                ..audit.clone()
            },
            true,
            "stale before the next",
        );
        refused(
            AuditConfig {
                commands_fixture: Some("fixture.yml".into()),
                ..audit.clone()
            },
            false,
            "DEVELOPMENT only",
        );
        // Unknown keys in the section are refused by name.
        let text = "policies = [\"a.yml\"]\nintervall_ms = 5\n";
        let error = toml::from_str::<AuditConfig>(text).unwrap_err().to_string();
        assert!(error.contains("intervall_ms"), "{error}");
    }

    #[test]
    fn the_vault_backend_is_chosen_in_the_config_and_production_refuses_the_file_one() {
        let path = Path::new("node.toml");
        let pkcs11 = VaultPkcs11Config {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            token_label: "node-1".into(),
            pin_file: "hsm.pin".into(),
            key_label: "bulwark-vault".into(),
        };
        let with = |backend, section: Option<VaultPkcs11Config>, development| {
            let mut c = config(&["a", "b", "c", "d"]);
            c.development = development;
            c.admission = Some(admission(AdmissionMode::Tpm, None));
            for peer in &mut c.peers {
                peer.client_address = Some("127.0.0.1:4".parse().unwrap());
                peer.tpm_ek = Some("00ab".into());
            }
            c.vault = Some(VaultConfig {
                backend,
                pkcs11: section,
            });
            c
        };
        let refusal = |c: NodeConfig| c.validate(path).unwrap_err().to_string();
        assert_eq!(
            with(VaultBackend::Pkcs11, Some(pkcs11.clone()), false)
                .validate(path)
                .map_err(|e| e.to_string()),
            Ok(())
        );
        assert!(with(VaultBackend::Tpm, None, false).validate(path).is_ok());
        assert!(refusal(with(VaultBackend::File, None, false)).contains("DEVELOPMENT only"));
        assert!(refusal(with(VaultBackend::Pkcs11, None, false)).contains("[vault.pkcs11]"));
        assert!(
            refusal(with(VaultBackend::Tpm, Some(pkcs11.clone()), false)).contains("pkcs11\" only")
        );
        let mut empty = pkcs11.clone();
        empty.key_label.clear();
        assert!(
            refusal(with(VaultBackend::Pkcs11, Some(empty), false)).contains("must not be empty")
        );
        // The TPM backend needs a TPM-sealed keystore.
        let mut dev = with(VaultBackend::Tpm, None, true);
        dev.admission = Some(admission(AdmissionMode::Dev, None));
        assert!(refusal(dev).contains("TPM-sealed keystore"));
        // Absent: the development file backend on a development node, none in production.
        let mut absent = config(&["a", "b", "c", "d"]);
        assert_eq!(absent.vault_backend(), Some(VaultBackend::File));
        absent.development = false;
        assert_eq!(absent.vault_backend(), None);
        // The section parses from TOML and refuses unknown keys and backends.
        let parsed: VaultConfig = toml::from_str(
            "backend = \"pkcs11\"\n[pkcs11]\nmodule = \"m.so\"\ntoken_label = \"t\"\npin_file = \"p\"\nkey_label = \"k\"\n",
        )
        .unwrap();
        assert_eq!(parsed.backend, VaultBackend::Pkcs11);
        assert!(toml::from_str::<VaultConfig>("backend = \"usb-stick\"").is_err());
        assert!(toml::from_str::<VaultConfig>("backend = \"tpm\"\nsurprise = 1").is_err());
    }

    /// An `[admission]` section of `mode` with every file set (and `ek_ca_file`, if given).
    fn admission(mode: AdmissionMode, ek_ca_file: Option<&str>) -> AdmissionConfig {
        AdmissionConfig {
            mode,
            tcti: Some("device:/dev/tpmrm0".into()),
            launch_log: (mode == AdmissionMode::Tpm).then(|| "launch.log".into()),
            interval_ms: 1_000,
            appraisal_ttl_ms: None,
            manifest_file: "m".into(),
            operators_file: "o".into(),
            attestor_key_file: Some("a".into()),
            ek_ca_file: ek_ca_file.map(Into::into),
            tsm_dir: None,
            vcek_file: None,
            crl_file: None,
            collateral_file: None,
        }
    }

    #[test]
    fn production_refuses_every_development_path() {
        let path = Path::new("node.toml");
        let admitted = |mode: AdmissionMode, development: bool| {
            let mut c = config(&["a", "b", "c", "d"]);
            c.development = development;
            for peer in &mut c.peers {
                peer.client_address = Some("127.0.0.1:4".parse().unwrap());
                peer.tpm_ek = Some("00ab".into());
            }
            c.admission = Some(admission(mode, None));
            c
        };
        let refusal = |c: NodeConfig| c.validate(path).unwrap_err().to_string();
        // Admission left out: development only.
        let mut open = config(&["a", "b", "c", "d"]);
        assert!(open.validate(path).is_ok());
        open.development = false;
        assert!(refusal(open).contains("production node needs [admission]"));
        // The DEVELOPMENT attestor: development only, and only on loopback.
        assert!(admitted(AdmissionMode::Dev, true).validate(path).is_ok());
        assert!(refusal(admitted(AdmissionMode::Dev, false)).contains("refused in production"));
        let mut wide = admitted(AdmissionMode::Dev, true);
        wide.loopback = false;
        assert!(refusal(wide).contains("loopback = false"));
        // Nor may a development node without admission reach past loopback.
        let mut open_wide = config(&["a", "b", "c", "d"]);
        open_wide.peers[1].address = "10.0.0.8:7100".parse().unwrap();
        assert!(refusal(open_wide).contains("10.0.0.8:7100"));
        let mut remote_peer = admitted(AdmissionMode::Dev, true);
        remote_peer.peers[2].address = "10.0.0.7:7100".parse().unwrap();
        assert!(refusal(remote_peer).contains("10.0.0.7:7100"));
        let mut remote_client = admitted(AdmissionMode::Dev, true);
        remote_client.client_listen = "0.0.0.0:7200".parse().unwrap();
        assert!(refusal(remote_client).contains("0.0.0.0:7200"));
        // A TPM node is production's way in.
        assert!(admitted(AdmissionMode::Tpm, false).validate(path).is_ok());
    }

    #[test]
    fn the_operator_port_stays_on_loopback_unless_allowed() {
        let path = Path::new("node.toml");
        let with = |listen: &str, allow_remote: bool| {
            let mut c = config(&["a", "b", "c", "d"]);
            c.operator = Some(OperatorConfig {
                listen: listen.parse().unwrap(),
                allow_remote,
            });
            c.validate(path)
        };
        assert!(with("127.0.0.1:7300", false).is_ok());
        assert!(with("[::1]:7300", false).is_ok());
        let wide = with("0.0.0.0:7300", false).unwrap_err().to_string();
        assert!(wide.contains("allow_remote = true"), "{wide}");
        // A production operator who wants remote scraping says so (a development committee
        // still must stay on loopback for its other addresses, not this one).
        assert!(with("0.0.0.0:7300", true).is_ok());
        let clash = with("127.0.0.1:2", false).unwrap_err().to_string();
        assert!(clash.contains("another listener"), "{clash}");
        // An unknown key in the section is refused, not ignored.
        let text = "listen = \"127.0.0.1:7300\"\nallow_remote = true\npublic = true\n";
        assert!(toml::from_str::<OperatorConfig>(text).is_err());
    }

    #[test]
    fn placement_allows_at_most_f_per_data_center() {
        let path = Path::new("node.toml");
        assert!(config(&["a", "b", "c", "d"]).validate(path).is_ok());
        assert!(matches!(
            config(&["a", "a", "c", "d"]).validate(path),
            Err(ConfigError::Placement { count: 2, f: 1, .. })
        ));
        assert!(config(&["a", "a", "b", "b", "c", "c", "d"])
            .validate(path)
            .is_ok());
        assert!(config(&["a", "b", "c"]).validate(path).is_err());
    }

    #[test]
    fn admission_modes_need_their_settings() {
        let path = Path::new("node.toml");
        let with = |mode: AdmissionMode, tcti: Option<&str>, attestor: bool, ek: Option<&str>| {
            let mut c = config(&["a", "b", "c", "d"]);
            for peer in &mut c.peers {
                peer.client_address = Some("127.0.0.1:4".parse().unwrap());
                peer.tpm_ek = ek.map(str::to_string);
            }
            c.admission = Some(AdmissionConfig {
                mode,
                tcti: tcti.map(str::to_string),
                launch_log: (mode == AdmissionMode::Tpm && tcti != Some("no-log"))
                    .then(|| "launch.log".into()),
                interval_ms: 1_000,
                appraisal_ttl_ms: None,
                manifest_file: "m".into(),
                operators_file: "o".into(),
                attestor_key_file: attestor.then(|| "a".into()),
                ek_ca_file: None,
                tsm_dir: None,
                vcek_file: None,
                crl_file: None,
                collateral_file: None,
            });
            c.validate(path).map_err(|e| e.to_string())
        };
        assert!(with(AdmissionMode::Dev, None, true, None).is_ok());
        assert!(with(AdmissionMode::Dev, None, false, None)
            .unwrap_err()
            .contains("attestor_key_file"));
        assert!(with(
            AdmissionMode::Tpm,
            Some("device:/dev/tpmrm0"),
            false,
            Some("00ab")
        )
        .is_ok());
        assert!(with(AdmissionMode::Tpm, None, false, Some("00ab"))
            .unwrap_err()
            .contains("tcti"));
        assert!(
            with(AdmissionMode::Tpm, Some("no-log"), false, Some("00ab"))
                .unwrap_err()
                .contains("launch_log")
        );
        assert!(
            with(AdmissionMode::Tpm, Some("device:/dev/tpmrm0"), false, None)
                .unwrap_err()
                .contains("tpm_ek")
        );
        assert!(with(
            AdmissionMode::Tpm,
            Some("device:/dev/tpmrm0"),
            false,
            Some("xyz")
        )
        .unwrap_err()
        .contains("not hex"));
    }

    #[test]
    fn tee_modes_take_their_own_settings_and_no_others() {
        let path = Path::new("node.toml");
        let tee = |mode: AdmissionMode, edit: &dyn Fn(&mut AdmissionConfig)| {
            let mut c = config(&["a", "b", "c", "d"]);
            c.development = false;
            for peer in &mut c.peers {
                peer.client_address = Some("127.0.0.1:4".parse().unwrap());
            }
            let mut admission = admission(mode, None);
            admission.tcti = None;
            admission.attestor_key_file = None;
            edit(&mut admission);
            c.admission = Some(admission);
            c.validate(path).map_err(|e| e.to_string())
        };
        let vtpm = |a: &mut AdmissionConfig| {
            a.tcti = Some("device:/dev/tpmrm0".into());
            a.launch_log = Some("launch.log".into());
        };
        // In production the keystore is sealed by the VM's vTPM: without one only the
        // DEVELOPMENT file keystore would be left, which production refuses.
        assert!(tee(AdmissionMode::Snp, &|_| {})
            .unwrap_err()
            .contains("needs tcti and launch_log"));
        assert!(tee(AdmissionMode::Snp, &|a| a.tcti =
            Some("device:/dev/tpmrm0".into()))
        .unwrap_err()
        .contains("go together"));
        // SEV-SNP needs AMD's CRL, and nothing more (the VCEK may come from the host).
        assert!(tee(AdmissionMode::Snp, &vtpm)
            .unwrap_err()
            .contains("crl_file"));
        let snp = |a: &mut AdmissionConfig| {
            vtpm(a);
            a.crl_file = Some("milan.crl".into());
        };
        assert!(tee(AdmissionMode::Snp, &snp).is_ok());
        assert!(tee(AdmissionMode::Snp, &|a| {
            snp(a);
            a.vcek_file = Some("vcek.der".into());
        })
        .is_ok());
        // TDX needs its collateral.
        assert!(tee(AdmissionMode::Tdx, &vtpm)
            .unwrap_err()
            .contains("collateral_file"));
        assert!(tee(AdmissionMode::Tdx, &|a| {
            vtpm(a);
            a.collateral_file = Some("c.json".into());
        })
        .is_ok());
        // Settings of other modes are refused, by name.
        assert!(tee(AdmissionMode::Tdx, &|a| {
            vtpm(a);
            a.collateral_file = Some("c.json".into());
            a.vcek_file = Some("vcek.der".into());
        })
        .unwrap_err()
        .contains("vcek_file"));
        assert!(tee(AdmissionMode::Tdx, &|a| {
            vtpm(a);
            a.collateral_file = Some("c.json".into());
            a.crl_file = Some("milan.crl".into());
        })
        .unwrap_err()
        .contains("crl_file"));
        assert!(tee(AdmissionMode::Snp, &|a| {
            snp(a);
            a.attestor_key_file = Some("k".into());
        })
        .unwrap_err()
        .contains("attestor_key_file"));
        assert!(tee(AdmissionMode::Tpm, &|a| {
            a.tcti = Some("device:/dev/tpmrm0".into());
            a.tsm_dir = Some("/tmp".into());
        })
        .unwrap_err()
        .contains("tsm_dir"));
        // A development committee on one machine may keep the file keystore.
        let mut c = config(&["a", "b", "c", "d"]);
        for peer in &mut c.peers {
            peer.client_address = Some("127.0.0.1:4".parse().unwrap());
        }
        let mut dev = admission(AdmissionMode::Snp, None);
        dev.tcti = None;
        dev.attestor_key_file = None;
        dev.crl_file = Some("milan.crl".into());
        c.admission = Some(dev);
        assert!(c.validate(path).is_ok());
    }

    #[test]
    fn a_trusted_ek_ca_needs_every_peers_ek_certificate() {
        let path = Path::new("node.toml");
        let with = |mode: AdmissionMode, cert: Option<&str>| {
            let mut c = config(&["a", "b", "c", "d"]);
            for peer in &mut c.peers {
                peer.client_address = Some("127.0.0.1:4".parse().unwrap());
                peer.tpm_ek = Some("00ab".into());
                peer.tpm_ek_cert = cert.map(str::to_string);
            }
            c.admission = Some(admission(mode, Some("ek-ca.pem")));
            c.validate(path).map_err(|e| e.to_string())
        };
        assert!(with(AdmissionMode::Tpm, Some("3082")).is_ok());
        assert!(with(AdmissionMode::Tpm, None)
            .unwrap_err()
            .contains("tpm_ek_cert"));
        assert!(with(AdmissionMode::Tpm, Some("zz"))
            .unwrap_err()
            .contains("tpm_ek_cert"));
        assert!(with(AdmissionMode::Dev, Some("3082"))
            .unwrap_err()
            .contains("\"tpm\" only"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("bulwark-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(&path, "name = \"x\"\nsurprise = 1\n").unwrap();
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::Parse { .. })
        ));
        let mode: Result<AdmissionMode, _> = toml::from_str::<toml::Value>("mode = \"sgx\"")
            .unwrap()["mode"]
            .clone()
            .try_into();
        assert!(mode.is_err(), "an unknown admission mode is refused");
        assert_eq!(hex_decode("0aff"), Some(vec![10, 255]));
        assert_eq!(hex_decode("0g"), None);
        assert_eq!(hex_decode("abc"), None);
        let key = dir.join("node.key");
        std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(read_hex32(&key).unwrap(), [0xab; 32]);
        std::fs::write(&key, "ab".repeat(31)).unwrap();
        assert!(
            matches!(read_hex32(&key), Err(KeyFileError::NotHex32)),
            "31 bytes"
        );
        std::fs::write(&key, [0xff, 0xfe, 0x00]).unwrap();
        assert!(
            matches!(read_hex32(&key), Err(KeyFileError::Read(_))),
            "not text"
        );
        assert!(matches!(
            read_hex32(&dir.join("missing.key")),
            Err(KeyFileError::Read(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_operators_section_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("bulwark-operators-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("genesis.json");
        let key = |i: u8| {
            hex::encode(
                ed25519_dalek::SigningKey::from_bytes(&[i; 32])
                    .verifying_key()
                    .as_bytes(),
            )
        };
        let with = |operators: String| {
            format!(
                r#"{{"venue_epoch_ms": 0, "index_micros": [1], "accounts": [], "operators": {operators}}}"#
            )
        };
        let three = format!(r#"["{}", "{}", "{}"]"#, key(1), key(2), key(3));
        std::fs::write(
            &path,
            with(format!(r#"{{"keys": {three}, "quorum": 2, "m": 1}}"#)),
        )
        .unwrap();
        assert!(matches!(
            GenesisFile::load(&path),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, with(r#"{"keys": ["zz"], "quorum": 1}"#.into())).unwrap();
        assert!(matches!(
            GenesisFile::load(&path),
            Err(ConfigError::Parse { .. })
        ));
        for (keys, quorum, words) in [
            (three.clone(), 1, "majority"),
            (three.clone(), 4, "majority"),
            (format!(r#"["{}", "{}"]"#, key(1), key(1)), 2, "twice"),
        ] {
            std::fs::write(
                &path,
                with(format!(r#"{{"keys": {keys}, "quorum": {quorum}}}"#)),
            )
            .unwrap();
            let file = GenesisFile::load(&path).expect("well-formed");
            match file.sentinel(&path) {
                Err(ConfigError::Invalid { reason, .. }) => {
                    assert!(
                        reason.contains("operators") && reason.contains(words),
                        "{reason}"
                    )
                }
                other => panic!("{keys} / {quorum} must be refused: {other:?}"),
            }
        }
        std::fs::write(&path, with(format!(r#"{{"keys": {three}, "quorum": 2}}"#))).unwrap();
        let (_, operators) = GenesisFile::load(&path).unwrap().sentinel(&path).unwrap();
        assert_eq!((operators.keys.len(), operators.quorum), (3, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_sentinel_section_is_refused_with_the_field_named() {
        let dir = std::env::temp_dir().join(format!("bulwark-genesis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("genesis.json");
        let with = |sentinel: &str| {
            format!(
                r#"{{"venue_epoch_ms": 0, "index_micros": [1], "accounts": [], "sentinel": {sentinel}}}"#
            )
        };
        std::fs::write(&path, with(r#"{"silence_views": 5, "quorum": 1}"#)).unwrap();
        match GenesisFile::load(&path) {
            Err(ConfigError::Parse { reason, .. }) => {
                assert!(reason.contains("quorum"), "{reason}")
            }
            other => panic!("an unknown sentinel key must be a parse error: {other:?}"),
        }
        std::fs::write(&path, with(r#"{"silence_views": "many"}"#)).unwrap();
        assert!(matches!(
            GenesisFile::load(&path),
            Err(ConfigError::Parse { .. })
        ));
        for (section, field) in [
            (r#"{"silence_views": 0}"#, "silence_views"),
            (r#"{"contraindicated": 0}"#, "contraindicated"),
            (r#"{"window_ms": 0}"#, "window_ms"),
            (r#"{"min_members": 2}"#, "min_members"),
        ] {
            std::fs::write(&path, with(section)).unwrap();
            let file = GenesisFile::load(&path).expect("well-formed");
            match file.sentinel_policy(&path) {
                Err(ConfigError::Invalid { reason, .. }) => {
                    assert!(
                        reason.starts_with("sentinel: ") && reason.contains(field),
                        "{reason}"
                    )
                }
                other => panic!("{section} must be refused: {other:?}"),
            }
        }
        std::fs::write(&path, with(r#"{"silence_views": 40}"#)).unwrap();
        let policy = GenesisFile::load(&path)
            .unwrap()
            .sentinel_policy(&path)
            .unwrap();
        assert_eq!(policy.silence_views, 40);
        assert_eq!(
            policy.min_members,
            bulwark_sentinel::Policy::default().min_members
        );
        std::fs::write(
            &path,
            r#"{"venue_epoch_ms": 0, "index_micros": [1], "accounts": []}"#,
        )
        .unwrap();
        assert_eq!(
            GenesisFile::load(&path)
                .unwrap()
                .sentinel_policy(&path)
                .unwrap(),
            bulwark_sentinel::Policy::default(),
            "absent: the defaults"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
