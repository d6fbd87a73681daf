//! `stelselnode verify`: what a careful consumer does with a list: XSD validation and the
//! signatures, from a file or a served URL. It fails closed: a signature is only accepted
//! with the operator's pinned certificate, unless the user explicitly trusts the certificate
//! the document carries.

use crate::consume::fetch;
use crate::consume::read;
use crate::sign::{self, PublicKey};
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;

/// Whose signatures are accepted.
pub struct Trust {
    /// The operator's certificate (`--cert`).
    /// Its certificate (DER): also where a served list's key chain is followed from.
    pub pinned: Option<Vec<u8>>,
    /// `--trust-embedded-cert`: accept the certificate in KeyInfo. Anyone can put one there.
    pub trust_embedded: bool,
}

/// The refusal when nothing is pinned: which certificate signed, and how to pin it.
pub fn unpinned_refusal(what: &str, certs: &[Vec<u8>]) -> anyhow::Error {
    let found: Vec<String> = certs
        .iter()
        .map(|c| format!("  {}", sign::describe_certificate(c)))
        .collect();
    anyhow!(
        "{what}: the signature is mathematically valid, but made with a certificate that is not pinned, so it proves nothing: anyone can sign with a certificate of their own. Certificate found:\n{}\nPin the operator's signing certificate with --cert PEM (obtain it out of band, e.g. /signing-certificate.pem of the Stelselnode, and check its fingerprint), or pass --trust-embedded-cert to accept the embedded certificate knowingly.",
        if found.is_empty() { "  (none)".to_string() } else { found.join("\n") }
    )
}

fn sig_location(target: &str) -> String {
    match target.split_once('?') {
        Some((path, q)) => format!("{path}.sig?{q}"),
        None => format!("{target}.sig"),
    }
}

fn load(target: &str, opts: &fetch::Options) -> Result<Option<Vec<u8>>> {
    if target.starts_with("http://") || target.starts_with("https://") {
        fetch::get(target, opts)
    } else {
        let path = std::path::Path::new(target);
        if !path.exists() {
            return Ok(None);
        }
        crate::xml::input::read_file(path, opts.max_bytes)
            .map(Some)
            .map_err(|e| anyhow!("{e}"))
    }
}

/// Verify and describe; an error means the document must not be used.
pub fn verify(
    target: &str,
    sig: Option<&str>,
    trust: &Trust,
    opts: &fetch::Options,
) -> Result<String> {
    let mut out = String::new();
    let doc = load(target, opts)?.ok_or_else(|| anyhow!("{target}: not found"))?;
    let list = read::inspect(&doc).map_err(|e| anyhow!("{target}: {e}"))?;
    let def = list.schema;
    writeln!(out, "{target}: {}", list.describe())?;
    writeln!(out, "  XSD: valid against {}", def.xsd_file)?;
    let key_note = |pinned: bool| {
        if pinned {
            "pinned certificate"
        } else {
            "certificate from KeyInfo, trusted by --trust-embedded-cert, NOT pinned"
        }
    };
    let pinned = trust
        .pinned
        .as_deref()
        .map(PublicKey::from_cert_der)
        .transpose()?;
    let pinned = pinned.as_ref();
    // The pinned key, and (a served list signed by a later key) the keys its chain leads
    // to: newest last.
    let mut keys: Vec<PublicKey> = pinned.into_iter().cloned().collect();
    let mut fingerprints: Vec<String> = trust
        .pinned
        .iter()
        .map(|d| crate::digest::sha256_hex(d))
        .collect();
    // Which key verified: the pinned one, one its chain leads to, or (unpinned) the one
    // the signature carries.
    let by = |i: Option<usize>, fingerprints: &[String], v: &sign::Verified| match i {
        Some(0) | None => key_note(v.pinned).to_string(),
        Some(i) => format!(
            "key {} which the pinned certificate's key chain leads to",
            fingerprints.get(i).map(String::as_str).unwrap_or("?")
        ),
    };
    let mut verified = Vec::new();
    // The detached signature first: it needs the bytes, the enveloped one only the parsed
    // tree (so the bytes can go before the tree is canonicalised).
    let sig_target = sig
        .map(str::to_string)
        .unwrap_or_else(|| sig_location(target));
    let mut lines = Vec::new();
    match load(&sig_target, opts)? {
        Some(sig_bytes) => {
            let uri = def.list.file_name();
            let mut v = by_any(&keys, |k| sign::verify_detached(&doc, &sig_bytes, uri, k));
            if let (Err(_), Some(der)) = (&v, &trust.pinned) {
                // Not the pinned key's: a served list may be signed by a key the pinned
                // one announced. What goes wrong on the way leaves the verdict as it was.
                match followed_keys(target, der, opts) {
                    Ok(Some(chain)) => {
                        lines.push(format!(
                            "  signing key chain: followed from the pinned certificate to {} later key(s)",
                            chain.len() - 1
                        ));
                        (fingerprints, keys) = chain.into_iter().unzip();
                        v = by_any(&keys, |k| sign::verify_detached(&doc, &sig_bytes, uri, k));
                    }
                    Ok(None) => {}
                    Err(e) => lines.push(format!("  signing key chain: not followed ({e:#})")),
                }
            }
            let (v, i) =
                v.map_err(|e| anyhow!("{sig_target}: detached {e}\n{}", lines.join("\n")))?;
            lines.push(format!(
                "  detached signature {sig_target}: valid ({:?}, {})",
                v.alg,
                by(i, &fingerprints, &v)
            ));
            verified.push(v);
        }
        None if sig.is_some() => bail!("{sig_target}: not found"),
        None => lines.push(format!("  detached signature: none at {sig_target}")),
    }
    // During a key rollover's overlap the enveloped signature is the new key's while the
    // detached one carries both: a consumer pinned to the old key has every byte covered
    // by the detached signature it verified, and the enveloped one must still hold with
    // the certificate it carries.
    let detached_by_pin = pinned.is_some() && !verified.is_empty();
    if !def.official {
        let v = match detached_by_pin {
            true => match by_any(&keys, |k| sign::verify_enveloped(&doc, k)) {
                Ok((v, i)) => Ok((v, i.filter(|i| *i > 0).map(By::Followed))),
                Err(_) => sign::verify_enveloped_owned(doc, None).map(|v| {
                    let fp = v.cert.as_deref().map(crate::digest::sha256_hex);
                    (v, Some(By::Other(fp.unwrap_or_default())))
                }),
            },
            false => sign::verify_enveloped_owned(doc, pinned).map(|v| (v, None)),
        };
        let (v, other) = v.map_err(|e| anyhow!("{target}: enveloped {e}"))?;
        match other {
            None => writeln!(
                out,
                "  enveloped signature: valid ({:?}, {})",
                v.alg,
                key_note(v.pinned)
            )?,
            Some(By::Followed(i)) => writeln!(
                out,
                "  enveloped signature: valid ({:?}, {})",
                v.alg,
                by(Some(i), &fingerprints, &v)
            )?,
            Some(By::Other(fp)) => writeln!(
                out,
                "  enveloped signature: valid ({:?}), by another key (certificate SHA-256 {fp}: a key rollover); the detached signature verified below covers every byte",
                v.alg
            )?,
        }
        verified.push(v);
    }
    for l in lines {
        writeln!(out, "{l}")?;
    }
    if verified.is_empty() {
        bail!("{target}: no signature found; an unsigned list cannot be trusted");
    }
    if pinned.is_none() && !trust.trust_embedded {
        let mut certs: Vec<Vec<u8>> = Vec::new();
        for v in verified {
            if let Some(c) = v.cert {
                if !certs.contains(&c) {
                    certs.push(c);
                }
            }
        }
        return Err(unpinned_refusal(target, &certs));
    }
    Ok(out)
}

/// Who made an enveloped signature, when not the pinned key: a key its chain leads to (by
/// index), or another key (by certificate fingerprint) beside a detached signature by one.
enum By {
    Followed(usize),
    Other(String),
}

/// [`sign::by_newest`] of `keys`, or, with no key pinned, the check with the certificate
/// the signature carries (whose acceptance `verify` decides after).
fn by_any<T>(
    keys: &[PublicKey],
    f: impl Fn(Option<&PublicKey>) -> Result<T, sign::VerifyError>,
) -> Result<(T, Option<usize>), sign::VerifyError> {
    match keys.is_empty() {
        true => f(None).map(|v| (v, None)),
        false => sign::by_newest(keys, |k| f(Some(k))).map(|(v, i)| (v, Some(i))),
    }
}

/// For a served list: the signing key chain the Stelselnode's head names, followed from
/// the pinned certificate (`sign::chain`: each link must be signed by the key before it).
/// `None` when there is no head or no link leads further.
fn followed_keys(
    target: &str,
    pinned: &[u8],
    opts: &fetch::Options,
) -> Result<Option<Vec<(String, PublicKey)>>> {
    let Ok(uri) = target.parse::<hyper::Uri>() else {
        return Ok(None);
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Ok(None);
    };
    if !matches!(scheme, "http" | "https") {
        return Ok(None);
    }
    let base = format!("{scheme}://{authority}/stelselnode/");
    let Some(bytes) = fetch::get(&format!("{base}head.xml"), opts)? else {
        return Ok(None);
    };
    let head =
        crate::distribute::head::Head::parse(&bytes).map_err(|e| anyhow!("{base}head.xml: {e}"))?;
    let small = fetch::Options {
        timeout: opts.timeout,
        max_bytes: crate::sign::chain::MAX_SIZE as u64,
        ca_pem: opts.ca_pem.clone(),
    };
    let mut links = Vec::new();
    for b in &head.keys {
        let link = fetch::get(&format!("{base}{}", b.href), &small)?
            .ok_or_else(|| anyhow!("{base}{}: not found", b.href))?;
        if crate::digest::sha256_hex(&link) != b.sha256 {
            bail!("{base}{}: not the bytes the head names", b.href);
        }
        links.push(link);
    }
    let chain = crate::sign::chain::follow(&[pinned.to_vec()], &links)?;
    if chain.len() < 2 {
        return Ok(None);
    }
    let keys = chain
        .iter()
        .map(|c| PublicKey::from_cert_der(c).map(|k| (crate::digest::sha256_hex(c), k)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(keys))
}

/// A pinned certificate file given with `--cert`, as DER (checked to hold a key we verify
/// with).
pub fn read_pinned_der(path: &std::path::Path) -> Result<Vec<u8>> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("--cert {}", path.display()))?;
    let der = crate::sign::cert_der_from_pem(&pem)
        .with_context(|| format!("--cert {}", path.display()))?;
    PublicKey::from_cert_der(&der).with_context(|| format!("--cert {}", path.display()))?;
    Ok(der)
}
