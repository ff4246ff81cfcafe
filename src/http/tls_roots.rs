//! The certificates the router trusts for HTTPS upstreams: the Mozilla roots built into the binary
//! (webpki-roots) plus, when `SSL_CERT_FILE` names a PEM file, every certificate in it, for backends
//! behind a private CA or with a self-signed certificate. Read once, at startup, so that a wrong path
//! stops the router with a clear message instead of failing its first HTTPS request.

use std::path::Path;
use std::sync::OnceLock;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The variable OpenSSL, Python and curl also read. Here its certificates are added to the built-in
/// roots rather than replacing them.
pub const ENV: &str = "SSL_CERT_FILE";

static EXTRA: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Loads `SSL_CERT_FILE` (unset or empty: nothing) and keeps it for [`root_store`]. Returns how many
/// certificates it added.
pub fn init_from_env() -> Result<usize, String> {
    let extra = match std::env::var_os(ENV) {
        Some(path) if !path.is_empty() => load(Path::new(&path))?,
        _ => Vec::new(),
    };
    let n = extra.len();
    // A second call (tests start several routers in one process) keeps the first set.
    let _ = EXTRA.set(extra);
    Ok(n)
}

/// Every certificate of a PEM file: an error when the file cannot be read, is not PEM, holds no
/// certificate, or holds one that cannot be a trust anchor.
pub fn load(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("{ENV}={shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{ENV}={shown}: not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{ENV}={shown}: no PEM certificate in it"));
    }
    let mut probe = RootCertStore::empty();
    let (_, unusable) = probe.add_parsable_certificates(certs.iter().cloned());
    if unusable > 0 {
        return Err(format!(
            "{ENV}={shown}: {unusable} of {} certificates cannot be used as trust anchors",
            certs.len()
        ));
    }
    Ok(certs)
}

/// The built-in roots plus the certificates loaded by [`init_from_env`].
pub fn root_store() -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(extra) = EXTRA.get() {
        roots.add_parsable_certificates(extra.iter().cloned());
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    #[test]
    fn a_pem_ca_file_loads_and_joins_the_built_in_roots() {
        let certs = load(&Path::new(FIXTURES).join("ca.pem")).unwrap();
        assert_eq!(certs.len(), 1);
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let built_in = roots.len();
        assert_eq!(roots.add_parsable_certificates(certs), (1, 0));
        assert_eq!(roots.len(), built_in + 1);
    }

    #[test]
    fn unusable_files_are_refused_with_the_variable_and_path_named() {
        let dir = std::env::temp_dir().join(format!("nomyo-tls-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = load(&dir.join("missing.pem")).unwrap_err();
        assert!(missing.starts_with("SSL_CERT_FILE=") && missing.contains("missing.pem"));

        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "just text\n").unwrap();
        assert!(load(&not_pem).unwrap_err().contains("no PEM certificate"));

        // A key is PEM but not a certificate.
        let key_only = load(&Path::new(FIXTURES).join("server.key")).unwrap_err();
        assert!(key_only.contains("no PEM certificate"), "{key_only}");

        let garbled = dir.join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load(&garbled)
            .unwrap_err()
            .contains("cannot be used as trust anchors"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
