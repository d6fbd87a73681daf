//! `stelselnode verify`: what a careful consumer does with a list: XSD validation and the
//! signatures, from a file or a served URL.

use crate::import;
use crate::sign::{self, PublicKey};
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;

/// Fetch a URL over plain HTTP (the loopback and CDN-internal case). Returns `None` on 404.
fn http_get(url: &str) -> Result<Option<Vec<u8>>> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("'{url}' is not a valid URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("'{url}': only http:// URLs can be fetched; download https lists with curl and verify the file");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client: Client<_, Empty<bytes::Bytes>> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.get(uri))
            .await
            .map_err(|_| anyhow!("{url}: timed out"))?
            .with_context(|| format!("fetching {url}"))?;
        let status = resp.status();
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let ct = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.into_body().collect().await?.to_bytes().to_vec();
        if !status.is_success() {
            bail!(
                "{url}: HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        if ct != "application/xml" {
            bail!("{url}: Content-Type is '{ct}', expected exactly application/xml");
        }
        Ok(Some(body))
    })
}

fn sig_location(target: &str) -> String {
    match target.split_once('?') {
        Some((path, q)) => format!("{path}.sig?{q}"),
        None => format!("{target}.sig"),
    }
}

fn load(target: &str) -> Result<Option<Vec<u8>>> {
    if target.starts_with("http://") || target.starts_with("https://") {
        http_get(target)
    } else {
        match std::fs::read(target) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {target}")),
        }
    }
}

/// Verify and describe; an error means the document must not be used.
pub fn verify(target: &str, sig: Option<&str>, cert_pem: Option<&str>) -> Result<String> {
    let mut out = String::new();
    let doc = load(target)?.ok_or_else(|| anyhow!("{target}: not found"))?;
    let pinned = cert_pem
        .map(PublicKey::from_cert_pem)
        .transpose()
        .context("--cert")?;
    let list = import::read_list(&doc).map_err(|e| anyhow!("{target}: {e}"))?;
    let def = list.schema;
    writeln!(out, "{target}: {}", list.describe())?;
    writeln!(out, "  XSD: valid against {}", def.xsd_file)?;
    let key_note = |pinned: bool| {
        if pinned {
            "pinned certificate"
        } else {
            "certificate from KeyInfo, NOT pinned (pass --cert to pin the operator's certificate)"
        }
    };
    let mut verified_any = false;
    if !def.official {
        let v = sign::verify_enveloped(&doc, pinned.as_ref())
            .map_err(|e| anyhow!("{target}: enveloped {e}"))?;
        writeln!(
            out,
            "  enveloped signature: valid ({:?}, {})",
            v.alg,
            key_note(v.pinned)
        )?;
        verified_any = true;
    }
    let sig_target = sig
        .map(str::to_string)
        .unwrap_or_else(|| sig_location(target));
    match load(&sig_target)? {
        Some(sig_bytes) => {
            let v = sign::verify_detached(&doc, &sig_bytes, def.list.file_name(), pinned.as_ref())
                .map_err(|e| anyhow!("{sig_target}: detached {e}"))?;
            writeln!(
                out,
                "  detached signature {sig_target}: valid ({:?}, {})",
                v.alg,
                key_note(v.pinned)
            )?;
            verified_any = true;
        }
        None if sig.is_some() => bail!("{sig_target}: not found"),
        None => writeln!(out, "  detached signature: none at {sig_target}")?,
    }
    if !verified_any {
        bail!("{target}: no signature found; an unsigned list cannot be trusted");
    }
    Ok(out)
}
