//! Keys and certificates: the operator's signing key with its certificate, public keys
//! taken from certificates (the form ring verifies with), development keys.

use super::profile::Algorithm;
use super::VerifyError;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

/// A public key taken from an X.509 certificate, in the form ring verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub alg: Algorithm,
    bytes: Vec<u8>,
}

impl PublicKey {
    pub fn from_cert_der(der: &[u8]) -> Result<PublicKey, SignError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| SignError::Certificate(format!("not a valid X.509 certificate: {e}")))?;
        let spki = cert.public_key();
        let oid = spki.algorithm.algorithm.to_id_string();
        let alg = match oid.as_str() {
            "1.2.840.113549.1.1.1" => Algorithm::RsaSha256,
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                if curve.as_deref() != Some("1.2.840.10045.3.1.7") {
                    return Err(SignError::Certificate(
                        "EC key is not on curve P-256 (only ECDSA-P256 is supported)".into(),
                    ));
                }
                Algorithm::EcdsaP256Sha256
            }
            other => {
                return Err(SignError::Certificate(format!(
                    "public key algorithm {other} is not supported (use RSA 2048+ or EC P-256)"
                )))
            }
        };
        Ok(PublicKey {
            alg,
            bytes: spki.subject_public_key.data.to_vec(),
        })
    }

    pub fn from_cert_pem(pem: &str) -> Result<PublicKey, SignError> {
        PublicKey::from_cert_der(&cert_der_from_pem(pem)?)
    }

    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Algorithm::RsaSha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(alg, &self.bytes)
            .verify(msg, sig)
            .map_err(|_| {
                VerifyError(
                    "SignatureValue does not verify with the signing certificate's key".into(),
                )
            })
    }
}

/// One line naming a certificate: subject, SHA-256 fingerprint and validity, so a user can
/// compare it with the operator's before pinning it.
pub fn describe_certificate(der: &[u8]) -> String {
    let fp = crate::digest::sha256_hex(der);
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => format!(
            "subject \"{}\", SHA-256 fingerprint {fp}, valid until {}",
            crate::clip::clip(&c.subject().to_string()),
            c.validity().not_after
        ),
        Err(_) => format!("(not a valid X.509 certificate), SHA-256 {fp}"),
    }
}

pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, SignError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| SignError::Certificate(format!("no PEM certificate found: {e}")))
}

/// The operator's signing key with its certificate.
pub struct SigningKey {
    pair: Pair,
    /// The certificate's key, checked at load to be the pair's.
    public: PublicKey,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    rng: SystemRandom,
}

impl SigningKey {
    /// Load a PKCS#8 (RSA or EC P-256) or PKCS#1 (RSA) PEM key and its PEM certificate, and
    /// check that they belong together.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<SigningKey, SignError> {
        use rustls_pki_types::{pem::PemObject, PrivateKeyDer};
        let rng = SystemRandom::new();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| SignError::Key(format!("no PEM private key found: {e}")))?;
        let pair =
            match &key {
                PrivateKeyDer::Pkcs8(k) => {
                    let der = k.secret_pkcs8_der();
                    match EcdsaKeyPair::from_pkcs8(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        der,
                        &rng,
                    ) {
                        Ok(p) => Pair::Ecdsa(p),
                        Err(_) => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| {
                            SignError::Key(format!(
                                "PKCS#8 key is neither EC P-256 nor RSA 2048-8192 bit: {e}"
                            ))
                        })?),
                    }
                }
                PrivateKeyDer::Pkcs1(k) => {
                    Pair::Rsa(RsaKeyPair::from_der(k.secret_pkcs1_der()).map_err(|e| {
                        SignError::Key(format!("RSA key rejected (2048 bit or more): {e}"))
                    })?)
                }
                _ => return Err(SignError::Key(
                    "SEC1 EC keys are not supported; convert with `openssl pkcs8 -topk8 -nocrypt`"
                        .into(),
                )),
            };
        let cert_der = cert_der_from_pem(cert_pem)?;
        let public = PublicKey::from_cert_der(&cert_der)?;
        let key_public: &[u8] = match &pair {
            Pair::Rsa(p) => p.public().as_ref(),
            Pair::Ecdsa(p) => p.public_key().as_ref(),
        };
        if public.bytes != key_public {
            return Err(SignError::Certificate(
                "the certificate does not belong to the signing key".into(),
            ));
        }
        Ok(SigningKey {
            pair,
            public,
            cert_der,
            cert_pem: cert_pem.to_string(),
            rng,
        })
    }

    /// A new ECDSA P-256 key with a self-signed certificate, for development only.
    pub fn generate_development() -> Result<(String, String), SignError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| SignError::Key(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| SignError::Certificate(e.to_string()))?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "stelselnode DEVELOPMENT signing key - NOT FOR PRODUCTION",
        );
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "stelselnode development");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365 * 5);
        let cert = params
            .self_signed(&key)
            .map_err(|e| SignError::Certificate(e.to_string()))?;
        Ok((key.serialize_pem(), cert.pem()))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::RsaSha256,
            Pair::Ecdsa(_) => Algorithm::EcdsaP256Sha256,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(super) fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0u8; p.public().modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|e| SignError::Sign(e.to_string()))?;
                Ok(sig)
            }
            Pair::Ecdsa(p) => p
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| SignError::Sign(e.to_string())),
        }
    }
}
