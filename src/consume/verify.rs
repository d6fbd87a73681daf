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
    pub pinned: Option<PublicKey>,
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
    let pinned = trust.pinned.as_ref();
    let mut verified = Vec::new();
    // The detached signature first: it needs the bytes, the enveloped one only the parsed
    // tree (so the bytes can go before the tree is canonicalised).
    let sig_target = sig
        .map(str::to_string)
        .unwrap_or_else(|| sig_location(target));
    let mut lines = Vec::new();
    match load(&sig_target, opts)? {
        Some(sig_bytes) => {
            let v = sign::verify_detached(&doc, &sig_bytes, def.list.file_name(), pinned)
                .map_err(|e| anyhow!("{sig_target}: detached {e}"))?;
            lines.push(format!(
                "  detached signature {sig_target}: valid ({:?}, {})",
                v.alg,
                key_note(v.pinned)
            ));
            verified.push(v);
        }
        None if sig.is_some() => bail!("{sig_target}: not found"),
        None => lines.push(format!("  detached signature: none at {sig_target}")),
    }
    if !def.official {
        let v = sign::verify_enveloped_owned(doc, pinned)
            .map_err(|e| anyhow!("{target}: enveloped {e}"))?;
        writeln!(
            out,
            "  enveloped signature: valid ({:?}, {})",
            v.alg,
            key_note(v.pinned)
        )?;
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

/// Read a pinned certificate file given with `--cert`.
pub fn read_pinned(path: &std::path::Path) -> Result<PublicKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("--cert {}", path.display()))?;
    PublicKey::from_cert_pem(&pem).with_context(|| format!("--cert {}", path.display()))
}
