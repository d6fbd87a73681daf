//! The one signature profile stelselnode writes and accepts, defined once: exclusive
//! c14n, SHA-256, RSA-SHA256 or ECDSA-P256-SHA256, an X.509 certificate in KeyInfo, and
//! either an enveloped Reference (`URI=""`, enveloped-signature + exc-c14n transforms) or a
//! detached one (the served file's name, no transforms, digest over the exact bytes).
//!
//! The byte layout of our `ds:Signature` lives here only: signing writes it with
//! [`signature_element`], the publish-time self-check and the audit archive read it back
//! with [`find_own`], and the verifier (libxml2, independent of this layout) checks the
//! algorithms against the constants below.

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";

/// The transforms of an enveloped Reference, in order; a detached one has none.
pub const ENVELOPED_TRANSFORMS: [&str; 2] = [ENVELOPED, EXC_C14N];

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
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            RSA_SHA256 => Some(Algorithm::RsaSha256),
            ECDSA_SHA256 => Some(Algorithm::EcdsaP256Sha256),
            _ => None,
        }
    }
}

/// SignedInfo's children as written, in exclusive-c14n form: the signed bytes are this text
/// inside [`canonical_signed_info`].
pub fn signed_info_inner(alg: Algorithm, uri: &str, enveloped: bool, digest_b64: &str) -> String {
    let transforms = if enveloped {
        format!(
            "<ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform><ds:Transform Algorithm=\"{EXC_C14N}\"></ds:Transform></ds:Transforms>"
        )
    } else {
        String::new()
    };
    format!(
        "<ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"{}\"></ds:SignatureMethod><ds:Reference URI=\"{}\">{transforms}<ds:DigestMethod Algorithm=\"{SHA256}\"></ds:DigestMethod><ds:DigestValue>{digest_b64}</ds:DigestValue></ds:Reference>",
        alg.uri(),
        xml_attr_escape(uri),
    )
}

/// The canonical SignedInfo: the bytes the SignatureValue signs.
pub fn canonical_signed_info(inner: &str) -> String {
    format!("<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\">{inner}</ds:SignedInfo>")
}

pub(crate) const OPEN: &str = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">";
const CLOSE: &str = "</ds:Signature>";

/// The complete `ds:Signature` element as written.
pub fn signature_element(inner: &str, value_b64: &str, cert_b64: Option<&str>) -> String {
    let key_info = cert_b64
        .map(|c| {
            format!(
                "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            )
        })
        .unwrap_or_default();
    format!("{OPEN}<ds:SignedInfo>{inner}</ds:SignedInfo><ds:SignatureValue>{value_b64}</ds:SignatureValue>{key_info}{CLOSE}")
}

/// Two signatures as one element, during a key rollover: `outer` (the outgoing key's,
/// which consumers pinned to it, and any XMLDSig tool, find as the document's signature)
/// holding `inner` (the active key's) in a ds:Object, which no Reference covers.
pub fn with_second(outer: &str, inner: &str) -> String {
    let open = outer.strip_suffix(CLOSE).unwrap_or(outer);
    format!("{open}<ds:Object>{inner}</ds:Object>{CLOSE}")
}

/// The base64 certificates a signature this profile wrote carries, in document order.
pub fn carried_certificates(text: &str) -> Vec<&str> {
    const A: &str = "<ds:X509Certificate>";
    const B: &str = "</ds:X509Certificate>";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(A) {
        let after = &rest[i + A.len()..];
        let Some(j) = after.find(B) else { break };
        out.push(&after[..j]);
        rest = &after[j + B.len()..];
    }
    out
}

/// A detached signature document: the XML declaration, the element, a newline.
pub fn detached_document(element: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(element.len() + 64);
    out.extend_from_slice(crate::xml::decl::XML_DECL);
    out.extend_from_slice(element.as_bytes());
    out.push(b'\n');
    out
}

/// A signature this profile wrote, found in text by its layout (the last one in `text`).
pub struct Own<'a> {
    /// Byte range of the whole `ds:Signature` element in `text`.
    pub start: usize,
    pub end: usize,
    /// SignedInfo's children ([`signed_info_inner`]).
    pub inner: &'a str,
    pub digest_b64: &'a str,
    pub value_b64: &'a str,
    pub cert_b64: Option<&'a str>,
}

/// Read back a signature in the layout [`signature_element`] writes. Only for bytes this
/// profile wrote (the publish-time self-check, audit archives after their canonical-form
/// check); anything else is verified by parsing, in `verify`.
pub fn find_own(text: &str) -> Result<Own<'_>, String> {
    let start = text.rfind(OPEN).ok_or("no ds:Signature")?;
    let end = text[start..]
        .find(CLOSE)
        .map(|i| start + i + CLOSE.len())
        .ok_or("unterminated ds:Signature")?;
    let sig = &text[start..end];
    let between = |a: &str, b: &str| -> Result<&str, String> {
        let i = sig.find(a).ok_or_else(|| format!("{a} missing"))? + a.len();
        let j = sig[i..].find(b).ok_or_else(|| format!("{b} missing"))? + i;
        Ok(&sig[i..j])
    };
    Ok(Own {
        start,
        end,
        inner: between("<ds:SignedInfo>", "</ds:SignedInfo>")?,
        digest_b64: between("<ds:DigestValue>", "</ds:DigestValue>")?,
        value_b64: between("<ds:SignatureValue>", "</ds:SignatureValue>")?,
        cert_b64: between("<ds:X509Certificate>", "</ds:X509Certificate>").ok(),
    })
}

fn xml_attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}
