//! The public HTTP listener. Every response body is a pre-built `Bytes` from the published
//! set; nothing is rendered per request. A new publication swaps the whole set atomically.
//! `respond` decides every answer; this module only moves bytes and reads historic
//! documents on a blocking thread (never redb on an async worker).

pub mod respond;
pub mod set;

pub use set::{PublishedSet, Shared};

use crate::registry::store::Store;
use http::{header, Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use respond::{health, historic, respond, text, Answer, Resp};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

async fn handle(
    shared: Shared,
    store: Arc<Store>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let set = shared.load();
    if req.uri().path() == "/health"
        && (req.method() == Method::GET || req.method() == Method::HEAD)
    {
        return Ok(health(set.as_deref(), store.fault().as_deref()));
    }
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .map(|v| v.as_bytes().to_vec());
    match respond(
        set.as_deref(),
        req.method(),
        req.uri().path(),
        req.uri().query(),
        inm.as_deref(),
    ) {
        Answer::Ready(r) => Ok(r),
        Answer::Historic {
            key,
            etag,
            head,
            release,
            what,
        } => {
            let found = tokio::task::spawn_blocking(move || store.document(&key)).await;
            let Some(set) = set.as_deref() else {
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "nothing has been published yet",
                ));
            };
            Ok(match found {
                Ok(Ok(bytes)) => historic(set, bytes, etag, head, &release, &what),
                Ok(Err(e)) => {
                    tracing::error!("reading {what}: {e}");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "history is unavailable")
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "history is unavailable"),
            })
        }
    }
}

/// Accept connections until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    shared: Shared,
    store: Arc<Store>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), store.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}
