//! Confidential-VM evidence from the kernel's configfs-tsm interface (Linux 6.7 and later):
//! an AMD SEV-SNP report (`sev_guest`) or an Intel TDX quote (`tdx_guest`) over 64 bytes of
//! report data, without ioctls.
//!
//! One report: create an entry under `/sys/kernel/config/tsm/report`, write the report data to
//! its `inblob`, read `generation`, `provider`, `outblob` (the kernel asks the TEE for the report
//! as it is read) and `auxblob`, read `generation` again (a changed value means another writer
//! raced this one, and the report is thrown away), then remove the entry.
//!
//! A SEV-SNP report is signed by the chip's VCEK: its certificate comes from the extended
//! report's certificate table in `auxblob` when the host provides one, otherwise from a file the
//! operator fetched from AMD's key distribution service. A TDX quote is checked against DCAP
//! collateral (Intel PCS or a PCCS), which the operator keeps fresh in a file; its TCB info
//! expires, and peers refuse a quote whose collateral did.

use bulwark_attest::evidence::{Evidence, SnpEvidence, TdxEvidence, EVIDENCE_LEN_MAX};
use std::path::{Path, PathBuf};

/// Where configfs-tsm reports live.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

/// The VCEK's GUID in an SEV-SNP certificate table (63da758d-e664-4564-adc5-f4b93be8accd), as
/// it is laid out in memory.
const VCEK_GUID: [u8; 16] = [
    0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
];
/// Most entries read from a certificate table.
const CERT_TABLE_ENTRIES_MAX: usize = 64;
/// Largest report, auxiliary blob or collateral file read.
const BLOB_LEN_MAX: usize = EVIDENCE_LEN_MAX;

/// Which TEE the node runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeeKind {
    /// AMD SEV-SNP (`sev_guest`).
    Snp,
    /// Intel TDX (`tdx_guest`).
    Tdx,
}

impl TeeKind {
    /// The configfs-tsm provider name.
    pub fn provider(self) -> &'static str {
        match self {
            TeeKind::Snp => "sev_guest",
            TeeKind::Tdx => "tdx_guest",
        }
    }
}

/// Why confidential-VM evidence could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsmError {
    /// A configfs-tsm file could not be used.
    #[error("{path}: {reason} (is this a confidential VM with configfs-tsm mounted at /sys/kernel/config?)")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The kernel's provider is not the TEE the node is configured for.
    #[error("configfs-tsm provider is {found:?}, but the node is configured for {expected:?}")]
    Provider {
        /// Configured.
        expected: &'static str,
        /// Found.
        found: String,
    },
    /// Another writer changed the entry while this report was read.
    #[error("the configfs-tsm entry changed while it was read (generation {before} → {after}); try again")]
    Raced {
        /// Before.
        before: String,
        /// After.
        after: String,
    },
    /// A blob exceeds [`BLOB_LEN_MAX`].
    #[error("{what} is {len} bytes, at most {BLOB_LEN_MAX} read")]
    TooLong {
        /// What.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The SEV-SNP certificate table is malformed.
    #[error("SEV-SNP certificate table: {0}")]
    CertTable(&'static str),
    /// No VCEK: neither the host's certificate table nor a configured file has it.
    #[error("no VCEK: the host's extended report has none, and no vcek_file is configured (fetch it from AMD's KDS for this chip and TCB)")]
    NoVcek,
    /// No AMD CRL configured (SEV-SNP).
    #[error("no crl_file configured: peers refuse SEV-SNP evidence without AMD's CRL (fetch it from AMD's KDS, /vcek/v1/{{product}}/crl, and keep it fresh)")]
    NoCrl,
    /// The TDX collateral file is unusable.
    #[error("TDX collateral {path}: {reason}")]
    Collateral {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TsmError + '_ {
    move |e| TsmError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_bounded(path: &Path, what: &'static str) -> Result<Vec<u8>, TsmError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.take(BLOB_LEN_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() > BLOB_LEN_MAX {
        return Err(TsmError::TooLong {
            what,
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

/// What one configfs-tsm entry gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsmReport {
    /// The provider (`sev_guest`, `tdx_guest`).
    pub provider: String,
    /// The report (SEV-SNP) or quote (TDX).
    pub outblob: Vec<u8>,
    /// Auxiliary data (SEV-SNP: the host's certificate table), if any.
    pub auxblob: Option<Vec<u8>>,
}

/// Writes `report_data` into the existing entry `entry` and reads the report back, refusing a
/// read that raced another writer.
pub fn read_entry(entry: &Path, report_data: &[u8; 64]) -> Result<TsmReport, TsmError> {
    let inblob = entry.join("inblob");
    std::fs::write(&inblob, report_data).map_err(io(&inblob))?;
    let generation = entry.join("generation");
    let before = std::fs::read_to_string(&generation).map_err(io(&generation))?;
    let provider_path = entry.join("provider");
    let provider = std::fs::read_to_string(&provider_path)
        .map_err(io(&provider_path))?
        .trim()
        .to_string();
    let outblob = read_bounded(&entry.join("outblob"), "outblob")?;
    let aux_path = entry.join("auxblob");
    let auxblob = if aux_path.exists() {
        Some(read_bounded(&aux_path, "auxblob")?).filter(|a| !a.is_empty())
    } else {
        None
    };
    let after = std::fs::read_to_string(&generation).map_err(io(&generation))?;
    if before.trim() != after.trim() {
        return Err(TsmError::Raced {
            before: before.trim().into(),
            after: after.trim().into(),
        });
    }
    Ok(TsmReport {
        provider,
        outblob,
        auxblob,
    })
}

/// One report from the configfs-tsm directory `dir`: a fresh entry, [`read_entry`], the entry
/// removed again.
pub fn tsm_report(dir: &Path, report_data: &[u8; 64]) -> Result<TsmReport, TsmError> {
    let entry = dir.join(format!(
        "bulwark-{}-{:016x}",
        std::process::id(),
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    ));
    std::fs::create_dir(&entry).map_err(io(&entry))?;
    let report = read_entry(&entry, report_data);
    let removed = std::fs::remove_dir(&entry).map_err(io(&entry));
    let report = report?;
    removed?;
    Ok(report)
}

/// The VCEK certificate (DER) in an SEV-SNP extended report's certificate table, if it has one.
/// Entries are `GUID ‖ offset (u32 LE) ‖ length (u32 LE)` up to an all-zero entry; offsets count
/// from the table's start.
pub fn vcek_from_cert_table(table: &[u8]) -> Result<Option<Vec<u8>>, TsmError> {
    for index in 0..CERT_TABLE_ENTRIES_MAX {
        let at = index * 24;
        let entry = table
            .get(at..at + 24)
            .ok_or(TsmError::CertTable("ends before its terminating entry"))?;
        if entry.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let offset = u32::from_le_bytes(entry[16..20].try_into().unwrap_or_default()) as usize;
        let length = u32::from_le_bytes(entry[20..24].try_into().unwrap_or_default()) as usize;
        if entry[..16] == VCEK_GUID {
            let end = offset
                .checked_add(length)
                .ok_or(TsmError::CertTable("entry overflows"))?;
            let der = table.get(offset..end).ok_or(TsmError::CertTable(
                "the VCEK entry points outside the table",
            ))?;
            return Ok(Some(der.to_vec()));
        }
    }
    Err(TsmError::CertTable("more entries than bulwark reads"))
}

/// A confidential VM's evidence source.
#[derive(Debug, Clone)]
pub struct TeeSource {
    kind: TeeKind,
    dir: PathBuf,
    vcek_file: Option<PathBuf>,
    crl_file: Option<PathBuf>,
    collateral_file: Option<PathBuf>,
}

impl TeeSource {
    /// `dir`: the configfs-tsm report directory ([`TSM_REPORT_DIR`]). `vcek_file` (SEV-SNP):
    /// the VCEK DER when the host's extended report has none. `crl_file` (SEV-SNP, needed):
    /// AMD's CRL for the product, DER, read for every report. `collateral_file` (TDX, needed):
    /// DCAP collateral as `dcap_qvl::QuoteCollateralV3` JSON.
    pub fn new(
        kind: TeeKind,
        dir: PathBuf,
        vcek_file: Option<PathBuf>,
        crl_file: Option<PathBuf>,
        collateral_file: Option<PathBuf>,
    ) -> Self {
        Self {
            kind,
            dir,
            vcek_file,
            crl_file,
            collateral_file,
        }
    }

    /// Which TEE.
    pub fn kind(&self) -> TeeKind {
        self.kind
    }

    /// Evidence over `report_data` (the qualifying data followed by 32 zero bytes).
    pub fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TsmError> {
        let report = tsm_report(&self.dir, report_data)?;
        self.assemble(report)
    }

    /// Turns what configfs-tsm gave into evidence: the provider checked, the VCEK or the
    /// collateral attached.
    pub fn assemble(&self, report: TsmReport) -> Result<Evidence, TsmError> {
        if report.provider != self.kind.provider() {
            return Err(TsmError::Provider {
                expected: self.kind.provider(),
                found: report.provider,
            });
        }
        match self.kind {
            TeeKind::Snp => {
                let from_host = match &report.auxblob {
                    Some(table) => vcek_from_cert_table(table)?,
                    None => None,
                };
                let vcek = match (from_host, &self.vcek_file) {
                    (Some(vcek), _) => vcek,
                    (None, Some(file)) => read_bounded(file, "vcek_file")?,
                    (None, None) => return Err(TsmError::NoVcek),
                };
                let crl = match &self.crl_file {
                    Some(file) => read_bounded(file, "crl_file")?,
                    None => return Err(TsmError::NoCrl),
                };
                Ok(Evidence::SevSnp(SnpEvidence {
                    report: report.outblob,
                    vcek,
                    crl,
                }))
            }
            TeeKind::Tdx => {
                let file = self
                    .collateral_file
                    .as_ref()
                    .ok_or_else(|| TsmError::Collateral {
                        path: PathBuf::new(),
                        reason: "no collateral_file configured".into(),
                    })?;
                let bytes = read_bounded(file, "collateral_file")?;
                let collateral =
                    serde_json::from_slice(&bytes).map_err(|e| TsmError::Collateral {
                        path: file.clone(),
                        reason: format!("not JSON: {e}"),
                    })?;
                Ok(Evidence::Tdx(TdxEvidence {
                    quote: report.outblob,
                    collateral,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let header = (entries.len() + 1) * 24;
        let mut out = Vec::new();
        let mut body = Vec::new();
        for (guid, der) in entries {
            out.extend_from_slice(guid);
            out.extend_from_slice(&((header + body.len()) as u32).to_le_bytes());
            out.extend_from_slice(&(der.len() as u32).to_le_bytes());
            body.extend_from_slice(der);
        }
        out.extend_from_slice(&[0; 24]);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn the_vcek_is_found_in_a_certificate_table_and_bad_tables_are_refused() {
        let ask = [1u8; 16];
        let t = table(&[(ask, b"ask"), (VCEK_GUID, b"vcek der")]);
        assert_eq!(vcek_from_cert_table(&t).unwrap().unwrap(), b"vcek der");
        assert_eq!(
            vcek_from_cert_table(&table(&[(ask, b"ask")])).unwrap(),
            None
        );
        assert!(vcek_from_cert_table(&t[..30]).is_err(), "no terminator");
        let mut outside = t.clone();
        outside[24 + 16..24 + 20].copy_from_slice(&9_999u32.to_le_bytes());
        assert!(matches!(
            vcek_from_cert_table(&outside),
            Err(TsmError::CertTable(_))
        ));
        let endless = vec![1u8; 24 * (CERT_TABLE_ENTRIES_MAX + 1)];
        assert!(vcek_from_cert_table(&endless).is_err());
    }

    /// A directory laid out as a configfs-tsm entry after the kernel answered.
    fn entry(dir: &Path, provider: &str, outblob: &[u8], aux: Option<&[u8]>) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("generation"), "1\n").unwrap();
        std::fs::write(dir.join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(dir.join("outblob"), outblob).unwrap();
        if let Some(aux) = aux {
            std::fs::write(dir.join("auxblob"), aux).unwrap();
        }
    }

    #[test]
    fn an_entry_becomes_evidence_with_its_vcek_or_collateral_and_a_wrong_provider_is_refused() {
        let root = std::env::temp_dir().join(format!("bulwark-tsm-{}", std::process::id()));
        let snp = root.join("snp");
        entry(
            &snp,
            "sev_guest",
            b"report",
            Some(&table(&[(VCEK_GUID, b"vcek")])),
        );
        std::fs::write(root.join("milan.crl"), b"amd crl").unwrap();
        let crl = Some(root.join("milan.crl"));
        let source = TeeSource::new(TeeKind::Snp, root.clone(), None, crl.clone(), None);
        let report = read_entry(&snp, &[7; 64]).unwrap();
        assert_eq!(std::fs::read(snp.join("inblob")).unwrap(), [7; 64]);
        match source.assemble(report.clone()).unwrap() {
            Evidence::SevSnp(e) => assert_eq!(
                (e.report, e.vcek, e.crl),
                (b"report".to_vec(), b"vcek".to_vec(), b"amd crl".to_vec())
            ),
            other => panic!("{other:?}"),
        }
        // Without AMD's CRL there is no evidence peers would take.
        let no_crl = TeeSource::new(TeeKind::Snp, root.clone(), None, None, None);
        assert!(matches!(
            no_crl.assemble(report.clone()),
            Err(TsmError::NoCrl)
        ));
        let tdx_source = TeeSource::new(TeeKind::Tdx, root.clone(), None, None, None);
        assert!(matches!(
            tdx_source.assemble(report),
            Err(TsmError::Provider { .. })
        ));
        // No VCEK anywhere, then one from the configured file.
        let bare = root.join("bare");
        entry(&bare, "sev_guest", b"report", None);
        let report = read_entry(&bare, &[7; 64]).unwrap();
        assert!(matches!(
            source.assemble(report.clone()),
            Err(TsmError::NoVcek)
        ));
        std::fs::write(root.join("vcek.der"), b"kds vcek").unwrap();
        let with_file = TeeSource::new(
            TeeKind::Snp,
            root.clone(),
            Some(root.join("vcek.der")),
            crl,
            None,
        );
        match with_file.assemble(report).unwrap() {
            Evidence::SevSnp(e) => assert_eq!(e.vcek, b"kds vcek"),
            other => panic!("{other:?}"),
        }
        // TDX: the collateral file must be JSON.
        let tdx = root.join("tdx");
        entry(&tdx, "tdx_guest", b"quote", None);
        std::fs::write(root.join("collateral.json"), b"{\"tcb_info\": \"x\"}").unwrap();
        let source = TeeSource::new(
            TeeKind::Tdx,
            root.clone(),
            None,
            None,
            Some(root.join("collateral.json")),
        );
        let report = read_entry(&tdx, &[0; 64]).unwrap();
        assert!(matches!(
            source.assemble(report.clone()).unwrap(),
            Evidence::Tdx(_)
        ));
        std::fs::write(root.join("collateral.json"), b"not json").unwrap();
        assert!(matches!(
            source.assemble(report),
            Err(TsmError::Collateral { .. })
        ));
        // Not a confidential VM: the error says where it looked.
        let missing = TeeSource::new(TeeKind::Snp, root.join("no-such-dir"), None, None, None);
        let error = missing.evidence(&[0; 64]).unwrap_err().to_string();
        assert!(error.contains("configfs-tsm"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
