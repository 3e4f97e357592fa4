//! `--web-config FILE`: TLS and basic auth for the metrics endpoint, read from a file in the
//! Prometheus exporters' web configuration format (exporter-toolkit, as node_exporter
//! uses): `tls_server_config` (`cert_file`, `key_file`, optionally `client_auth_type`
//! `RequireAndVerifyClientCert` with `client_ca_file`, `min_version`) and
//! `basic_auth_users` (user name → bcrypt hash). Keys this agent does not implement are
//! refused rather than ignored, so a file never means less security than it says.
//!
//! Basic auth guards `/metrics` only: `/healthz` and `/readyz` stay open for the kubelet's
//! probes (served over TLS too when TLS is on).

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
};
use serde::Deserialize;

/// Verified `Authorization` headers kept, so that a scrape every few seconds does not pay a
/// bcrypt hash each time (exporter-toolkit caches too).
const CACHE: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
}

/// A loaded web configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// The TLS server configuration, when `tls_server_config` is given.
    pub tls: Option<Arc<ServerConfig>>,
    users: Arc<BTreeMap<String, String>>,
    verified: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Paths in the file are relative to the file's directory, as exporter-toolkit has them.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl WebConfig {
    /// Reads and checks `path` (certificates, key and hashes included).
    pub fn load(path: &Path) -> Result<WebConfig> {
        let what = || format!("--web-config {}", path.display());
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", what()))?;
        WebConfig::parse(&text, path.parent().unwrap_or(Path::new("."))).with_context(what)
    }

    /// Parses the file's text; relative paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<WebConfig> {
        let file: File = if text.trim().is_empty() {
            File {
                tls_server_config: None,
                basic_auth_users: BTreeMap::new(),
            }
        } else {
            serde_norway::from_str(text).map_err(|e| {
                anyhow!("not a web configuration (tls_server_config, basic_auth_users): {e}")
            })?
        };
        for (user, hash) in &file.basic_auth_users {
            // A malformed hash is an error here, not a locked-out user at the first scrape.
            bcrypt::verify("", hash)
                .map_err(|e| anyhow!("basic_auth_users.{user}: not a bcrypt hash ({e})"))?;
        }
        let tls = file
            .tls_server_config
            .map(|t| tls_config(&t, base))
            .transpose()?;
        Ok(WebConfig {
            tls,
            users: Arc::new(file.basic_auth_users),
            verified: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// Whether `/metrics` asks for a user name and password.
    pub fn needs_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the `Authorization` header names a user with the right password (true when
    /// no users are configured). Runs bcrypt: call it off the async threads.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(header) = header else { return false };
        if self.verified.lock().expect("cache lock").contains(header) {
            return true;
        }
        let Some(cred) = header
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        let Some((user, password)) = cred.split_once(':') else {
            return false;
        };
        let ok = self
            .users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
        if ok {
            let mut cache = self.verified.lock().expect("cache lock");
            if cache.len() >= CACHE {
                cache.clear();
            }
            cache.insert(header.to_string());
        }
        ok
    }
}

fn tls_config(t: &TlsFile, base: &Path) -> Result<Arc<ServerConfig>> {
    let cert_path = resolve(base, &t.cert_file);
    let key_path = resolve(base, &t.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect)
        .map_err(|e| anyhow!("tls_server_config.cert_file {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        bail!(
            "tls_server_config.cert_file {}: no certificate",
            cert_path.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow!("tls_server_config.key_file {}: {e}", key_path.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_deref() {
        None | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(v) => bail!("tls_server_config.min_version: {v:?} is not supported (TLS12 or TLS13)"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| anyhow!("TLS: {e}"))?;
    let builder = match (t.client_auth_type.as_deref(), &t.client_ca_file) {
        (None | Some("" | "NoClientCert"), None) => builder.with_no_client_auth(),
        (Some("RequireAndVerifyClientCert"), Some(ca)) => {
            let ca = resolve(base, ca);
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca)
                .map_err(|e| anyhow!("tls_server_config.client_ca_file {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| anyhow!("tls_server_config.client_ca_file: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| anyhow!("tls_server_config.client_ca_file: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| anyhow!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        (Some(other), _) => bail!(
            "tls_server_config.client_auth_type: {other:?} is not supported \
             (NoClientCert, or RequireAndVerifyClientCert with client_ca_file)"
        ),
        (None, Some(_)) => {
            bail!(
                "tls_server_config.client_ca_file needs client_auth_type: RequireAndVerifyClientCert"
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("tls_server_config: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn basic_auth_with_bcrypt_hashes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let w = WebConfig::parse(
            &format!("basic_auth_users:\n  prom: {hash}\n"),
            Path::new("."),
        )
        .unwrap();
        assert!(w.needs_auth() && w.tls.is_none());
        assert!(w.authorized(Some(&header("prom", "s3cret"))));
        // Cached, still right.
        assert!(w.authorized(Some(&header("prom", "s3cret"))));
        assert!(!w.authorized(Some(&header("prom", "wrong"))));
        assert!(!w.authorized(Some(&header("other", "s3cret"))));
        assert!(!w.authorized(None));
        assert!(!w.authorized(Some("Bearer x")));
        let open = WebConfig::parse("", Path::new(".")).unwrap();
        assert!(!open.needs_auth() && open.authorized(None));
    }

    #[test]
    fn bad_files_are_refused_with_the_key() {
        let bad = |text: &str| {
            format!(
                "{:#}",
                WebConfig::parse(text, Path::new("/nonexistent"))
                    .err()
                    .unwrap()
            )
        };
        assert!(bad("basic_auth_users:\n  prom: plain\n").contains("basic_auth_users.prom"));
        assert!(
            bad("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n")
                .contains("cert_file /nonexistent/c.pem")
        );
        assert!(
            bad("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [x]\n")
                .contains("cipher_suites")
        );
        assert!(bad("http_server_config:\n  http2: false\n").contains("http_server_config"));
        assert!(
            bad("basic_auth_users: [").contains("basic_auth_users")
                || bad("basic_auth_users: [").len() > 5
        );
    }
}
