//! XMLDSig signatures with ring: one profile only (exclusive c14n, SHA-256, RSA-SHA256 or
//! ECDSA-P256-SHA256, X.509 certificate in KeyInfo).
//!
//! * Detached: a `ds:Signature` document served at `<list>.xml.sig` whose Reference digests
//!   the exact bytes served (no transforms). Works for the closed official schemas.
//! * Enveloped: a `ds:Signature` as last child of the root, for project-authored schemas.
//!
//! Signing relies on `render` writing the root element in canonical form, so the digest is
//! taken over bytes already in memory. Verification ([`verify_enveloped`],
//! [`verify_detached`]) never relies on that: it parses with libxml2 and canonicalises.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use std::ffi::c_void;
use std::os::raw::c_int;

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Debug, thiserror::Error)]
#[error("signature invalid: {0}")]
pub struct VerifyError(pub String);

fn verr(s: impl Into<String>) -> VerifyError {
    VerifyError(s.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    EcdsaP256Sha256,
}

impl Algorithm {
    pub fn uri(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => RSA_SHA256,
            Algorithm::EcdsaP256Sha256 => ECDSA_SHA256,
        }
    }
    fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            RSA_SHA256 => Some(Algorithm::RsaSha256),
            ECDSA_SHA256 => Some(Algorithm::EcdsaP256Sha256),
            _ => None,
        }
    }
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
            .map_err(|_| verr("SignatureValue does not verify with the signing certificate's key"))
    }
}

/// One line naming a certificate: subject, SHA-256 fingerprint and validity, so a user can
/// compare it with the operator's before pinning it.
pub fn describe_certificate(der: &[u8]) -> String {
    let fp = crate::registry::store::sha256_hex(der);
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

    fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
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

    /// Build a complete `ds:Signature` element over a Reference with the given digest.
    fn signature_element(
        &self,
        uri: &str,
        enveloped: bool,
        digest: &[u8],
    ) -> Result<String, SignError> {
        let transforms = if enveloped {
            format!(
                "<ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform><ds:Transform Algorithm=\"{EXC_C14N}\"></ds:Transform></ds:Transforms>"
            )
        } else {
            String::new()
        };
        // Written in exclusive-c14n form, so the canonical SignedInfo is this text with the
        // ds namespace declared on it.
        let inner = format!(
            "<ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"{}\"></ds:SignatureMethod><ds:Reference URI=\"{}\">{transforms}<ds:DigestMethod Algorithm=\"{SHA256}\"></ds:DigestMethod><ds:DigestValue>{}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
            self.algorithm().uri(),
            xml_attr_escape(uri),
            B64.encode(digest)
        );
        let canonical = format!("<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\">{inner}");
        let sig = self.sign_bytes(canonical.as_bytes())?;
        Ok(format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo>{inner}<ds:SignatureValue>{}</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
            B64.encode(sig),
            B64.encode(&self.cert_der)
        ))
    }

    /// Insert an enveloped signature as the last child of the root of a rendered document
    /// (see `render`: declaration, newline, canonical root element, newline).
    pub fn sign_enveloped(&self, doc: &[u8]) -> Result<Vec<u8>, SignError> {
        let root = doc
            .strip_prefix(crate::publish::render::XML_DECL)
            .and_then(|d| d.strip_suffix(b"\n"))
            .ok_or_else(|| SignError::Sign("document is not in the rendered layout".into()))?;
        let close = root
            .iter()
            .rposition(|&b| b == b'<')
            .ok_or_else(|| SignError::Sign("document has no closing root tag".into()))?;
        let digest = digest::digest(&digest::SHA256, root);
        let sig = self.signature_element("", true, digest.as_ref())?;
        let mut out = Vec::with_capacity(doc.len() + sig.len() + 1);
        out.extend_from_slice(crate::publish::render::XML_DECL);
        out.extend_from_slice(&root[..close]);
        out.extend_from_slice(sig.as_bytes());
        out.extend_from_slice(&root[close..]);
        out.push(b'\n');
        Ok(out)
    }

    /// Check an enveloped signature this key made over a rendered document, from the bytes
    /// alone: the digest over the root element without the signature (which `render`
    /// writes in canonical form, so no re-parse or c14n is needed) and the SignatureValue
    /// over SignedInfo. Used by `publish` on documents of hundreds of MB; the general,
    /// libxml2-based [`verify_enveloped`] is what `stelselnode verify` and the tests use.
    pub fn check_own_enveloped(&self, doc: &[u8]) -> Result<(), VerifyError> {
        let text = std::str::from_utf8(doc).map_err(|_| verr("document is not UTF-8"))?;
        let root = text
            .strip_prefix(std::str::from_utf8(crate::publish::render::XML_DECL).unwrap_or_default())
            .and_then(|d| d.strip_suffix('\n'))
            .ok_or_else(|| verr("document is not in the rendered layout"))?;
        let open = format!("<ds:Signature xmlns:ds=\"{DSIG_NS}\">");
        let start = root
            .rfind(&open)
            .ok_or_else(|| verr("no enveloped ds:Signature"))?;
        let close = "</ds:Signature>";
        let end = root[start..]
            .find(close)
            .map(|i| start + i + close.len())
            .ok_or_else(|| verr("unterminated ds:Signature"))?;
        let between = |s: &str, a: &str, b: &str| -> Result<String, VerifyError> {
            let i = s.find(a).ok_or_else(|| verr(format!("{a} missing")))? + a.len();
            let j = s[i..].find(b).ok_or_else(|| verr(format!("{b} missing")))? + i;
            Ok(s[i..j].to_string())
        };
        let sig = &root[start..end];
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&root.as_bytes()[..start]);
        ctx.update(&root.as_bytes()[end..]);
        let expected = b64_decode(&between(sig, "<ds:DigestValue>", "</ds:DigestValue>")?)
            .map_err(|e| verr(format!("DigestValue: {e}")))?;
        if ctx.finish().as_ref() != expected.as_slice() {
            return Err(verr("DigestValue does not match the document"));
        }
        let si = format!(
            "<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\">{}</ds:SignedInfo>",
            between(sig, "<ds:SignedInfo>", "</ds:SignedInfo>")?
        );
        let value = b64_decode(&between(
            sig,
            "<ds:SignatureValue>",
            "</ds:SignatureValue>",
        )?)
        .map_err(|e| verr(format!("SignatureValue: {e}")))?;
        self.public_key().verify(si.as_bytes(), &value)
    }

    /// A detached signature document whose Reference (`uri`, relative to the signature's own
    /// URL) digests `served` byte for byte.
    pub fn sign_detached(&self, served: &[u8], uri: &str) -> Result<Vec<u8>, SignError> {
        let digest = digest::digest(&digest::SHA256, served);
        let sig = self.signature_element(uri, false, digest.as_ref())?;
        let mut out = Vec::with_capacity(sig.len() + 64);
        out.extend_from_slice(crate::publish::render::XML_DECL);
        out.extend_from_slice(sig.as_bytes());
        out.push(b'\n');
        Ok(out)
    }
}

fn xml_attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------
// Verification with libxml2 (independent of how we signed).

use libxml::parser::{Parser, ParserOptions};
use libxml::tree::{
    c14n::{CanonicalizationMode, CanonicalizationOptions},
    Document, Node,
};

fn strict() -> ParserOptions<'static> {
    ParserOptions {
        recover: false,
        no_net: true,
        // Short text inline in its node: a list is millions of small text nodes.
        compact: true,
        ..Default::default()
    }
}

pub fn parse_strict(bytes: &[u8]) -> Result<Document, String> {
    crate::xml::input::check_xml(bytes).map_err(|e| e.to_string())?;
    match Parser::default().parse_string_with_diagnostics(bytes, strict()) {
        Ok((doc, _)) => Ok(doc),
        Err(libxml::parser::XmlParseFailure::ParseFailed(errs)) => Err(errs
            .into_iter()
            .take(5)
            .map(|e| {
                format!(
                    "line {}: {}",
                    e.line.unwrap_or(0),
                    e.message.unwrap_or_default().trim()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn exc_c14n() -> CanonicalizationOptions {
    CanonicalizationOptions {
        mode: CanonicalizationMode::ExclusiveCanonical1_0,
        with_comments: false,
        inclusive_ns_prefixes: vec![],
    }
}

fn is_ds(node: &Node, name: &str) -> bool {
    node.get_name() == name
        && node.get_namespace().map(|n| n.get_href()).as_deref() == Some(DSIG_NS)
}

fn only_child(parent: &Node, name: &str) -> Result<Node, VerifyError> {
    let found: Vec<Node> = parent
        .get_child_elements()
        .into_iter()
        .filter(|c| is_ds(c, name))
        .collect();
    match found.len() {
        1 => Ok(found
            .into_iter()
            .next()
            .ok_or_else(|| verr("unreachable"))?),
        0 => Err(verr(format!(
            "ds:{} is missing in ds:{}",
            name,
            parent.get_name()
        ))),
        _ => Err(verr(format!("ds:{} appears more than once", name))),
    }
}

fn algorithm_of(node: &Node) -> String {
    node.get_attribute("Algorithm").unwrap_or_default()
}

/// What a verification established.
#[derive(Debug)]
pub struct Verified {
    pub alg: Algorithm,
    /// The certificate the key came from: the pinned one, or the one in KeyInfo.
    pub pinned: bool,
    pub reference_uri: String,
    /// The certificate KeyInfo carries (DER), if any.
    pub cert: Option<Vec<u8>>,
}

/// What a `ds:Signature` element says, read and checked against the one profile we accept.
struct SignatureParts {
    alg: Algorithm,
    uri: String,
    transforms: Vec<String>,
    digest: Vec<u8>,
    /// Exclusive c14n of SignedInfo: the bytes the SignatureValue signs.
    canonical: String,
    sig_value: Vec<u8>,
    /// DER certificate from KeyInfo/X509Data, if any.
    cert: Option<Vec<u8>>,
}

/// The element children of `node`, refusing any non-whitespace text between them.
fn element_children(node: &Node) -> Result<Vec<Node>, VerifyError> {
    let mut out = Vec::new();
    for c in node.get_child_nodes() {
        if c.is_element_node() {
            out.push(c);
        } else if c.is_text_node() {
            if !c.get_content().trim().is_empty() {
                return Err(verr(format!(
                    "unexpected text inside ds:{}",
                    node.get_name()
                )));
            }
        } else {
            return Err(verr(format!(
                "unexpected node inside ds:{}",
                node.get_name()
            )));
        }
    }
    Ok(out)
}

/// Exactly the shape we produce: SignedInfo, SignatureValue and optionally
/// KeyInfo/X509Data/X509Certificate. Nothing unsigned can ride along inside a signature.
fn check_shape(sig: &Node) -> Result<(), VerifyError> {
    let kids = element_children(sig)?;
    let names: Vec<String> = kids.iter().map(|k| k.get_name()).collect();
    let ok = kids.iter().all(|k| is_ds(k, &k.get_name()))
        && (names == ["SignedInfo", "SignatureValue"]
            || names == ["SignedInfo", "SignatureValue", "KeyInfo"]);
    if !ok {
        return Err(verr(format!(
            "ds:Signature must contain exactly ds:SignedInfo, ds:SignatureValue and optionally ds:KeyInfo; has {names:?}"
        )));
    }
    if let Some(ki) = kids.get(2) {
        let x509 = element_children(ki)?;
        let x509_ok = x509.len() == 1 && is_ds(&x509[0], "X509Data");
        let certs = if x509_ok {
            element_children(&x509[0])?
        } else {
            Vec::new()
        };
        if !(x509_ok && certs.len() == 1 && is_ds(&certs[0], "X509Certificate")) {
            return Err(verr(
                "ds:KeyInfo must hold exactly one ds:X509Data/ds:X509Certificate",
            ));
        }
    }
    Ok(())
}

fn read_signature(sig: &Node) -> Result<SignatureParts, VerifyError> {
    check_shape(sig)?;
    let mut si = only_child(sig, "SignedInfo")?;
    let c14n = only_child(&si, "CanonicalizationMethod")?;
    if algorithm_of(&c14n) != EXC_C14N {
        return Err(verr(format!(
            "CanonicalizationMethod '{}' is not allowed (only {EXC_C14N})",
            algorithm_of(&c14n)
        )));
    }
    let sm = only_child(&si, "SignatureMethod")?;
    let alg = Algorithm::from_uri(&algorithm_of(&sm)).ok_or_else(|| {
        verr(format!(
            "SignatureMethod '{}' is not allowed (only {RSA_SHA256} or {ECDSA_SHA256})",
            algorithm_of(&sm)
        ))
    })?;
    let reference = only_child(&si, "Reference")?;
    let uri = reference
        .get_attribute("URI")
        .ok_or_else(|| verr("Reference has no URI attribute"))?;
    let transforms = match reference
        .get_child_elements()
        .into_iter()
        .find(|c| is_ds(c, "Transforms"))
    {
        Some(t) => t.get_child_elements().iter().map(algorithm_of).collect(),
        None => Vec::new(),
    };
    let dm = only_child(&reference, "DigestMethod")?;
    if algorithm_of(&dm) != SHA256 {
        return Err(verr(format!(
            "DigestMethod '{}' is not allowed (only {SHA256})",
            algorithm_of(&dm)
        )));
    }
    let digest = b64_decode(&only_child(&reference, "DigestValue")?.get_content())
        .map_err(|e| verr(format!("DigestValue: {e}")))?;
    let sig_value = b64_decode(&only_child(sig, "SignatureValue")?.get_content())
        .map_err(|e| verr(format!("SignatureValue: {e}")))?;
    let cert = sig
        .get_child_elements()
        .into_iter()
        .find(|c| is_ds(c, "KeyInfo"))
        .and_then(|ki| {
            ki.get_child_elements()
                .into_iter()
                .find(|c| is_ds(c, "X509Data"))
        })
        .and_then(|xd| {
            xd.get_child_elements()
                .into_iter()
                .find(|c| is_ds(c, "X509Certificate"))
        })
        .map(|c| b64_decode(&c.get_content()))
        .transpose()
        .map_err(|e| verr(format!("X509Certificate: {e}")))?;
    let canonical = si
        .canonicalize(exc_c14n())
        .map_err(|_| verr("SignedInfo could not be canonicalised"))?;
    Ok(SignatureParts {
        alg,
        uri,
        transforms,
        digest,
        canonical,
        sig_value,
        cert,
    })
}

fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(clean)
        .map_err(|e| format!("not valid base64: {e}"))
}

fn check_key_and_value(
    parts: &SignatureParts,
    pinned: Option<&PublicKey>,
) -> Result<bool, VerifyError> {
    let (key, is_pinned) = match pinned {
        Some(k) => (k.clone(), true),
        None => {
            let der = parts.cert.as_deref().ok_or_else(|| {
                verr("no certificate given (--cert) and none in KeyInfo/X509Data/X509Certificate")
            })?;
            (
                PublicKey::from_cert_der(der).map_err(|e| verr(e.to_string()))?,
                false,
            )
        }
    };
    if key.alg != parts.alg {
        return Err(verr(format!(
            "SignatureMethod {} does not match the certificate's key type",
            parts.alg.uri()
        )));
    }
    key.verify(parts.canonical.as_bytes(), &parts.sig_value)?;
    Ok(is_pinned)
}

unsafe extern "C" fn hide_subtree(
    user: *mut c_void,
    node: libxml::bindings::xmlNodePtr,
    parent: libxml::bindings::xmlNodePtr,
) -> c_int {
    // SAFETY: libxml2 passes live nodes of the document being canonicalised; `user` is the
    // Signature node of that document. Namespace declarations are not xmlNodes, so for them
    // we walk up from the parent instead.
    unsafe {
        let hidden = user as libxml::bindings::xmlNodePtr;
        let mut cur = node;
        if cur.is_null() || (*cur).type_ == libxml::bindings::xmlElementType_XML_NAMESPACE_DECL {
            cur = parent;
        }
        while !cur.is_null() {
            if cur == hidden {
                return 0;
            }
            cur = (*cur).parent;
        }
        1
    }
}

/// Verify the enveloped signature of a document: exactly one `ds:Signature`, the last
/// element child of the root, over the whole document (`URI=""`).
pub fn verify_enveloped(
    doc_bytes: &[u8],
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    let doc = parse_strict(doc_bytes)
        .map_err(|e| verr(format!("document is not well-formed XML: {e}")))?;
    enveloped_in(&doc, pinned)
}

/// [`verify_enveloped`] that frees the document's bytes as soon as they are parsed: for a
/// list of hundreds of MB the parsed tree is what has to fit, not the tree plus the bytes.
pub fn verify_enveloped_owned(
    doc_bytes: Vec<u8>,
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    let doc = parse_strict(&doc_bytes)
        .map_err(|e| verr(format!("document is not well-formed XML: {e}")))?;
    drop(doc_bytes);
    enveloped_in(&doc, pinned)
}

fn enveloped_in(doc: &Document, pinned: Option<&PublicKey>) -> Result<Verified, VerifyError> {
    let root = doc
        .get_root_element()
        .ok_or_else(|| verr("document has no root element"))?;
    let sigs: Vec<Node> = root
        .get_child_elements()
        .into_iter()
        .filter(|c| is_ds(c, "Signature"))
        .collect();
    if sigs.len() != 1 {
        return Err(verr(format!(
            "expected exactly one ds:Signature as child of the root, found {}",
            sigs.len()
        )));
    }
    let sig = &sigs[0];
    if root.get_last_element_child().map(|n| n.node_ptr()) != Some(sig.node_ptr()) {
        return Err(verr(
            "ds:Signature is not the last child element of the root",
        ));
    }
    let parts = read_signature(sig)?;
    if !parts.uri.is_empty() {
        return Err(verr(format!(
            "enveloped Reference URI must be \"\", is '{}'",
            crate::clip::clip(&parts.uri)
        )));
    }
    if parts.transforms != [ENVELOPED, EXC_C14N] {
        return Err(verr(format!(
            "Transforms must be exactly enveloped-signature, exc-c14n; are {:?}",
            parts.transforms
        )));
    }
    let digest = c14n_sha256_without(doc, sig)?;
    finish_digest(parts, &digest, pinned)
}

/// SHA-256 of the exclusive canonical form of `doc` without the subtree `hidden` (the
/// enveloped-signature transform), streamed from libxml2 into the digest: the canonical
/// form, as large as the document, is never held in memory.
fn c14n_sha256_without(doc: &Document, hidden: &Node) -> Result<Vec<u8>, VerifyError> {
    unsafe extern "C" fn write(
        ctx: *mut c_void,
        buf: *const std::os::raw::c_char,
        len: c_int,
    ) -> c_int {
        // SAFETY: `ctx` is the digest context below, alive for the whole c14n run; libxml2
        // passes `len` valid bytes at `buf`.
        unsafe {
            if len > 0 && !ctx.is_null() && !buf.is_null() {
                let d = &mut *(ctx as *mut digest::Context);
                d.update(std::slice::from_raw_parts(buf as *const u8, len as usize));
            }
        }
        len
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    // SAFETY: the output buffer writes only into `ctx` and is closed (flushed and freed)
    // before `ctx` is used again; `hide_subtree` receives the Signature node of `doc`.
    let (rc, closed) = unsafe {
        let out = libxml::bindings::xmlOutputBufferCreateIO(
            Some(write),
            None,
            &mut ctx as *mut digest::Context as *mut c_void,
            std::ptr::null_mut(),
        );
        if out.is_null() {
            return Err(verr("libxml2 could not allocate an output buffer"));
        }
        let rc = libxml::bindings::xmlC14NExecute(
            doc.doc_ptr(),
            Some(hide_subtree),
            hidden.node_ptr() as *mut c_void,
            libxml::bindings::xmlC14NMode_XML_C14N_EXCLUSIVE_1_0 as c_int,
            std::ptr::null_mut(),
            0,
            out,
        );
        (rc, libxml::bindings::xmlOutputBufferClose(out))
    };
    if rc < 0 || closed < 0 {
        return Err(verr("document could not be canonicalised"));
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// True if a detached signature document is byte for byte in the form `sign_detached`
/// writes (canonical base64, no extra markup). Audit archives require this, so that no byte
/// of a signature file can change unnoticed, signed or not.
pub fn detached_is_canonical(sig_bytes: &[u8]) -> Result<bool, VerifyError> {
    let doc = parse_strict(sig_bytes)
        .map_err(|e| verr(format!("signature is not well-formed XML: {e}")))?;
    let root = doc
        .get_root_element()
        .ok_or_else(|| verr("signature document has no root element"))?;
    let parts = read_signature(&root)?;
    let prefix = format!("<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\">");
    let Some(inner) = parts.canonical.strip_prefix(&prefix) else {
        return Ok(false);
    };
    let key_info = match &parts.cert {
        Some(c) => format!(
            "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
            B64.encode(c)
        ),
        None => String::new(),
    };
    let rebuilt = format!(
        "{}<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo>{inner}<ds:SignatureValue>{}</ds:SignatureValue>{key_info}</ds:Signature>\n",
        String::from_utf8_lossy(crate::publish::render::XML_DECL),
        B64.encode(&parts.sig_value)
    );
    Ok(rebuilt.as_bytes() == sig_bytes)
}

/// Verify a detached signature over `served` (the exact bytes). `expected_uri` is the file
/// name the Reference must name.
pub fn verify_detached(
    served: &[u8],
    sig_bytes: &[u8],
    expected_uri: &str,
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    let doc = parse_strict(sig_bytes)
        .map_err(|e| verr(format!("signature is not well-formed XML: {e}")))?;
    let root = doc
        .get_root_element()
        .ok_or_else(|| verr("signature document has no root element"))?;
    if !is_ds(&root, "Signature") {
        return Err(verr("signature document's root is not ds:Signature"));
    }
    let parts = read_signature(&root)?;
    if parts.uri != expected_uri {
        return Err(verr(format!(
            "Reference URI '{}' does not name the document '{expected_uri}'",
            parts.uri
        )));
    }
    if !parts.transforms.is_empty() {
        return Err(verr(
            "a detached Reference must have no Transforms (it digests the exact bytes)",
        ));
    }
    finish(parts, served, pinned)
}

/// The last two steps of every verification: the digest over what the Reference covers,
/// then the SignatureValue with the pinned or carried key.
fn finish(
    parts: SignatureParts,
    covered: &[u8],
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    let actual = digest::digest(&digest::SHA256, covered);
    finish_digest(parts, actual.as_ref(), pinned)
}

fn finish_digest(
    parts: SignatureParts,
    actual: &[u8],
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    if actual != parts.digest.as_slice() {
        return Err(verr(
            "DigestValue does not match the document: the document was changed after signing",
        ));
    }
    let pinned = check_key_and_value(&parts, pinned)?;
    Ok(Verified {
        alg: parts.alg,
        pinned,
        reference_uri: parts.uri,
        cert: parts.cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::render::{render, Header};
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
    use crate::registry::model::{Gegevensdienstnaam, OAuthclient, Registry};

    fn registry_with_awkward_text() -> Registry {
        let mut reg = Registry::default();
        for (id, name) in [
            ("1", "Basis & <zorg> \"quotes\" 'x'"),
            ("2", "Médicatie — 日本語 😀"),
        ] {
            reg.gegevensdiensten.insert(
                id.into(),
                Gegevensdienstnaam {
                    gegevensdienst_id: id.into(),
                    weergavenaam: name.into(),
                },
            );
        }
        // Long multi-byte text crosses libxml's output-buffer chunk boundaries.
        for i in 0..300 {
            let host = format!("pgo{i}.voorbeeld.nl");
            reg.oauthclients.insert(
                host.clone(),
                OAuthclient {
                    hostname: host,
                    oauthclient_organisatienaam: format!("Zorg & Co {i} — é日😀"),
                    gegevensdiensten: vec!["1".into(), "2".into()],
                },
            );
        }
        reg
    }

    fn c14n_of(doc: &[u8]) -> String {
        let d = parse_strict(doc).unwrap();
        d.canonicalize(exc_c14n(), None).unwrap()
    }

    #[test]
    fn rendered_root_is_already_canonical() {
        let reg = registry_with_awkward_text();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let h = Header {
            volgnummer: 7,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        for r in cat.renditions() {
            let doc = render(&reg, &r, &h).unwrap();
            let root = doc
                .strip_prefix(crate::publish::render::XML_DECL)
                .and_then(|d| d.strip_suffix(b"\n"))
                .unwrap();
            assert_eq!(c14n_of(&doc).as_bytes(), root, "{r}");
        }
    }

    fn keys() -> Vec<SigningKey> {
        let (k, c) = SigningKey::generate_development().unwrap();
        let mut out = vec![SigningKey::from_pem(&k, &c).unwrap()];
        // RSA through openssl, as an operator would make it.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        let cert = dir.path().join("c.pem");
        let st = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test", "-days", "2",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(st.status.success());
        out.push(
            SigningKey::from_pem(
                &std::fs::read_to_string(&key).unwrap(),
                &std::fs::read_to_string(&cert).unwrap(),
            )
            .unwrap(),
        );
        out
    }

    #[test]
    fn enveloped_and_detached_round_trip_and_detect_tampering() {
        let reg = registry_with_awkward_text();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| {
                r.version == crate::registry::model::SchemaVersion::Release3
                    && r.list == crate::registry::model::ListKind::OAuthclientlist
            })
            .unwrap();
        let h = Header {
            volgnummer: 1,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        for key in keys() {
            let pk = key.public_key().clone();
            let signed = key.sign_enveloped(&render(&reg, &r, &h).unwrap()).unwrap();
            let v = verify_enveloped(&signed, Some(&pk)).unwrap();
            key.check_own_enveloped(&signed).unwrap();
            assert_eq!(v.alg, key.algorithm());
            assert!(
                verify_enveloped(&signed, None).is_ok(),
                "KeyInfo certificate"
            );
            // Nothing unsigned may ride along inside the signature either.
            let smuggled = String::from_utf8(signed.clone()).unwrap().replacen(
                "</ds:Signature>",
                "<ds:Object>extra</ds:Object></ds:Signature>",
                1,
            );
            assert!(verify_enveloped(smuggled.as_bytes(), Some(&pk)).is_err());
            let tampered = String::from_utf8(signed.clone())
                .unwrap()
                .replacen("pgo1.", "pgo9.", 1);
            assert!(verify_enveloped(tampered.as_bytes(), Some(&pk)).is_err());
            assert!(key.check_own_enveloped(tampered.as_bytes()).is_err());

            let sig = key
                .sign_detached(&signed, "MedMij_OAuthclientlist.xml")
                .unwrap();
            verify_detached(&signed, &sig, "MedMij_OAuthclientlist.xml", Some(&pk)).unwrap();
            assert!(verify_detached(
                tampered.as_bytes(),
                &sig,
                "MedMij_OAuthclientlist.xml",
                Some(&pk)
            )
            .is_err());
            assert!(verify_detached(&signed, &sig, "MedMij_Whitelist.xml", Some(&pk)).is_err());
        }
        // A signature by another key does not pass the publish-time check.
        let ks = keys();
        let signed = ks[0]
            .sign_enveloped(&render(&reg, &r, &h).unwrap())
            .unwrap();
        assert!(ks[1].check_own_enveloped(&signed).is_err());
        // A key and a certificate that do not belong together are refused.
        let (k1, _) = SigningKey::generate_development().unwrap();
        let (_, c2) = SigningKey::generate_development().unwrap();
        assert!(SigningKey::from_pem(&k1, &c2).is_err());
    }
}
