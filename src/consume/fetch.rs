//! Fetching a served list as a consumer does (`verify URL`): http or https (rustls, ring
//! provider), one total deadline for the whole exchange and a maximum body size, so a server
//! that drips its body or sends gigabytes cannot hang or exhaust the verifier.

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;

/// Limits and trust for one fetch.
pub struct Options {
    /// Deadline for connect, TLS handshake, headers and body together.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_bytes: u64,
    /// PEM file with the CA certificates to trust for https; `None`: the system's roots.
    pub ca_pem: Option<String>,
}

/// GET `url`; `Ok(None)` on 404. Other non-2xx answers and a Content-Type other than
/// `application/xml` are errors.
pub fn get(url: &str, opts: &Options) -> Result<Option<Vec<u8>>> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("'{}' is not a valid URL", crate::clip::clip(url)))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!(
            "'{}': only http:// and https:// URLs can be fetched",
            crate::clip::clip(url)
        ),
    };
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("'{url}' has no host"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https {
        Some(tls_config(opts.ca_pem.as_deref(), None)?)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let secs = opts.timeout.as_secs_f64();
    rt.block_on(async {
        tokio::time::timeout(
            opts.timeout,
            exchange(&uri, &host, port, tls, opts.max_bytes),
        )
        .await
        .map_err(|_| anyhow!("{url}: no complete answer within {secs} s (--timeout); refused"))?
    })
    .with_context(|| format!("fetching {url}"))
}

/// A client TLS configuration: the CAs in `ca_pem` (else the system's roots), and a client
/// certificate and key (PEM) to present when asked, if given.
pub fn tls_config(
    ca_pem: Option<&str>,
    client: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow!("--ca: {e}"))?;
            if certs.is_empty() {
                bail!("--ca: no PEM certificate found");
            }
            for c in certs {
                roots.add(c).map_err(|e| anyhow!("--ca: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // Unusable roots in the system store are skipped, as browsers do.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                bail!("no system CA certificates found (install ca-certificates) and no --ca given; an https server cannot be authenticated");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow!("TLS configuration: {e}"))?
        .with_root_certificates(roots);
    let cfg = match client {
        None => cfg.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow!("--client-cert: {e}"))?;
            if certs.is_empty() {
                bail!("--client-cert: no PEM certificate found");
            }
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| anyhow!("--client-key: {e}"))?;
            cfg.with_client_auth_cert(certs, key)
                .map_err(|e| anyhow!("--client-cert/--client-key: {e}"))?
        }
    };
    Ok(Arc::new(cfg))
}

async fn exchange(
    uri: &hyper::Uri,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => request(TokioIo::new(tcp), uri, host, max_bytes).await,
        Some(cfg) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| anyhow!("'{host}' is not a valid TLS server name: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {host}:{port}"))?;
            request(TokioIo::new(stream), uri, host, max_bytes).await
        }
    }
}

async fn request<I>(io: I, uri: &hyper::Uri, host: &str, max_bytes: u64) -> Result<Option<Vec<u8>>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(
            http::header::USER_AGENT,
            concat!("stelselnode-verify/", env!("CARGO_PKG_VERSION")),
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    if status == http::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let announced = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced {
        if n > max_bytes {
            bail!("the server announces {n} bytes, more than the maximum of {max_bytes} bytes (--max-size); refused without reading it");
        }
    }
    let ct = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut body = resp.into_body();
    let mut out = Vec::with_capacity(announced.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (out.len() + data.len()) as u64 > max_bytes {
                bail!("the body is larger than the maximum of {max_bytes} bytes (--max-size); refused");
            }
            out.extend_from_slice(&data);
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&out[..out.len().min(300)]).into_owned();
        // The server's words, on one line: they reach the operator's terminal.
        bail!("HTTP {status}: {}", crate::clip::clip(text.trim()));
    }
    if ct != "application/xml" {
        bail!(
            "Content-Type is '{}', expected exactly application/xml",
            crate::clip::clip(&ct)
        );
    }
    Ok(Some(out))
}
