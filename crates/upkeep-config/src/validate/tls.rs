//! `[daemon] tls = { cert = "...", key = "..." }`: the certificate and key with which `listen`
//! and `public_listen` serve HTTPS themselves (issue 17, item 6: without nginx in front).
//!
//! Both files are read and checked here, with the rest of the config, so that `upkeep check`,
//! a start and a reload refuse the same things at the same place (file:line:column of the
//! key, and the PEM file named): a file that cannot be read, a certificate file with no
//! certificate, a key file with no key or a key rustls cannot sign with, and a key that is
//! not the certificate's. What is checked is what is served: the loaded [`CertifiedKey`]
//! travels in the config (a reload hands the renewed one to the running listeners; see
//! upkeep-web's `tls.rs`). Not here: the handshake and its deadline (upkeep-web).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::raw::RawTls;

use super::Validator;

/// Where the TCP listeners' certificate and key come from, and what was read there.
#[derive(Clone)]
pub struct TlsConfig {
    /// The certificate chain's PEM file, the server's certificate first.
    pub cert: PathBuf,
    /// The private key's PEM file.
    pub key: PathBuf,
    /// Both, as read and checked when this config was loaded.
    pub certified: Arc<CertifiedKey>,
}

/// Two are equal when they name the same files: what they held when read is not part of the
/// config (a renewal rewrites the files, and a reload reads them again).
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert && self.key == other.key
    }
}

impl std::fmt::Debug for TlsConfig {
    // Never the key's bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Why a certificate and key cannot be served, and which of the two files is at fault.
#[derive(Debug)]
pub struct TlsProblem {
    /// `cert` or `key`.
    pub field: &'static str,
    pub message: String,
}

/// Reads the certificate chain at `cert` and the private key at `key` (PEM), and checks that
/// the key is the certificate's.
pub fn load_tls(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsProblem> {
    let problem = |field, message: String| TlsProblem { field, message };
    let cert_pem = upkeep_core::files::read_small(cert, upkeep_core::files::SMALL_FILE_MAX)
        .map_err(|e| problem("cert", format!("cannot read {}: {e}", cert.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem("cert", format!("{} is not valid PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(problem(
            "cert",
            format!(
                "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                cert.display()
            ),
        ));
    }
    let key_pem = upkeep_core::files::read_small(key, upkeep_core::files::SMALL_FILE_MAX)
        .map_err(|e| problem("key", format!("cannot read {}: {e}", key.display())))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no private key (no -----BEGIN PRIVATE KEY----- block)".to_owned()
            }
            e => format!("is not a valid PEM private key: {e}"),
        };
        problem("key", format!("{} {why}", key.display()))
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| {
            problem(
                "key",
                format!("{} is not a key HTTPS can use: {e}", key.display()),
            )
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(problem(
                "key",
                format!(
                    "{} is not the key of the certificate in {}",
                    key.display(),
                    cert.display()
                ),
            ))
        }
        // A key that cannot say its public half (none of ring's): served as it is.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(problem(
            "cert",
            format!(
                "the first certificate in {} cannot be read: {e}",
                cert.display()
            ),
        )),
    }
}

impl Validator<'_> {
    /// `daemon.tls`, its paths relative to `base` (the config file's folder). None with a
    /// problem recorded, or when unset.
    pub(super) fn tls(
        &mut self,
        raw: Option<&RawTls>,
        base: &Path,
        served: bool,
    ) -> Option<TlsConfig> {
        let raw = raw?;
        if !served {
            self.problem(
                &["daemon", "tls"],
                "tls is set, but neither listen nor public_listen is: nothing would serve HTTPS",
                Some("set listen = \"0.0.0.0:8443\", or remove tls".into()),
            );
        }
        for (field, text) in [("cert", &raw.cert), ("key", &raw.key)] {
            if text.trim().is_empty() || text.contains('\0') {
                self.problem(
                    &["daemon", "tls", field],
                    format!("tls.{field} is not a file name"),
                    Some(
                        "e.g. tls = { cert = \"/etc/letsencrypt/live/example.org/fullchain.pem\", \
                         key = \"/etc/letsencrypt/live/example.org/privkey.pem\" }"
                            .into(),
                    ),
                );
                return None;
            }
        }
        let (cert, key) = (base.join(&raw.cert), base.join(&raw.key));
        match load_tls(&cert, &key) {
            Ok(certified) => Some(TlsConfig {
                cert,
                key,
                certified: Arc::new(certified),
            }),
            Err(p) => {
                self.problem(&["daemon", "tls", p.field], p.message, None);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    /// A self-signed certificate and its key, as PEM.
    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    /// Parses `[daemon] listen` with `tls` naming `cert.pem` and `key.pem` in a folder of
    /// their own (written from `cert` and `key` where given); the problems' text, or "".
    fn check(cert: Option<&str>, key: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("cert.pem", cert), ("key.pem", key)] {
            if let Some(text) = text {
                std::fs::write(dir.path().join(name), text).unwrap();
            }
        }
        let path = dir.path().join("upkeep.toml");
        let text = "[daemon]\nlisten = \"127.0.0.1:8443\"\ntls = { cert = \"cert.pem\", key = \"key.pem\" }\n";
        match parse(&path, text) {
            Ok(c) => {
                let tls = c.daemon.tls.expect("tls");
                assert_eq!(tls.cert, dir.path().join("cert.pem"));
                String::new()
            }
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_matching_pair_is_loaded_relative_to_the_config() {
        let (cert, key) = self_signed();
        assert_eq!(check(Some(&cert), Some(&key)), "");
        // The chain may carry intermediates after the server's own.
        let (other, _) = self_signed();
        assert_eq!(check(Some(&format!("{cert}{other}")), Some(&key)), "");
    }

    #[test]
    fn each_bad_file_is_a_problem_at_its_key_naming_the_file() {
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cases = [
            (None, Some(key.as_str()), "daemon.tls.cert", "cert.pem: "),
            (Some(cert.as_str()), None, "daemon.tls.key", "key.pem: "),
            (
                Some(key.as_str()),
                Some(key.as_str()),
                "daemon.tls.cert",
                "holds no certificate",
            ),
            (
                Some(cert.as_str()),
                Some(cert.as_str()),
                "daemon.tls.key",
                "holds no private key",
            ),
            (
                Some(cert.as_str()),
                Some(other_key.as_str()),
                "daemon.tls.key",
                "is not the key of the certificate in",
            ),
        ];
        for (c, k, at, says) in cases {
            let text = check(c, k);
            assert!(text.contains("upkeep.toml:3:"), "{at}: {text}");
            assert!(text.contains(at), "{at}: {text}");
            assert!(text.contains(says), "{at}: {text}");
        }
    }

    #[test]
    fn tls_needs_a_listener() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        std::fs::write(dir.path().join("c.pem"), cert).unwrap();
        std::fs::write(dir.path().join("k.pem"), key).unwrap();
        let text = "[daemon]\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n";
        let err = parse(&dir.path().join("upkeep.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither listen nor public_listen"), "{err}");
        let text = "[daemon]\npublic_listen = \"127.0.0.1:8443\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n";
        assert!(parse(&dir.path().join("upkeep.toml"), text).is_ok());
    }
}
