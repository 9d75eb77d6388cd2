//! The keystore backends: the same conformance promises as the PKCS#11 backend, in development
//! mode and with the keystore key sealed by a real software TPM (swtpm) to the measured launch,
//! where a tampered binary's launch cannot open the vault's files.

use bulwark_vaultstore::keystore::KeystoreSealer;
use bulwark_vaultstore::{conformance, BackendKind, Sealer as _};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bulwark-vaultstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_development_backend_keeps_every_promise_and_names_itself() {
    let dir = temp_dir("file");
    let sealer = KeystoreSealer::development([4; 32]);
    assert_eq!(sealer.kind(), BackendKind::File);
    conformance::exercise(sealer, &dir);
    // Another keystore key opens nothing.
    let mut one = KeystoreSealer::development([4; 32]);
    let mut two = KeystoreSealer::development([5; 32]);
    let sealed = one.seal(b"ad", b"secret").expect("seals");
    assert!(two.open(b"ad", &sealed).is_err());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[cfg(feature = "tpm")]
#[test]
fn the_tpm_backend_keeps_every_promise_and_a_tampered_launch_opens_nothing() {
    use bulwark_attest::evidence::AppMeasurements;
    use bulwark_attestor::launch::{LaunchError, NodeTpm};
    use bulwark_testkit::swtpm::{self, SoftwareTpm};
    if !swtpm::installed() {
        println!(
            "SKIPPED: swtpm is not installed (apt-get install swtpm swtpm-tools); CI installs it"
        );
        return;
    }
    let soft = SoftwareTpm::start().expect("swtpm starts");
    let dir = temp_dir("tpm");
    let log_path = dir.join("launch.log");
    let honest = AppMeasurements::from_contents(b"bulwark node binary", b"config", b"policy");
    let tampered = AppMeasurements::from_contents(b"tampered binary", b"config", b"policy");
    let mut node = NodeTpm::open(&soft.tcti()).expect("opens");
    let log = node.launch(&log_path, &honest).expect("launches");
    let keystore_key: [u8; 32] = [0x5a; 32];
    let blob = node
        .seal_for_launches(&keystore_key, &log, &honest)
        .expect("seals");
    // The honest node's next launch unseals the keystore key and uses it for the vault.
    node.launch(&log_path, &honest).expect("relaunches");
    let key: [u8; 32] = node
        .unseal(&blob)
        .expect("an honest launch unseals")
        .as_slice()
        .try_into()
        .expect("32 bytes");
    let vault = dir.join("data");
    std::fs::create_dir_all(&vault).expect("data dir");
    let sealer = KeystoreSealer::tpm(key);
    assert_eq!(sealer.kind(), BackendKind::Tpm);
    conformance::exercise(sealer, &vault);
    // A tampered binary's launch: the keystore key stays sealed, so the vault's shares do not
    // open for it.
    node.launch(&log_path, &tampered).expect("launches");
    assert!(matches!(node.unseal(&blob), Err(LaunchError::Unseal(_))));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
