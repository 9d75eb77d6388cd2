//! X.509 CRLs signed by test RSA keys with RSASSA-PSS/SHA-384, as AMD's ARK signs its CRLs, so
//! that the SEV-SNP revocation check can be played against: AMD's own key is not ours to sign with.

use rand_chacha::rand_core::SeedableRng as _;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use std::str::FromStr as _;
use std::sync::OnceLock;
use std::time::Duration;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::der::asn1::{BitString, OctetString, UtcTime};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Encode as _;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// How many test keys [`test_key`] offers.
pub const TEST_KEYS: usize = 2;

/// Test signing key `index` (< [`TEST_KEYS`]): RSA-2048, derived from a fixed seed, so the same on
/// every run. Generated once per process.
pub fn test_key(index: usize) -> &'static rsa::RsaPrivateKey {
    static KEYS: OnceLock<Vec<rsa::RsaPrivateKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xc41);
        (0..TEST_KEYS)
            .map(|_| rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation"))
            .collect()
    })[index]
}

/// A name `CN={cn}, O=Advanced Micro Devices`, like AMD's.
pub fn amd_name(cn: &str) -> Name {
    Name::from_str(&format!("CN={cn},O=Advanced Micro Devices")).expect("a valid name")
}

/// One revoked certificate.
#[derive(Clone, Debug)]
pub struct Revoked {
    /// Its serial number.
    pub serial: SerialNumber,
    /// Revocation date, Unix seconds.
    pub at_s: u64,
    /// Carries a critical entry extension nobody knows.
    pub critical_extension: bool,
}

/// What the CRL says and who signs it.
#[derive(Clone, Debug)]
pub struct TestCrl {
    /// The issuer it names.
    pub issuer: Name,
    /// Which [`test_key`] signs it.
    pub signer: usize,
    /// `thisUpdate`, Unix seconds.
    pub this_update_s: u64,
    /// `nextUpdate`, Unix seconds (none when `None`).
    pub next_update_s: Option<u64>,
    /// The certificates it revokes.
    pub revoked: Vec<Revoked>,
    /// Carries a critical CRL extension nobody knows.
    pub critical_extension: bool,
}

impl TestCrl {
    /// A CRL from `issuer`, signed by test key 0, current from a day before `now_s` to 30 days
    /// after, revoking nothing.
    pub fn current(issuer: Name, now_s: u64) -> Self {
        Self {
            issuer,
            signer: 0,
            this_update_s: now_s - 86_400,
            next_update_s: Some(now_s + 30 * 86_400),
            revoked: Vec::new(),
            critical_extension: false,
        }
    }

    /// Also revokes `serial`, since `at_s`.
    pub fn revoking(mut self, serial: SerialNumber, at_s: u64) -> Self {
        self.revoked.push(Revoked {
            serial,
            at_s,
            critical_extension: false,
        });
        self
    }

    /// The signed CRL, DER.
    pub fn der(&self) -> Vec<u8> {
        let algorithm = rsa::pss::get_default_pss_signature_algo_id::<sha2::Sha384>()
            .expect("the PSS algorithm identifier");
        let tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: algorithm.clone(),
            issuer: self.issuer.clone(),
            this_update: time(self.this_update_s),
            next_update: self.next_update_s.map(time),
            revoked_certificates: (!self.revoked.is_empty()).then(|| {
                self.revoked
                    .iter()
                    .map(|r| RevokedCert {
                        serial_number: r.serial.clone(),
                        revocation_date: time(r.at_s),
                        crl_entry_extensions: r.critical_extension.then(|| vec![extension(true)]),
                    })
                    .collect()
            }),
            crl_extensions: self
                .critical_extension
                .then(|| vec![extension(false), extension(true)]),
        };
        let signing =
            rsa::pss::BlindedSigningKey::<sha2::Sha384>::new(test_key(self.signer).clone());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let signature = signing.sign_with_rng(&mut rng, &tbs.to_der().expect("TBS encodes"));
        CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(&signature.to_vec()).expect("bit string"),
        }
        .to_der()
        .expect("CRL encodes")
    }
}

/// A serial number from its bytes.
pub fn serial(bytes: &[u8]) -> SerialNumber {
    SerialNumber::new(bytes).expect("a valid serial number")
}

fn time(s: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(s)).expect("a UTCTime date"))
}

fn extension(critical: bool) -> Extension {
    Extension {
        // Under AMD's arc, but no extension AMD defines.
        extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.9.9"),
        critical,
        extn_value: OctetString::new(vec![5, 0]).expect("octets"),
    }
}
