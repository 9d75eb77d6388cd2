//! A real TPM 2.0 through `tss-esapi` (feature `tpm`): endorsement and attestation keys, credential
//! activation, the launch PCR, quotes, and secrets sealed to PCR values.
//!
//! Every object and session this module creates is flushed before the call returns: with a raw swtpm
//! socket there is no resource manager, and leaked handles exhaust the TPM's slots (0x902/0x903).
//!
//! Keys:
//! - EK: the TCG default RSA 2048 template in the endorsement hierarchy (what an EK certificate
//!   certifies). RSA, because the verifier's pure-Rust credential wrapping supports RSA EKs.
//! - AK: a primary ECC P-256 ECDSA-SHA256 restricted signing key in the endorsement hierarchy, built
//!   from a fixed template, so it is the same key in every process on the same TPM (no NV storage) and
//!   it can be enrolled once and quoted with afterwards.

use bulwark_attest::launch::LAUNCH_PCR;
use bulwark_attest::tpm::BOOT_PCRS;
use std::collections::BTreeMap;
use std::str::FromStr as _;
use tss_esapi::abstraction::{ek, pcr};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, PublicAlgorithm,
};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, DigestList, DigestValues, EccPoint, EccScheme, EncryptedSecret, HashScheme,
    IdObject, KeyDerivationFunctionScheme, KeyedHashScheme, PcrSelectionList,
    PcrSelectionListBuilder, PcrSlot, Private, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyedHashParameters, RsaExponent, SensitiveData, SignatureScheme, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall as _, UnMarshall as _};
use tss_esapi::{Context, TctiNameConf};

/// Errors talking to the TPM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// A TPM command failed.
    #[error("TPM {operation} failed: {source}")]
    Tpm {
        /// What bulwark was doing.
        operation: &'static str,
        /// The TSS error (TPM response code).
        source: tss_esapi::Error,
    },
    /// The TCTI string could not be parsed.
    #[error("invalid TCTI {tcti:?}: {source} (example: swtpm:host=127.0.0.1,port=2321)")]
    Tcti {
        /// The string given.
        tcti: String,
        /// The parse error.
        source: tss_esapi::Error,
    },
    /// The TPM returned something unusable.
    #[error("TPM returned an unexpected value: {0}")]
    Unexpected(&'static str),
    /// A PCR index outside 0..=23.
    #[error("PCR {0} is not a PC-client PCR (0..=23)")]
    BadPcr(u8),
}

trait Op<T> {
    fn op(self, operation: &'static str) -> Result<T, DeviceError>;
}

impl<T> Op<T> for tss_esapi::Result<T> {
    fn op(self, operation: &'static str) -> Result<T, DeviceError> {
        self.map_err(|source| DeviceError::Tpm { operation, source })
    }
}

/// A TPM quote as produced by the device, ready to go into [`bulwark_attest::evidence::TpmEvidence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceQuote {
    /// Marshalled `TPMS_ATTEST`.
    pub attest: Vec<u8>,
    /// Marshalled `TPMT_SIGNATURE`.
    pub signature: Vec<u8>,
    /// sha256-bank values of the quoted PCRs, read right after the quote.
    pub pcrs: BTreeMap<u8, [u8; 32]>,
}

/// A secret sealed under a PCR policy: only this TPM, with the PCRs holding one of the sets of
/// values it was sealed to, can unseal it. Both blobs are safe to store on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    /// `TPM2B_PRIVATE` contents (encrypted by the TPM's storage key).
    pub private: Vec<u8>,
    /// Marshalled `TPMT_PUBLIC` of the sealed object (carries the policy digest).
    pub public: Vec<u8>,
    /// The PCRs the policy covers.
    pub pcrs: Vec<u8>,
    /// With two or more allowed sets of values: the PolicyPCR digest of each, the branches of
    /// the PolicyOR the object's policy ends in. Empty for a plain PolicyPCR.
    pub branches: Vec<[u8; 32]>,
}

/// Most sets of PCR values one secret may be sealed to (TPM2_PolicyOR takes at most eight).
pub const SEAL_BRANCHES_MAX: usize = 8;

/// An open connection to a TPM.
pub struct TpmDevice {
    context: Context,
}

impl std::fmt::Debug for TpmDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmDevice").finish_non_exhaustive()
    }
}

fn slot(index: u8) -> Result<PcrSlot, DeviceError> {
    if index > 23 {
        return Err(DeviceError::BadPcr(index));
    }
    PcrSlot::try_from(1u32 << index).map_err(|_| DeviceError::BadPcr(index))
}

fn selection(pcrs: &[u8]) -> Result<PcrSelectionList, DeviceError> {
    let slots = pcrs
        .iter()
        .map(|i| slot(*i))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .op("building a PCR selection")
}

fn pcr_handle(index: u8) -> Result<PcrHandle, DeviceError> {
    if index > 23 {
        return Err(DeviceError::BadPcr(index));
    }
    PcrHandle::try_from(u32::from(index)).map_err(|_| DeviceError::BadPcr(index))
}

/// The fixed AK template: ECC P-256, ECDSA-SHA256, restricted signing, fixedTPM/fixedParent,
/// sensitiveDataOrigin, userWithAuth (empty auth).
fn ak_template() -> Result<Public, DeviceError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()
        .op("building AK attributes")?;
    let parameters = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::Null)
        .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(true)
        .with_is_decryption_key(false)
        .with_restricted(true)
        .build()
        .op("building AK parameters")?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .op("building AK template")
}

impl TpmDevice {
    /// Connects through a TCTI string such as `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
    pub fn open(tcti: &str) -> Result<Self, DeviceError> {
        let conf = TctiNameConf::from_str(tcti).map_err(|source| DeviceError::Tcti {
            tcti: tcti.to_owned(),
            source,
        })?;
        let context = Context::new(conf).op("opening the TCTI")?;
        Ok(Self { context })
    }

    fn with_ek<T>(
        &mut self,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let ek = ek::create_ek_object(&mut self.context, AsymmetricAlgorithm::Rsa, None)
            .op("creating the EK")?;
        let result = f(&mut self.context, ek);
        let flushed = self.context.flush_context(ek.into()).op("flushing the EK");
        let value = result?;
        flushed?;
        Ok(value)
    }

    fn with_ak<T>(
        &mut self,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let template = ak_template()?;
        let ak = self
            .context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .op("creating the AK")?
            .key_handle;
        let result = f(&mut self.context, ak);
        let flushed = self.context.flush_context(ak.into()).op("flushing the AK");
        let value = result?;
        flushed?;
        Ok(value)
    }

    /// Marshalled `TPMT_PUBLIC` of the EK (RSA 2048 default template).
    pub fn ek_public(&mut self) -> Result<Vec<u8>, DeviceError> {
        self.with_ek(|ctx, ek| {
            let (public, _, _) = ctx.read_public(ek).op("reading the EK public area")?;
            public.marshall().op("marshalling the EK public area")
        })
    }

    /// The DER EK certificate the manufacturer stored at `nv_index` (RSA 2048 EK:
    /// [`bulwark_attest::tpm::EK_CERT_NV_RSA`]), read with the owner's (empty) authorization.
    pub fn ek_certificate(&mut self, nv_index: u32) -> Result<Vec<u8>, DeviceError> {
        let handle = tss_esapi::handles::NvIndexTpmHandle::new(nv_index)
            .op("naming the EK certificate's NV index")?;
        let contents = self
            .context
            .execute_with_nullauth_session(|ctx| {
                tss_esapi::abstraction::nv::read_full(
                    ctx,
                    tss_esapi::interface_types::resource_handles::NvAuth::Owner,
                    handle,
                )
            })
            .op("reading the EK certificate from NV (does this TPM have one?)")?;
        // Some TPMs keep it behind a TCG header or padded: keep exactly the certificate.
        bulwark_attest::tpm::ek_certificate_der(&contents)
            .map(<[u8]>::to_vec)
            .map_err(|_| {
                DeviceError::Unexpected("the EK certificate NV index holds no DER certificate")
            })
    }

    /// Marshalled `TPMT_PUBLIC` of the AK.
    pub fn ak_public(&mut self) -> Result<Vec<u8>, DeviceError> {
        self.with_ak(|ctx, ak| {
            let (public, _, _) = ctx.read_public(ak).op("reading the AK public area")?;
            public.marshall().op("marshalling the AK public area")
        })
    }

    /// TPM2_ActivateCredential: recovers the credential the verifier wrapped to the EK for the AK's
    /// name. Succeeds only if this TPM holds both keys.
    pub fn activate_credential(
        &mut self,
        challenge: &bulwark_attest::tpm::CredentialChallenge,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, DeviceError> {
        let blob = IdObject::try_from(challenge.credential_blob.clone())
            .op("reading the credential blob")?;
        let secret = EncryptedSecret::try_from(challenge.encrypted_secret.clone())
            .op("reading the encrypted secret")?;
        self.with_ek(|ctx, ek| {
            let template = ak_template()?;
            let ak = ctx
                .execute_with_nullauth_session(|ctx| {
                    ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
                })
                .op("creating the AK")?
                .key_handle;
            let result = activate(ctx, ak, ek, blob, secret);
            let flushed = ctx.flush_context(ak.into()).op("flushing the AK");
            let digest = result?;
            flushed?;
            Ok(zeroize::Zeroizing::new(digest.value().to_vec()))
        })
    }

    /// Resets a resettable PCR (16 or 23 from locality 0) to zeros; the TPM refuses every other
    /// PCR at locality 0, the launch PCR among them.
    pub fn reset_pcr(&mut self, index: u8) -> Result<(), DeviceError> {
        let handle = pcr_handle(index)?;
        self.context
            .execute_with_nullauth_session(|ctx| ctx.pcr_reset(handle))
            .op("resetting the PCR")
    }

    /// Sends TPM2_Startup(CLEAR). A TPM acts on it only right after a platform reset
    /// (`_TPM_Init`), which software cannot cause, and otherwise answers TPM_RC_INITIALIZE (which
    /// ESYS reports as success); tests use it to show that a process on the host cannot restart
    /// the TPM to clear the launch PCR.
    pub fn startup_clear(&mut self) -> Result<(), DeviceError> {
        self.context
            .startup(tss_esapi::constants::StartupType::Clear)
            .op("TPM2_Startup(CLEAR)")
    }

    /// Extends PCR `index` of the sha256 bank with each digest in order.
    pub fn extend_pcr(&mut self, index: u8, digests: &[[u8; 32]]) -> Result<(), DeviceError> {
        let handle = pcr_handle(index)?;
        for digest in digests {
            let mut values = DigestValues::new();
            values.set(
                HashingAlgorithm::Sha256,
                Digest::try_from(digest.to_vec()).op("building a digest")?,
            );
            self.context
                .execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values))
                .op("extending the PCR")?;
        }
        Ok(())
    }

    /// Reads sha256-bank PCR values.
    pub fn read_pcrs(&mut self, pcrs: &[u8]) -> Result<BTreeMap<u8, [u8; 32]>, DeviceError> {
        let data = self.context.execute_without_session(|ctx| {
            pcr::read_all(ctx, selection(pcrs)?).op("reading PCRs")
        })?;
        let bank = data
            .pcr_bank(HashingAlgorithm::Sha256)
            .ok_or(DeviceError::Unexpected("no sha256 PCR bank"))?;
        let mut out = BTreeMap::new();
        for index in pcrs {
            let digest = bank
                .get_digest(slot(*index)?)
                .ok_or(DeviceError::Unexpected("a requested PCR was not read"))?;
            let value: [u8; 32] = digest
                .value()
                .try_into()
                .map_err(|_| DeviceError::Unexpected("sha256 PCR is not 32 bytes"))?;
            out.insert(*index, value);
        }
        Ok(out)
    }

    /// Quotes the boot PCRs 0–7 and [`LAUNCH_PCR`] with `qualifying_data` under the AK.
    pub fn quote(&mut self, qualifying_data: &[u8; 32]) -> Result<DeviceQuote, DeviceError> {
        let mut pcrs = BOOT_PCRS.to_vec();
        pcrs.push(LAUNCH_PCR);
        self.quote_pcrs(qualifying_data, &pcrs)
    }

    /// Quotes the given sha256-bank PCRs.
    pub fn quote_pcrs(
        &mut self,
        qualifying_data: &[u8; 32],
        pcrs: &[u8],
    ) -> Result<DeviceQuote, DeviceError> {
        let list = selection(pcrs)?;
        let data = Data::try_from(qualifying_data.to_vec()).op("building qualifying data")?;
        let (attest, signature) = self.with_ak(|ctx, ak| {
            ctx.execute_with_nullauth_session(|ctx| {
                ctx.quote(ak, data, SignatureScheme::Null, list)
            })
            .op("quoting")
        })?;
        let values = self.read_pcrs(pcrs)?;
        Ok(DeviceQuote {
            attest: attest.marshall().op("marshalling the attestation")?,
            signature: signature.marshall().op("marshalling the signature")?,
            pcrs: values,
        })
    }

    fn with_srk<T>(
        &mut self,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let template = tss_esapi::utils::create_restricted_decryption_rsa_public(
            SymmetricDefinitionObject::AES_128_CFB,
            RsaKeyBits::Rsa2048,
            RsaExponent::default(),
        )
        .op("building the storage key template")?;
        let srk = self
            .context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .op("creating the storage key")?
            .key_handle;
        let result = f(&mut self.context, srk);
        let flushed = self
            .context
            .flush_context(srk.into())
            .op("flushing the storage key");
        let value = result?;
        flushed?;
        Ok(value)
    }

    /// Seals `secret` (at most 128 bytes) so that it unseals only while `pcrs` hold their current
    /// values (TPM2_PolicyPCR).
    pub fn seal(&mut self, secret: &[u8], pcrs: &[u8]) -> Result<SealedSecret, DeviceError> {
        let current = self.read_pcrs(pcrs)?;
        self.seal_to(secret, &[current])
    }

    /// Seals `secret` (at most 128 bytes) so that it unseals only while the PCRs hold one of the
    /// `allowed` sets of values (1 to [`SEAL_BRANCHES_MAX`], all over the same PCRs): a PolicyPCR
    /// per set, joined by TPM2_PolicyOR. This is how a secret survives values it has not seen yet,
    /// such as the launch PCR after the next launches.
    pub fn seal_to(
        &mut self,
        secret: &[u8],
        allowed: &[BTreeMap<u8, [u8; 32]>],
    ) -> Result<SealedSecret, DeviceError> {
        let first = allowed
            .first()
            .ok_or(DeviceError::Unexpected("nothing to seal to"))?;
        if allowed.len() > SEAL_BRANCHES_MAX {
            return Err(DeviceError::Unexpected(
                "a secret is sealed to at most 8 sets of PCR values",
            ));
        }
        let pcrs: Vec<u8> = first.keys().copied().collect();
        if allowed
            .iter()
            .any(|set| !set.keys().copied().eq(pcrs.iter().copied()))
        {
            return Err(DeviceError::Unexpected(
                "every sealed set must cover the same PCRs",
            ));
        }
        let list = selection(&pcrs)?;
        let mut branches = Vec::with_capacity(allowed.len());
        for set in allowed {
            let digest = bulwark_attest::tpm::pcr_digest(set);
            branches.push(self.trial_policy(|ctx, session| {
                ctx.policy_pcr(
                    session,
                    Digest::try_from(digest.to_vec()).op("building a PCR digest")?,
                    list.clone(),
                )
                .op("PolicyPCR (trial)")
            })?);
        }
        let policy = if branches.len() == 1 {
            branches[0]
        } else {
            let list = digest_list(&branches)?;
            self.trial_policy(|ctx, session| ctx.policy_or(session, list).op("PolicyOR (trial)"))?
        };
        let branches = if branches.len() == 1 {
            Vec::new()
        } else {
            branches
        };
        let policy = Digest::try_from(policy.to_vec()).op("building the policy digest")?;
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_no_da(true)
            .with_admin_with_policy(true)
            .with_user_with_auth(false)
            .build()
            .op("building sealed object attributes")?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_auth_policy(policy)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
            .op("building the sealed object template")?;
        let data = SensitiveData::try_from(secret.to_vec()).op("secret too long to seal")?;
        let created = self.with_srk(|ctx, srk| {
            ctx.execute_with_nullauth_session(|ctx| {
                ctx.create(srk, public, None, Some(data), None, None)
            })
            .op("creating the sealed object")
        })?;
        Ok(SealedSecret {
            private: created.out_private.value().to_vec(),
            public: created
                .out_public
                .marshall()
                .op("marshalling the sealed object")?,
            pcrs,
            branches,
        })
    }

    /// Runs `f` in a trial policy session and returns the policy digest it leaves.
    fn trial_policy(
        &mut self,
        f: impl FnOnce(&mut Context, PolicySession) -> Result<(), DeviceError>,
    ) -> Result<[u8; 32], DeviceError> {
        let session = start_policy_session(&mut self.context, SessionType::Trial)?;
        let result = f(&mut self.context, session).and_then(|()| {
            self.context
                .policy_get_digest(session)
                .op("reading the policy digest")
        });
        flush_session(&mut self.context, session)?;
        result?
            .value()
            .try_into()
            .map_err(|_| DeviceError::Unexpected("a policy digest is not 32 bytes"))
    }

    /// Unseals a [`SealedSecret`]. Fails (TPM_RC_POLICY_FAIL) when a covered PCR changed.
    pub fn unseal(
        &mut self,
        sealed: &SealedSecret,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, DeviceError> {
        let list = selection(&sealed.pcrs)?;
        let branches = match sealed.branches.len() {
            0 => None,
            2..=SEAL_BRANCHES_MAX => Some(digest_list(&sealed.branches)?),
            _ => {
                return Err(DeviceError::Unexpected(
                    "a sealed secret has 1 or more than 8 policy branches",
                ))
            }
        };
        let private = Private::try_from(sealed.private.clone()).op("reading the sealed private")?;
        let public = Public::unmarshall(&sealed.public).op("reading the sealed public")?;
        self.with_srk(|ctx, srk| {
            let object = ctx
                .execute_with_nullauth_session(|ctx| ctx.load(srk, private, public))
                .op("loading the sealed object")?;
            let result = (|| {
                let session = start_policy_session(ctx, SessionType::Policy)?;
                let unsealed = ctx
                    .policy_pcr(session, Digest::default(), list)
                    .op("PolicyPCR")
                    .and_then(|()| match branches {
                        Some(branches) => ctx
                            .policy_or(session, branches)
                            .op("PolicyOR (the PCRs hold none of the sealed values)"),
                        None => Ok(()),
                    })
                    .and_then(|()| {
                        ctx.execute_with_session(Some(AuthSession::from(session)), |ctx| {
                            ctx.unseal(ObjectHandle::from(object))
                        })
                        .op("unsealing")
                    });
                // The TPM ends a session used without continueSession; flushing it again then fails
                // harmlessly, so the result is ignored.
                let _ = flush_session(ctx, session);
                unsealed
            })();
            let flushed = ctx
                .flush_context(object.into())
                .op("flushing the sealed object");
            let data = result?;
            flushed?;
            Ok(zeroize::Zeroizing::new(data.value().to_vec()))
        })
    }
}

fn digest_list(digests: &[[u8; 32]]) -> Result<DigestList, DeviceError> {
    let mut list = DigestList::new();
    for digest in digests {
        list.add(Digest::try_from(digest.to_vec()).op("building a digest")?)
            .op("building a digest list")?;
    }
    Ok(list)
}

fn start_policy_session(
    ctx: &mut Context,
    kind: SessionType,
) -> Result<PolicySession, DeviceError> {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .op("starting a policy session")?
        .ok_or(DeviceError::Unexpected("no session handle"))?;
    PolicySession::try_from(session).op("policy session")
}

fn flush_session(ctx: &mut Context, session: PolicySession) -> Result<(), DeviceError> {
    let handle = SessionHandle::from(AuthSession::from(session));
    ctx.flush_context(handle.into()).op("flushing a session")
}

fn activate(
    ctx: &mut Context,
    ak: KeyHandle,
    ek: KeyHandle,
    blob: IdObject,
    secret: EncryptedSecret,
) -> Result<Digest, DeviceError> {
    // The EK's policy requires PolicySecret(endorsement hierarchy); the AK takes an empty password.
    let policy = start_policy_session(ctx, SessionType::Policy)?;
    let result = (|| {
        let (attributes, mask) = SessionAttributesBuilder::new().build();
        ctx.tr_sess_set_attributes(AuthSession::from(policy), attributes, mask)
            .op("session attributes")?;
        ctx.execute_with_nullauth_session(|ctx| {
            ctx.policy_secret(
                policy,
                AuthHandle::Endorsement,
                Default::default(),
                Default::default(),
                Default::default(),
                None,
            )
        })
        .op("PolicySecret(endorsement)")?;
        ctx.set_sessions((
            Some(AuthSession::Password),
            Some(AuthSession::from(policy)),
            None,
        ));
        let digest = ctx
            .activate_credential(ak, ek, blob, secret)
            .op("activating the credential");
        ctx.clear_sessions();
        digest
    })();
    // The session may already be closed by the TPM (continueSession clear); a failed flush is harmless.
    let _ = flush_session(ctx, policy);
    result
}
