//! The WebSocket listener's TLS (rustls 0.23 with aws-lc-rs; TLS 1.3 and 1.2, the hybrid
//! post-quantum key exchange X25519MLKEM768 preferred): the operator's certificate and key
//! (PEM), or, only when the configuration asks for it by name, a self-signed development
//! certificate the gateway makes once in its data directory and says so whenever it starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

use crate::config::GatewayConfig;

/// Where the development certificate and key live in the data directory.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Makes the development certificate (for `localhost` and `127.0.0.1`) unless it exists;
/// its paths.
fn self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (cert, key) = self_signed_paths(data_dir);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    let dir = cert.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok((cert, key))
}

/// Writes a secret readable by its owner only, replacing any file there.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// The TLS server configuration the WebSocket listener uses, and the certificate file clients
/// can trust (for the development certificate).
pub fn server_config(
    config: &GatewayConfig,
) -> Result<(Arc<rustls::ServerConfig>, PathBuf), String> {
    let (cert, key) = match (&config.ws_tls_cert, &config.ws_tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let (cert, key) = self_signed(&config.data_dir)?;
            warn!(
                cert = %cert.display(),
                "DEVELOPMENT: the WebSocket listener uses a self-signed certificate (ws_tls_self_signed = true); set ws_tls_cert and ws_tls_key in production"
            );
            (cert, key)
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let secret =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, secret)
        .map_err(|e| {
            format!(
                "TLS certificate {} and key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok((Arc::new(server), cert))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(dir: &Path) -> GatewayConfig {
        let text = format!(
            "comp_id = \"G\"\nfix_listen = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\nws_tls_self_signed = true\ndata_dir = \"{}\"\nnodes = [\"127.0.0.1:1\"]\nquorum = 1\n",
            dir.display()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_development_certificate_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let (_, cert) = server_config(&c).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let (_, again) = server_config(&c).unwrap();
        assert_eq!(std::fs::read(again).unwrap(), first);
        let (_, key) = self_signed_paths(dir.path());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is its owner's only");
    }

    #[test]
    fn a_bad_certificate_or_key_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.ws_tls_self_signed = false;
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem").unwrap();
        c.ws_tls_cert = Some(junk.clone());
        c.ws_tls_key = Some(junk);
        let error = server_config(&c).unwrap_err();
        assert!(error.contains("junk.pem"), "{error}");
    }
}
