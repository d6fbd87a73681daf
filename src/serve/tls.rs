//! TLS for the public listener: rustls with the ring provider, TLS 1.2 and 1.3 with the
//! NCSC "goed" choices only (ECDHE key exchange, AES-GCM or ChaCha20-Poly1305), optional
//! client certificates from the operator's CA (e.g. the PKIoverheid private-services
//! roots), and a configuration that SIGHUP replaces without dropping connections.

use anyhow::{anyhow, bail, Context, Result};
use arc_swap::ArcSwap;
use rustls::crypto::ring as rp;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the listener's certificate, key and client CA come from (re-read on SIGHUP).
#[derive(Clone, Debug)]
pub struct Settings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Whether a path asks for a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A verified client certificate is needed (403 without).
    Required,
    /// Asked for and checked if presented; anonymous clients are served too.
    Optional,
    /// Not looked at.
    Off,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "required" => Ok(ClientAuth::Required),
            "optional" => Ok(ClientAuth::Optional),
            "off" => Ok(ClientAuth::Off),
            _ => Err(format!(
                "client certificate mode '{}' is not required, optional or off",
                crate::clip::clip(s)
            )),
        }
    }
}

/// The client-certificate policy per path: the longest matching prefix wins.
#[derive(Clone, Debug)]
pub struct ClientPolicy {
    pub default: ClientAuth,
    pub paths: Vec<(String, ClientAuth)>,
}

/// The health check's path.
pub const HEALTH: &str = "/health";

impl ClientPolicy {
    pub fn off() -> ClientPolicy {
        ClientPolicy {
            default: ClientAuth::Off,
            paths: Vec::new(),
        }
    }

    /// `PATH=MODE` as given with `--client-auth-path`.
    pub fn parse_path(s: &str) -> Result<(String, ClientAuth), String> {
        let (p, m) = s
            .split_once('=')
            .ok_or_else(|| format!("--client-auth-path '{s}' must have the form PATH=MODE"))?;
        if !p.starts_with('/') {
            return Err(format!(
                "--client-auth-path '{s}': the path must start with '/'"
            ));
        }
        let mode = m
            .parse()
            .map_err(|e| format!("--client-auth-path '{s}': {e}"))?;
        Ok((p.to_string(), mode))
    }

    pub fn for_path(&self, path: &str) -> ClientAuth {
        self.explicit(path).unwrap_or(self.default)
    }

    /// The mode a `--client-auth-path` prefix sets for `path` (longest wins), if any.
    pub fn explicit(&self, path: &str) -> Option<ClientAuth> {
        self.paths
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, m)| *m)
    }

    /// `/health`: load balancers probe it without a certificate, so `--client-auth` for
    /// all paths does not cover it; a `--client-auth-path` prefix that matches it does.
    pub fn for_health(&self) -> ClientAuth {
        self.explicit(HEALTH).unwrap_or(ClientAuth::Off)
    }

    pub fn asks(&self) -> bool {
        self.default != ClientAuth::Off || self.paths.iter().any(|(_, m)| *m != ClientAuth::Off)
    }
}

/// TLS 1.3 suites and the TLS 1.2 ECDHE + AEAD suites; key exchange X25519, P-256, P-384.
/// rustls has no CBC, RSA key exchange or TLS 1.1 at all; this also leaves out nothing
/// that NCSC rates "goed".
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            rp::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rp::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rp::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            rp::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            rp::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            rp::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            rp::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            rp::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            rp::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            rp::kx_group::X25519,
            rp::kx_group::SECP256R1,
            rp::kx_group::SECP384R1,
        ],
        ..rp::default_provider()
    }
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("{what} {}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{what} {}: no PEM certificate found", path.display());
    }
    Ok(certs)
}

/// Build the server configuration from the files (checked: a broken pair is an error).
pub fn server_config(s: &Settings, policy: &ClientPolicy) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(provider());
    let chain = certs(&s.cert, "--tls-cert")?;
    let key_pem =
        std::fs::read(&s.key).with_context(|| format!("--tls-key {}", s.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow!("--tls-key {}: {e}", s.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow!("TLS configuration: {e}"))?;
    let builder = match (&s.client_ca, policy.asks()) {
        (Some(ca), true) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, "--client-ca")? {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("--client-ca {}: {e}", ca.display()))?;
            }
            // Anonymous clients get through the handshake; the path decides (403 where a
            // certificate is required). A certificate that does not verify is refused.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| anyhow!("--client-ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => {
            bail!("client certificates are asked for (--client-auth) but no --client-ca is given")
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("--tls-cert/--tls-key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The live configuration; SIGHUP replaces it (connections already open keep theirs).
pub struct Reloadable {
    pub settings: Settings,
    pub policy: ClientPolicy,
    pub config: ArcSwap<rustls::ServerConfig>,
}

impl Reloadable {
    pub fn new(settings: Settings, policy: ClientPolicy) -> Result<Reloadable> {
        let config = ArcSwap::new(server_config(&settings, &policy)?);
        Ok(Reloadable {
            settings,
            policy,
            config,
        })
    }

    /// Re-read the files; on any error the old configuration stays.
    pub fn reload(&self) -> Result<()> {
        self.config
            .store(server_config(&self.settings, &self.policy)?);
        Ok(())
    }

    /// Seconds until the server certificate expires (for metrics and logs).
    pub fn certificate_not_after(&self) -> Option<i64> {
        let chain = certs(&self.settings.cert, "--tls-cert").ok()?;
        let (_, c) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
        Some(c.validity().not_after.timestamp())
    }
}

/// A development CA and a server certificate for localhost, made with rcgen in the data
/// directory the first time (`serve --demo`). Never for production.
pub fn development(data: &Path) -> Result<(Settings, PathBuf)> {
    let ca_path = data.join("dev-tls-ca.pem");
    let cert = data.join("dev-tls-cert.pem");
    let key = data.join("dev-tls-key.pem");
    if !(ca_path.exists() && cert.exists() && key.exists()) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            DnType::CommonName,
            "stelselnode DEVELOPMENT TLS CA - NOT FOR PRODUCTION",
        );
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let leaf_key = KeyPair::generate()?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf.signed_by(&leaf_key, &ca)?;
        for (p, pem) in [
            (&ca_path, ca.pem()),
            (&cert, leaf.pem()),
            (&key, leaf_key.serialize_pem()),
        ] {
            let _ = std::fs::remove_file(p);
            crate::datadir::write_private(p, &pem)?;
        }
    }
    Ok((
        Settings {
            cert,
            key,
            client_ca: None,
        },
        ca_path,
    ))
}

/// Who a client certificate names: organisation (O), common name and serial.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    pub subject: String,
    pub organisation: String,
    pub serial: String,
}

impl ClientIdentity {
    pub fn of(cert: &CertificateDer) -> Option<ClientIdentity> {
        let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
        let organisation = c
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .unwrap_or("")
            .to_string();
        Some(ClientIdentity {
            subject: c.subject().to_string(),
            organisation,
            serial: c.raw_serial_as_string(),
        })
    }
}
