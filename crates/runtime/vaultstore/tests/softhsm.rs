//! The PKCS#11 backend against a real SoftHSM2 token: the shared conformance promises, plus what
//! only a token can break (a planted extractable key, a wrong PIN, another token's key).

use bulwark_testkit::softhsm::{self, SoftHsm};
use bulwark_vaultstore::pkcs11::{Pkcs11Config, Pkcs11Sealer};
use bulwark_vaultstore::{conformance, Sealer, StoreError};

fn config(hsm: &SoftHsm, key_label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: hsm.module.clone(),
        token_label: hsm.token_label.clone(),
        pin_file: hsm.pin_file.clone(),
        key_label: key_label.into(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bulwark-vaultstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_pkcs11_backend_keeps_every_promise_against_softhsm() {
    if softhsm::module().is_none() {
        println!("SKIPPED: SoftHSM2 is not installed (apt-get install softhsm2); CI installs it");
        return;
    }
    let hsm = SoftHsm::start().expect("a token");
    let dir = temp_dir("conformance");
    let sealer = Pkcs11Sealer::open(&config(&hsm, "vault-share-key")).expect("opens the token");
    conformance::exercise(sealer, &dir);

    // The key stays in the token: a second session finds the same key and opens the same file.
    let mut again = Pkcs11Sealer::open(&config(&hsm, "vault-share-key")).expect("reopens");
    let mut first = Pkcs11Sealer::open(&config(&hsm, "vault-share-key")).expect("reopens");
    let sealed = first.seal(b"ad", b"secret").expect("seals");
    assert_eq!(
        &again.open(b"ad", &sealed).expect("same key")[..],
        b"secret"
    );
    // Nothing is sealed that could not be opened again: a record past the bound is refused
    // when it is written (before any share could leave), not at the next start.
    let big = vec![7u8; bulwark_vaultstore::pkcs11::SEALED_BYTES_MAX];
    assert!(matches!(
        first.seal(b"ad", &big),
        Err(StoreError::Content(..))
    ));
    let fits = vec![7u8; bulwark_vaultstore::pkcs11::SEALED_BYTES_MAX - 64];
    let sealed_big = first.seal(b"ad", &fits).expect("seals at the bound");
    assert_eq!(
        again.open(b"ad", &sealed_big).expect("opens").len(),
        fits.len()
    );
    // Another key label (another member's key on a shared token) does not open it.
    let mut other = Pkcs11Sealer::open(&config(&hsm, "another-key")).expect("generates");
    assert!(matches!(
        other.open(b"ad", &sealed),
        Err(StoreError::Open(_))
    ));

    // Login state is per process and token: close every session before trying a wrong PIN.
    drop((again, first, other));
    // A wrong PIN, an unknown token, a missing module: typed errors that say which.
    let wrong_pin = dir.join("wrong.pin");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&wrong_pin)
            .expect("pin");
        writeln!(f, "00000000x").expect("write");
    }
    let mut bad = config(&hsm, "vault-share-key");
    bad.pin_file = wrong_pin;
    assert!(
        matches!(Pkcs11Sealer::open(&bad), Err(StoreError::Pkcs11(m)) if m.contains("logging in"))
    );
    let mut bad = config(&hsm, "vault-share-key");
    bad.token_label = "no-such-token".into();
    assert!(
        matches!(Pkcs11Sealer::open(&bad), Err(StoreError::Pkcs11(m)) if m.contains("no token"))
    );
    let mut bad = config(&hsm, "vault-share-key");
    bad.module = dir.join("missing.so");
    assert!(matches!(
        Pkcs11Sealer::open(&bad),
        Err(StoreError::Pkcs11(_))
    ));
    // A PIN file others can read is refused before the token is touched.
    let exposed = dir.join("exposed.pin");
    std::fs::write(&exposed, "1234\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let mut bad = config(&hsm, "vault-share-key");
    bad.pin_file = exposed;
    assert!(matches!(
        Pkcs11Sealer::open(&bad),
        Err(StoreError::File { .. })
    ));

    // A key planted under the label that could leave the token is refused.
    plant_key(&hsm, "planted-key", true);
    match Pkcs11Sealer::open(&config(&hsm, "planted-key")) {
        Err(StoreError::Pkcs11(message)) => {
            assert!(message.contains("extractable = true"), "{message}")
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("an extractable key must not be used"),
    }
    // So is an imported key marked sensitive and non-extractable on import: it was elsewhere.
    plant_key(&hsm, "imported-key", false);
    match Pkcs11Sealer::open(&config(&hsm, "imported-key")) {
        Err(StoreError::Pkcs11(message)) => {
            assert!(
                message.contains("extractable = false") && message.contains("local = false"),
                "{message}"
            )
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("an imported key must not be used"),
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Imports a known AES key under `label`, as an attacker who kept a copy would: extractable and
/// not sensitive, or marked sensitive and non-extractable on import.
fn plant_key(hsm: &SoftHsm, label: &str, extractable: bool) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let context = Pkcs11::new(&hsm.module).expect("module");
    let _ = context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = context
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| context.get_token_info(*s).expect("info").label().trim_end() == hsm.token_label)
        .expect("the token");
    let session = context.open_rw_session(slot).expect("session");
    let pin = std::fs::read_to_string(&hsm.pin_file).expect("pin");
    session
        .login(
            UserType::User,
            Some(&AuthPin::new(pin.trim().to_string().into())),
        )
        .expect("login");
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Value(vec![7; 32]),
            Attribute::Extractable(extractable),
            Attribute::Sensitive(!extractable),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .expect("import");
}
