//! The few HTTP exchanges `sync` makes, each with a deadline and a size limit, and every
//! answer it cannot trust turned into a refusal: a redirect is never followed, a TLS
//! failure is never retried in the clear, a body over its limit is not read to the end.

use super::{Failure, Reason};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

/// How `sync` talks to the Stelselnode.
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
    rt: tokio::runtime::Runtime,
    /// Body bytes received (before decompression).
    pub fetched: std::sync::atomic::AtomicU64,
}

/// One answer.
pub struct Got {
    pub status: u16,
    pub etag: Option<String>,
    /// Body as sent; `gzip` if it was sent gzip-encoded.
    pub body: Vec<u8>,
    pub gzip: bool,
}

impl Client {
    pub fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Client, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Local(format!("starting the HTTP client: {e}")))?;
        Ok(Client {
            tls,
            timeout,
            rt,
            fetched: Default::default(),
        })
    }

    /// GET `url`, accepting at most `max` body bytes. 200 and 304 are answers; a redirect
    /// is a refusal; anything else is the server being unavailable for now.
    pub fn get(
        &self,
        url: &str,
        if_none_match: Option<&str>,
        gzip: bool,
        max: u64,
    ) -> Result<Got, Failure> {
        let unavailable = |detail: String| Failure::Unavailable {
            detail,
            retry_after: None,
        };
        let uri: hyper::Uri = url.parse().map_err(|_| {
            Failure::Local(format!("'{}' is not a valid URL", crate::clip::clip(url)))
        })?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(Failure::Local(format!(
                    "'{}': only http:// and https:// URLs",
                    crate::clip::clip(url)
                )))
            }
        };
        if https != self.tls.is_some() {
            return Err(Failure::Local(
                "the base URL's scheme and the TLS settings disagree".into(),
            ));
        }
        let host = uri.host().unwrap_or("").to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let work = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| unavailable(format!("connecting to {host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => {
                    self.exchange(TokioIo::new(tcp), &uri, &host, if_none_match, gzip, max)
                        .await
                }
                Some(cfg) => {
                    let name = ServerName::try_from(host.clone()).map_err(|e| {
                        Failure::Local(format!("'{host}' is not a valid TLS server name: {e}"))
                    })?;
                    let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| {
                            Failure::refused(Reason::Tls, format!("TLS with {host}:{port}: {e}"))
                        })?;
                    self.exchange(TokioIo::new(tls), &uri, &host, if_none_match, gzip, max)
                        .await
                }
            }
        };
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, work)
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "{url}: no complete answer within {} s",
                        self.timeout.as_secs()
                    ))
                })?
        })
    }

    async fn exchange<I>(
        &self,
        io: I,
        uri: &hyper::Uri,
        host: &str,
        if_none_match: Option<&str>,
        gzip: bool,
        max: u64,
    ) -> Result<Got, Failure>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let unavailable = |detail: String| Failure::Unavailable {
            detail,
            retry_after: None,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| unavailable(format!("HTTP with {host}: {e}")))?;
        tokio::spawn(conn);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let mut req = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::USER_AGENT,
                concat!("stelselnode-sync/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(tag) = if_none_match {
            req = req.header(http::header::IF_NONE_MATCH, tag);
        }
        if gzip {
            req = req.header(http::header::ACCEPT_ENCODING, "gzip");
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| Failure::Local(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(format!("{path}: {e}")))?;
        let status = resp.status();
        let header = |n: http::header::HeaderName| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if status.is_redirection() && status != http::StatusCode::NOT_MODIFIED {
            return Err(Failure::refused(
                Reason::Redirect,
                format!(
                    "{path}: the server redirects ({status}) to '{}'; a redirect is never followed",
                    crate::clip::clip(&header(http::header::LOCATION).unwrap_or_default())
                ),
            ));
        }
        if !(status.is_success() || status == http::StatusCode::NOT_MODIFIED) {
            let retry_after = header(http::header::RETRY_AFTER).and_then(|v| v.trim().parse().ok());
            return Err(Failure::Unavailable {
                detail: format!("{path}: HTTP {status}"),
                retry_after,
            });
        }
        let etag = header(http::header::ETAG);
        let gz =
            header(http::header::CONTENT_ENCODING).is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        if let Some(n) = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) {
            if n > max {
                return Err(Failure::refused(
                    Reason::Oversize,
                    format!("{path}: the server announces {n} bytes, more than the {max} expected"),
                ));
            }
        }
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| unavailable(format!("{path}: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if (out.len() + data.len()) as u64 > max {
                    return Err(Failure::refused(
                        Reason::Oversize,
                        format!("{path}: more than the {max} bytes expected"),
                    ));
                }
                out.extend_from_slice(&data);
            }
        }
        self.fetched
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(Got {
            status: status.as_u16(),
            etag,
            body: out,
            gzip: gz,
        })
    }
}

/// Inflate a gzip body of at most `max` decompressed bytes.
pub fn gunzip(bytes: &[u8], max: u64) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Failure::refused(Reason::Hash, format!("a gzip body does not inflate: {e}"))
        })?;
    if out.len() as u64 > max {
        return Err(Failure::refused(
            Reason::Oversize,
            format!("a gzip body inflates to more than the {max} bytes expected"),
        ));
    }
    Ok(out)
}
