//! Why a DEVELOPMENT committee cannot be provisioned, launched or brought up.

use bulwark_attestor::launch::LaunchError;
use bulwark_testkit::swtpm::SwtpmError;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Why [`launch`](crate::launch) or [`run_committee`](crate::run_committee) failed. The text
/// names the file, node or port concerned and, where there is one, what to run instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitteeError {
    /// Fewer than 4 nodes asked for.
    #[error("a committee needs at least 4 nodes (n = 3f + 1); --nodes {nodes} given")]
    TooFewNodes {
        /// The `--nodes` given.
        nodes: usize,
    },
    /// More nodes and candidates than one port layout holds.
    #[error("at most {max} nodes and candidates together on one --base-port layout (p2p ports from the base, node operator ports 50 above, gateway operator ports 75 above, client endpoints 100 above); {asked} asked for")]
    TooManyNodes {
        /// Nodes plus candidates asked for.
        asked: usize,
        /// The most the layout holds.
        max: usize,
    },
    /// The committee on disk has another size than `--nodes` (and `--candidates`).
    #[error("{} holds {existing} node directories (members and candidates); run with the --nodes and --candidates it was created with, or --fresh to start a new venue", .dir.display())]
    NodeCount {
        /// The committee directory.
        dir: PathBuf,
        /// Its number of nodes.
        existing: usize,
    },
    /// Candidates asked of a TPM committee.
    #[error("--candidates works with the DEVELOPMENT attestor only (a candidate's software TPM is not provisioned yet)")]
    CandidatesWithTpm,
    /// The committee on disk observes other oracle sources than the ones asked for.
    #[error("{} was created with other oracle sources; run with --fresh to change them", .dir.display())]
    OracleSources {
        /// The committee directory.
        dir: PathBuf,
    },
    /// `--tpm` asked of a committee created without it.
    #[error("{} was created without --tpm; run with --fresh to create a TPM committee", .dir.display())]
    NotTpm {
        /// The committee directory.
        dir: PathBuf,
    },
    /// A node's configuration on disk does not load.
    #[error(transparent)]
    NodeConfig(#[from] bulwark_node::node::config::ConfigError),
    /// A file or directory cannot be read, created or opened.
    #[error("{}: {source}", .path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node's key file does not hold 64 hex characters.
    #[error("{}: {source}", .path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: bulwark_node::node::config::KeyFileError,
    },
    /// A secret file or private directory cannot be written.
    #[error(transparent)]
    Secret(#[from] bulwark_node::node::keystore::KeystoreError),
    /// A file cannot be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The previous committee cannot be moved aside (`--fresh`).
    #[error("cannot move {}: {source}", .path.display())]
    MoveAside {
        /// The committee directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// This binary cannot be read to measure it into the reference manifest.
    #[error("cannot measure this binary: {0}")]
    MeasureBinary(#[source] std::io::Error),
    /// A node's software TPM cannot be started (is swtpm installed? is its port free?).
    #[error("node {index}'s software TPM: {source}")]
    StartTpm {
        /// The node.
        index: usize,
        /// Why swtpm did not start.
        source: SwtpmError,
    },
    /// The manufacturer CA of the software TPMs cannot be read.
    #[error(transparent)]
    Swtpm(#[from] SwtpmError),
    /// A running software TPM refused an operation (open, read PCRs, read the EK).
    #[error("software TPM {tcti}: {source}")]
    Tpm {
        /// Its TCTI.
        tcti: String,
        /// The TPM's error.
        source: LaunchError,
    },
    /// A node's launch cannot be measured into its software TPM's launch PCR and log.
    #[error("measuring node {index} into its TPM: {source}")]
    MeasureLaunch {
        /// The node.
        index: usize,
        /// The TPM's error.
        source: LaunchError,
    },
    /// A fresh node key does not decode (a bug in the key generation).
    #[error("cannot make a node key: {0}")]
    NodeKey(#[source] commonware_codec::Error),
    /// The DEVELOPMENT operator set is refused.
    #[error(transparent)]
    Operators(#[from] bulwark_attest::manifest::ManifestError),
    /// A manifest, genesis or operator set cannot be encoded as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A node configuration cannot be encoded as TOML.
    #[error(transparent)]
    Toml(#[from] toml::ser::Error),
    /// A node process cannot be started.
    #[error("cannot start node {index}: {source}")]
    Spawn {
        /// The node.
        index: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node process exited before its client endpoint opened.
    #[error("node {index} exited ({status}) during start-up; see {}:\n{tail}", .log.display())]
    ExitedAtStart {
        /// The node.
        index: usize,
        /// How it exited.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A node process exited while the committee waited for the genesis DKG.
    #[error("node {index} exited ({status}); see {}", .log.display())]
    Exited {
        /// The node.
        index: usize,
        /// How it exited.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
    },
    /// Some node did not open its client endpoint in time.
    #[error("the nodes did not open their endpoints within 120 s; see node logs")]
    EndpointsTimeout,
    /// The genesis DKG did not finish in time.
    #[error("the genesis DKG did not finish within 300 s; see node logs")]
    DkgTimeout,
    /// The nodes disagree on the committee's identity (group public key).
    #[error("the nodes report different committee identities: {identities:?}")]
    Identities {
        /// What each node reports.
        identities: Vec<String>,
    },
}
