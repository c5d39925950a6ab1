//! `[daemon] tls = { cert = "...", key = "..." }`: the certificate and key with which `listen`
//! and `public_listen` serve HTTPS themselves (issue 17, item 6: without nginx in front).
//!
//! Both files are read and checked here, with the rest of the config, so that `upkeep check`,
//! a start and a reload refuse the same things at the same place (file:line:column of the
//! key, and the PEM file named): a file that cannot be read, a certificate file with no
//! certificate, a key file with no key or a key rustls cannot sign with, and a key that is
//! not the certificate's (with the leaf after its CA named as such), an encrypted key (with
//! how to decrypt it), and an X.509 v1 certificate (clients refuse one). What is checked is
//! what is served: the loaded [`CertifiedKey`] travels in the config (a reload hands the
//! renewed one to the running listeners; see upkeep-web's `tls.rs`).
//!
//! A certificate out of its dates (expired, not yet valid, or expiring within
//! [`EXPIRY_WARNING`]) is served all the same, since refusing would take HTTPS away when
//! it is most needed, but [`TlsConfig::validity_warning`] says so, naming the file and the
//! date: `upkeep check` prints it, a start and a reload log it. Not here: the handshake and
//! its deadline (upkeep-web).

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
    /// The server's certificate's dates, when they could be read.
    pub validity: Option<Validity>,
}

/// When a certificate may be served: clients refuse it before `not_before` and after
/// `not_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
}

/// How long before its end a certificate is warned about (certbot renews 30 days before:
/// a certificate this close has missed its renewals).
pub const EXPIRY_WARNING: jiff::SignedDuration = jiff::SignedDuration::from_hours(14 * 24);

impl TlsConfig {
    /// What an operator should know about the certificate's dates at `now`: it has expired,
    /// is not valid yet, or expires within [`EXPIRY_WARNING`]. None when it is well within
    /// them (or its dates could not be read).
    pub fn validity_warning(&self, now: jiff::Timestamp) -> Option<String> {
        let v = self.validity?;
        let file = self.cert.display();
        let day = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
        let renew = "renew it (e.g. certbot renew), then run upkeep reload";
        if now > v.not_after {
            Some(format!(
                "the certificate in {file} expired on {}: HTTPS clients refuse it; {renew}",
                day(v.not_after)
            ))
        } else if now < v.not_before {
            Some(format!(
                "the certificate in {file} is not valid until {}: HTTPS clients refuse it \
                 until then (is this host's clock right?)",
                day(v.not_before)
            ))
        } else if v.not_after.duration_since(now) < EXPIRY_WARNING {
            let days = v.not_after.duration_since(now).as_hours() / 24;
            Some(format!(
                "the certificate in {file} expires on {} (in {days} day{}); {renew}",
                day(v.not_after),
                if days == 1 { "" } else { "s" }
            ))
        } else {
            None
        }
    }
}

/// The dates of a certificate, and whether it is X.509 v3; None when `der` cannot be read
/// as a certificate (rustls then says why).
fn inspect(der: &CertificateDer<'_>) -> Option<(Validity, bool)> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let tbs = &c.tbs_certificate;
    let at = |t: x509_cert::time::Time| {
        let since = t.to_unix_duration();
        jiff::Timestamp::from_second(i64::try_from(since.as_secs()).ok()?).ok()
    };
    let validity = Validity {
        not_before: at(tbs.validity.not_before)?,
        not_after: at(tbs.validity.not_after)?,
    };
    Some((validity, tbs.version == x509_cert::certificate::Version::V3))
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
/// the key is the certificate's; with the server's certificate's dates.
pub fn load_tls(cert: &Path, key: &Path) -> Result<(CertifiedKey, Option<Validity>), TlsProblem> {
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
    let inspected = inspect(&chain[0]);
    if let Some((_, false)) = inspected {
        return Err(problem(
            "cert",
            format!(
                "the server's certificate in {} is an X.509 v1 certificate (one without \
                 extensions, so without the names it is for), which HTTPS clients refuse: \
                 make a v3 one (`openssl req -x509` makes v3; with `openssl x509 -req`, add \
                 -extfile naming subjectAltName)",
                cert.display()
            ),
        ));
    }
    let key_pem = upkeep_core::files::read_small(key, upkeep_core::files::SMALL_FILE_MAX)
        .map_err(|e| problem("key", format!("cannot read {}: {e}", key.display())))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        if is_encrypted(&key_pem) {
            let k = key.display();
            return problem(
                "key",
                format!(
                    "{k} holds an encrypted private key: upkeep needs it unencrypted (it starts \
                     with no one to type a passphrase); decrypt it with `openssl pkey -in {k} \
                     -out {k}.plain`, then `chmod 600 {k}.plain` and name that file in tls.key"
                ),
            );
        }
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
    let validity = inspected.map(|(v, _)| v);
    match certified.keys_match() {
        Ok(()) => Ok((certified, validity)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            // The key's own certificate further down the chain: the order is wrong, not the key.
            let at = certified.cert.iter().skip(1).position(|c| {
                CertifiedKey::new(vec![c.clone()], certified.key.clone())
                    .keys_match()
                    .is_ok()
            });
            Err(match at {
                Some(i) => problem(
                    "cert",
                    format!(
                        "{} has the certificate of {} in place {} of the chain, after {}: the \
                         server's own certificate (the leaf) must come first, then the \
                         intermediates that signed it (certbot's fullchain.pem is in that order)",
                        cert.display(),
                        key.display(),
                        i + 2,
                        if i == 0 {
                            "another one (its CA?)"
                        } else {
                            "others"
                        }
                    ),
                ),
                None => problem(
                    "key",
                    format!(
                        "{} is not the key of the certificate in {}",
                        key.display(),
                        cert.display()
                    ),
                ),
            })
        }
        // A key that cannot say its public half (none of ring's): served as it is.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((certified, validity))
        }
        Err(e) => Err(problem(
            "cert",
            format!(
                "the first certificate in {} cannot be read: {e}",
                cert.display()
            ),
        )),
    }
}

/// Whether a PEM key file holds only an encrypted key (PKCS#8's `ENCRYPTED PRIVATE KEY`, or
/// OpenSSL's traditional `Proc-Type: 4,ENCRYPTED` header), which rustls reads as no key.
fn is_encrypted(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
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
            Ok((certified, validity)) => Some(TlsConfig {
                cert,
                key,
                certified: Arc::new(certified),
                validity,
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

    /// A certificate for `localhost` valid from `from` to `to` (years, 1 January), signed by
    /// its own key: (certificate PEM, key PEM).
    fn dated(from: i32, to: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Loads `cert` and `key` as `check` would: the config's TLS, or the problems' text.
    fn load(cert: &str, key: &str) -> Result<super::TlsConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let text = "[daemon]\nlisten = \"127.0.0.1:8443\"\ntls = { cert = \"cert.pem\", key = \"key.pem\" }\n";
        parse(&dir.path().join("upkeep.toml"), text)
            .map(|c| c.daemon.tls.expect("tls"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_certificate_out_of_its_dates_is_served_with_a_warning_naming_the_file_and_date() {
        let (cert, key) = dated(2020, 2030);
        let tls = load(&cert, &key).unwrap();
        let at = |t: &str| tls.validity_warning(t.parse().unwrap());
        let expired = at("2030-02-01T00:00:00Z").unwrap();
        assert!(
            expired.contains("cert.pem expired on 2030-01-01 00:00:00 UTC"),
            "{expired}"
        );
        assert!(expired.contains("upkeep reload"), "{expired}");
        let early = at("2019-06-01T00:00:00Z").unwrap();
        assert!(
            early.contains("cert.pem is not valid until 2020-01-01"),
            "{early}"
        );
        let soon = at("2029-12-25T00:00:00Z").unwrap();
        assert!(
            soon.contains("cert.pem expires on 2030-01-01 00:00:00 UTC (in 7 days)"),
            "{soon}"
        );
        let one = at("2029-12-30T12:00:00Z").unwrap();
        assert!(one.contains("(in 1 day)"), "{one}");
        // Fifteen days before its end, or well within its dates: nothing to say.
        assert_eq!(at("2029-12-17T00:00:00Z"), None);
        assert_eq!(at("2025-01-01T00:00:00Z"), None);
    }

    #[test]
    fn an_x509_v1_certificate_is_refused_in_words() {
        use rustls::pki_types::pem::PemObject;
        use x509_cert::der::{Decode, EncodePem};
        let (cert, key) = self_signed();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        // The same certificate as v1 (no extensions); its signature no longer holds, which
        // is not what is checked.
        let mut c = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
        c.tbs_certificate.version = x509_cert::certificate::Version::V1;
        c.tbs_certificate.extensions = None;
        let pem = c.to_pem(x509_cert::der::pem::LineEnding::LF).unwrap();
        let err = load(&pem, &key).err().unwrap();
        assert!(err.contains("daemon.tls.cert"), "{err}");
        assert!(err.contains("an X.509 v1 certificate"), "{err}");
        assert!(err.contains("make a v3 one"), "{err}");
        assert!(!err.contains("Unsupported"), "{err}");
    }

    #[test]
    fn an_encrypted_key_is_named_so_with_how_to_decrypt_it() {
        let (cert, _) = self_signed();
        // What `openssl pkcs8 -topk8` and `openssl genrsa -aes256` write (the body is not
        // read: its label or header is what tells).
        let pkcs8 = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let traditional = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,9A1B\n\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END RSA PRIVATE KEY-----\n";
        for key in [pkcs8, traditional] {
            let err = load(&cert, key).err().unwrap();
            assert!(err.contains("daemon.tls.key"), "{err}");
            assert!(
                err.contains("key.pem holds an encrypted private key"),
                "{err}"
            );
            assert!(err.contains("openssl pkey -in"), "{err}");
            assert!(!err.contains("no PRIVATE KEY block"), "{err}");
        }
    }

    #[test]
    fn a_chain_with_its_ca_first_is_called_out_of_order_not_a_key_mismatch() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let key = leaf_key.serialize_pem();
        // In order, served.
        assert!(load(&format!("{}{}", leaf.pem(), ca.pem()), &key).is_ok());
        let err = load(&format!("{}{}", ca.pem(), leaf.pem()), &key)
            .err()
            .unwrap();
        assert!(err.contains("daemon.tls.cert"), "{err}");
        assert!(err.contains("in place 2 of the chain"), "{err}");
        assert!(err.contains("must come first"), "{err}");
        assert!(!err.contains("is not the key"), "{err}");
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
