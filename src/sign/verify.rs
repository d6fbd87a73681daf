//! Verification with libxml2, independent of how we signed: parse, check the signature's
//! shape and algorithms against the one profile, canonicalise, digest, check the value
//! with the pinned key (or, if the caller allows it, the certificate in KeyInfo).

use super::profile::{
    self, Algorithm, DSIG_NS, ECDSA_SHA256, ENVELOPED_TRANSFORMS, EXC_C14N, RSA_SHA256, SHA256,
};
use super::{b64_decode, verr, PublicKey, VerifyError};
use crate::xml::libxml::{c14n_sha256_without, exc_c14n, parse_strict};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use libxml::tree::{Document, Node};
use ring::digest;

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

/// The text of an element that may hold only text (a digest, a signature value, a
/// certificate): a comment or element inside it would be markup no signature covers.
fn text_of(node: &Node) -> Result<String, VerifyError> {
    if node.get_child_nodes().iter().any(|c| !c.is_text_node()) {
        return Err(verr(format!(
            "ds:{} may contain only text",
            node.get_name()
        )));
    }
    Ok(node.get_content())
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
/// KeyInfo/X509Data/X509Certificate; in a detached signature document during a key
/// rollover (`second`), then a ds:Object holding the second key's ds:Signature, of the
/// plain shape. Nothing unsigned can ride along inside a signature.
fn check_shape(sig: &Node, second: bool) -> Result<Option<Node>, VerifyError> {
    let mut kids = element_children(sig)?;
    let inner = match kids.last() {
        Some(o) if second && is_ds(o, "Object") => {
            let o = kids.pop().ok_or_else(|| verr("unreachable"))?;
            let held = element_children(&o)?;
            match held.as_slice() {
                [s] if is_ds(s, "Signature") => Some(s.clone()),
                _ => {
                    return Err(verr(
                        "ds:Object in a detached signature must hold exactly one ds:Signature",
                    ))
                }
            }
        }
        _ => None,
    };
    let names: Vec<String> = kids.iter().map(|k| k.get_name()).collect();
    let ok = kids.iter().all(|k| is_ds(k, &k.get_name()))
        && (names == ["SignedInfo", "SignatureValue"]
            || names == ["SignedInfo", "SignatureValue", "KeyInfo"]);
    if !ok {
        return Err(verr(format!(
            "ds:Signature must contain exactly ds:SignedInfo, ds:SignatureValue and optionally ds:KeyInfo (and, detached, one ds:Object with a second ds:Signature); has {names:?}"
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
    Ok(inner)
}

fn read_signature(sig: &Node) -> Result<SignatureParts, VerifyError> {
    check_shape(sig, false)?;
    read_checked(sig)
}

/// A detached signature document's signatures: the root's, and a second key's in its
/// ds:Object during a key rollover.
fn read_detached(root: &Node) -> Result<Vec<SignatureParts>, VerifyError> {
    if !is_ds(root, "Signature") {
        return Err(verr("signature document's root is not ds:Signature"));
    }
    let inner = check_shape(root, true)?;
    let mut all = vec![read_checked(root)?];
    if let Some(i) = inner {
        all.push(read_signature(&i)?);
    }
    Ok(all)
}

fn read_checked(sig: &Node) -> Result<SignatureParts, VerifyError> {
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
    let digest = b64_decode(&text_of(&only_child(&reference, "DigestValue")?)?)
        .map_err(|e| verr(format!("DigestValue: {e}")))?;
    let sig_value = b64_decode(&text_of(&only_child(sig, "SignatureValue")?)?)
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
        .map(|c| text_of(&c))
        .transpose()?
        .map(|t| b64_decode(&t))
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

/// Verify the enveloped signature of a document: exactly one `ds:Signature`, the last
/// element child of the root, over the whole document (`URI=""`).
pub fn verify_enveloped(
    doc_bytes: &[u8],
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    if let Some(v) = enveloped_as_canonical(doc_bytes, pinned) {
        return Ok(v);
    }
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
    if let Some(v) = enveloped_as_canonical(&doc_bytes, pinned) {
        return Ok(v);
    }
    let doc = parse_strict(&doc_bytes)
        .map_err(|e| verr(format!("document is not well-formed XML: {e}")))?;
    drop(doc_bytes);
    enveloped_in(&doc, pinned)
}

/// Where a document's enveloped signature is, read from its bytes.
struct Layout {
    /// The root element's start tag, the signature element and the root's end tag.
    root_start: std::ops::Range<usize>,
    signature: std::ops::Range<usize>,
    root_end: std::ops::Range<usize>,
}

/// XML's white space (production S): not form feed or vertical tab, which are not XML.
fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Find the one `ds:Signature` child of the root, as the last element child, in `body`
/// (the document after its XML declaration, starting at the root). `None` for anything
/// else, including bytes the scanner cannot read.
fn layout(body: &[u8]) -> Option<Layout> {
    use quick_xml::events::Event;
    use quick_xml::name::{Namespace, ResolveResult};
    let mut r = quick_xml::NsReader::from_reader(body);
    let mut depth = 0usize;
    let mut root_start = None;
    let mut signature: Option<std::ops::Range<usize>> = None;
    let mut sig_open = None;
    // An element child of the root after the signature, or a second signature.
    let mut out_of_shape = false;
    let is_sig = |ns: &ResolveResult, local: &str| {
        matches!(ns, ResolveResult::Bound(Namespace(n)) if *n == DSIG_NS) && local == "Signature"
    };
    let root_end = loop {
        let before = usize::try_from(r.buffer_position()).ok()?;
        let (sig, ev) = {
            let (ns, ev) = r.read_resolved_event().ok()?;
            let sig = match &ev {
                Event::Start(e) | Event::Empty(e) => is_sig(&ns, e.local_name().as_ref()),
                _ => false,
            };
            (sig, ev)
        };
        let after = usize::try_from(r.buffer_position()).ok()?;
        match ev {
            Event::Start(_) => {
                depth += 1;
                if depth == 1 {
                    root_start = Some(before..after);
                } else if depth == 2 {
                    out_of_shape |= signature.is_some();
                    if sig {
                        sig_open = Some(before);
                    }
                }
            }
            Event::Empty(_) if depth == 1 => {
                out_of_shape |= signature.is_some();
                if sig {
                    signature = Some(before..after);
                }
            }
            Event::End(_) => {
                if depth == 1 {
                    break before..after;
                }
                if depth == 2 {
                    if let Some(open) = sig_open.take() {
                        signature = Some(open..after);
                    }
                }
                depth = depth.checked_sub(1)?;
            }
            Event::Eof => return None,
            _ => {}
        }
    };
    // The root starts the body and ends it, save whitespace (a comment after it is not in
    // the canonical form, so these bytes would not be it).
    let tail = &body[root_end.end..];
    let root_start = root_start?;
    if out_of_shape || root_start.start != 0 || !tail.iter().all(|b| is_xml_space(*b)) {
        return None;
    }
    Some(Layout {
        root_start,
        signature: signature?,
        root_end,
    })
}

/// The enveloped signature checked over the document's own bytes, when they are already
/// the canonical form apart from the XML declaration and the signature element, as every
/// document this Stelselnode renders is: the digest is then the SHA-256 of the bytes
/// around the signature, and no tree is built (the tree of a 100k Zorgaanbiederslijst
/// takes about 2 GB). Sound for any input: a digest that matches means these bytes are
/// exactly the canonical form that was signed. It only ever accepts: `None` for any other
/// form, any mismatch or any error, and the libxml2 path then canonicalises the document
/// and gives the verdict and its reason.
pub(crate) fn enveloped_as_canonical(bytes: &[u8], pinned: Option<&PublicKey>) -> Option<Verified> {
    // The declaration this Stelselnode writes, or none: any other prolog is for libxml2
    // to read.
    crate::xml::input::check_xml(bytes).ok()?;
    let after_decl = bytes
        .strip_prefix(crate::xml::decl::XML_DECL)
        .unwrap_or(bytes);
    let start = after_decl
        .iter()
        .position(|b| !is_xml_space(*b))
        .unwrap_or(after_decl.len());
    let body = &after_decl[start..];
    if body.first() != Some(&b'<') {
        return None;
    }
    let at = layout(body)?;
    // The signature in its own document, under the root's start tag: the namespaces in
    // scope, and so the canonical SignedInfo, are the same as in the whole document.
    let mut own = Vec::new();
    for range in [&at.root_start, &at.signature, &at.root_end] {
        own.extend_from_slice(body.get(range.clone())?);
    }
    let doc = parse_strict(&own).ok()?;
    let sig = doc.get_root_element()?.get_first_element_child()?;
    if !is_ds(&sig, "Signature") {
        return None;
    }
    let parts = read_signature(&sig).ok()?;
    check_enveloped_reference(&parts).ok()?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(body.get(..at.signature.start)?);
    ctx.update(body.get(at.signature.end..at.root_end.end)?);
    finish_digest(parts, ctx.finish().as_ref(), pinned).ok()
}

fn check_enveloped_reference(parts: &SignatureParts) -> Result<(), VerifyError> {
    if !parts.uri.is_empty() {
        return Err(verr(format!(
            "enveloped Reference URI must be \"\", is '{}'",
            crate::clip::clip(&parts.uri)
        )));
    }
    if parts.transforms != ENVELOPED_TRANSFORMS {
        return Err(verr(format!(
            "Transforms must be exactly enveloped-signature, exc-c14n; are {:?}",
            parts.transforms
        )));
    }
    Ok(())
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
    check_enveloped_reference(&parts)?;
    let digest = c14n_sha256_without(doc, sig).map_err(verr)?;
    finish_digest(parts, &digest, pinned)
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
    let mut elements = Vec::new();
    for parts in read_detached(&root)? {
        let empty = profile::canonical_signed_info("");
        let (Some(open), close) = (empty.strip_suffix("</ds:SignedInfo>"), "</ds:SignedInfo>")
        else {
            return Ok(false);
        };
        let Some(inner) = parts
            .canonical
            .strip_prefix(open)
            .and_then(|r| r.strip_suffix(close))
        else {
            return Ok(false);
        };
        let cert = parts.cert.as_ref().map(|c| B64.encode(c));
        elements.push(profile::signature_element(
            inner,
            &B64.encode(&parts.sig_value),
            cert.as_deref(),
        ));
    }
    let rebuilt = match elements.as_slice() {
        [one] => profile::detached_document(one),
        [outer, inner] => profile::detached_document(&profile::with_second(outer, inner)),
        _ => return Ok(false),
    };
    Ok(rebuilt == sig_bytes)
}

/// Verify a detached signature document over `served` byte for byte.
pub fn verify_detached(
    served: &[u8],
    sig_bytes: &[u8],
    expected_uri: &str,
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    let actual = digest::digest(&digest::SHA256, served);
    verify_detached_digest(actual.as_ref(), sig_bytes, expected_uri, pinned)
}

/// [`verify_detached`] given the SHA-256 of the served bytes. During a key rollover the
/// document carries two signatures (the second in the first's ds:Object): each must name
/// and digest the document; with a pinned key one of them must be by it, unpinned each
/// must verify with the certificate it carries.
pub fn verify_detached_digest(
    served_sha256: &[u8],
    sig_bytes: &[u8],
    expected_uri: &str,
    pinned: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    let doc = parse_strict(sig_bytes)
        .map_err(|e| verr(format!("signature is not well-formed XML: {e}")))?;
    let root = doc
        .get_root_element()
        .ok_or_else(|| verr("signature document has no root element"))?;
    let all = read_detached(&root)?;
    let count = all.len();
    // Each signature whole: what it names, that it has no transforms, its digest, its key.
    let check = |parts: SignatureParts| -> Result<Verified, VerifyError> {
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
        finish_digest(parts, served_sha256, pinned)
    };
    if pinned.is_none() {
        // Unpinned, every signature must hold with the certificate it carries.
        let mut first = None;
        for parts in all {
            let v = check(parts)?;
            first.get_or_insert(v);
        }
        return first.ok_or_else(|| verr("no signature"));
    }
    // Pinned, the one by the pinned key decides; another (unsigned, in the ds:Object)
    // that was changed on the way cannot make a genuine document fail.
    let mut errors = Vec::new();
    for parts in all {
        match check(parts) {
            Ok(v) => return Ok(v),
            Err(e) => errors.push(e.0),
        }
    }
    match errors.as_slice() {
        [one] if count == 1 => Err(verr(one.clone())),
        _ => Err(verr(format!(
            "none of the {count} signatures is by the pinned certificate's key: {}",
            errors.join("; ")
        ))),
    }
}

/// The newest of `keys` (the last) with which `check` succeeds, and its index; else the
/// newest key's error. No key is an error, never a check with the certificate a signature
/// carries. For a consumer that trusts a chain of keys (`sign::chain`).
pub fn by_newest<T>(
    keys: &[PublicKey],
    check: impl Fn(&PublicKey) -> Result<T, VerifyError>,
) -> Result<(T, usize), VerifyError> {
    let mut newest_error = None;
    for (i, k) in keys.iter().enumerate().rev() {
        match check(k) {
            Ok(v) => return Ok((v, i)),
            Err(e) => {
                newest_error.get_or_insert(e);
            }
        }
    }
    Err(newest_error.unwrap_or_else(|| verr("no key to verify with")))
}

/// The last two steps of every verification: the digest over what the Reference covers
/// (computed by the caller) compared, then the SignatureValue with the pinned or carried key.
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
