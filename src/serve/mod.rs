//! The public HTTP listener. Every response body is a pre-built `Bytes` from the published
//! set; nothing is rendered per request. A new publication swaps the whole set atomically.
//! `respond` decides every answer; this module only moves bytes and reads historic
//! documents on a blocking thread (never redb on an async worker).

pub mod access_log;
pub mod client_records;
pub mod clients;
pub mod distinct;
pub mod distribution;
pub mod edge;
pub mod metrics;
pub mod payload;
pub mod respond;
pub mod send_timeout;
pub mod set;
pub mod tls;
pub mod workers;

pub use set::{PublishedSet, Shared};

use crate::registry::store::Store;
use http::{header, Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use respond::{accepts_gzip, health, historic, respond, text, Answer, Ask, Resp};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tls::{ClientAuth, ClientIdentity, ClientPolicy};
use tokio::net::TcpListener;

/// How the listener behaves under load.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub per_client: usize,
    /// Time for a request's headers, and for the next request on an idle keep-alive
    /// connection; then the connection is closed.
    pub header_timeout: Duration,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a response's write may wait for the client to read (between two writes, as
    /// nginx's `send_timeout`); then the connection is closed.
    pub send_timeout: Duration,
    /// After SIGTERM: how long in-flight responses may take before the process exits.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            per_client: 64,
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Retry-After on every 503: consumers (the Ministry's among them) honour up to 60 s.
pub const RETRY_AFTER_SECONDS: u64 = 30;

fn unavailable(msg: &str) -> Resp {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut().insert(
        header::RETRY_AFTER,
        http::HeaderValue::from(RETRY_AFTER_SECONDS),
    );
    r
}

/// What the listener knows about one connection.
#[derive(Clone)]
struct Conn {
    peer: SocketAddr,
    client: Option<Arc<ClientIdentity>>,
    /// Who the client is for metrics and `status --clients`: its certificate
    /// (organisation and serial), else its address. Made once per connection.
    who: Arc<str>,
    /// Over a connection limit: every request is answered 503 and the connection closed.
    over_limit: Option<&'static str>,
}

impl Conn {
    fn who(peer: SocketAddr, client: Option<&ClientIdentity>) -> Arc<str> {
        match client {
            // On one line: the organisation is the client's to choose (`status --clients`).
            Some(c) => format!("{} #{}", crate::terminal::escape(&c.organisation), c.serial).into(),
            None => peer.ip().to_string().into(),
        }
    }
}

/// Open connections, in total and per client address.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    per_client: Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// Holds a connection's place in `Counts` until the connection ends.
struct Slot {
    counts: Arc<Counts>,
    ip: std::net::IpAddr,
}

impl Counts {
    /// Take a place; `Err` names the limit that is full (the place is taken anyway, so
    /// the 503 answer is counted too, and given back on drop).
    fn enter(
        self: &Arc<Counts>,
        ip: std::net::IpAddr,
        limits: &Limits,
    ) -> (Slot, Option<&'static str>) {
        let total = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        let mine = {
            let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let c = m.entry(ip).or_insert(0);
            *c += 1;
            *c
        };
        let over = if total > limits.max_connections {
            Some("the server has too many connections")
        } else if mine > limits.per_client {
            Some("this client has too many connections open")
        } else {
            None
        };
        (
            Slot {
                counts: self.clone(),
                ip,
            },
            over,
        )
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::SeqCst);
        let mut m = self
            .counts
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = m.get_mut(&self.ip) {
            *c -= 1;
            if *c == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Everything requests need, shared by all connections.
struct State {
    shared: Shared,
    store: Arc<Store>,
    /// The main runtime: blocking reads go to its one pool, not one per worker, and are
    /// waited for when it shuts down.
    main: tokio::runtime::Handle,
    policy: ClientPolicy,
    metrics: Option<Arc<metrics::Metrics>>,
    clients: Option<Arc<clients::Tracker>>,
    access_log: Option<Arc<access_log::AccessLog>>,
}

async fn handle(state: Arc<State>, conn: Conn, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = std::time::Instant::now();
    let mut r = answer(&state, &conn, &req).await;
    if conn.over_limit.is_some() {
        r.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    let served = Served::of(&req, &r);
    // One clock read for the client records and the access log.
    let at = std::time::SystemTime::now();
    if state.metrics.is_some() || state.clients.is_some() {
        let client = &conn.who;
        if let Some(m) = &state.metrics {
            m.request(
                served.list,
                served.release.as_ref(),
                served.status,
                served.bytes,
                client,
            );
        }
        if let (Some(t), Some(l), Some(v)) = (&state.clients, served.list, served.volgnummer) {
            if served.release() != "-" {
                let now = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                t.record(client, conn.client.is_some(), served.release(), l, v, now);
            }
        }
    }
    access_log(&state, &conn, &req, served, started, at);
    Ok(r)
}

/// What one answer served, for the access log and the metrics.
struct Served {
    list: Option<crate::registry::model::ListKind>,
    release: Option<http::HeaderValue>,
    volgnummer: Option<u64>,
    status: u16,
    bytes: u64,
}

impl Served {
    /// The release that answered, "-" for none.
    fn release(&self) -> &str {
        self.release
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }

    fn of(req: &Request<Incoming>, r: &Resp) -> Served {
        let list = respond::list_for_path(req.uri().path()).map(|(l, _)| l);
        // The header's shared bytes, not a copy: this runs for every request.
        let release = r.headers().get(respond::MEDMIJ_RELEASE).cloned();
        let status = r.status().as_u16();
        // Set by `respond` from the set that answered, for list documents only.
        let volgnummer = r
            .extensions()
            .get::<respond::ServedVolgnummer>()
            .map(|v| v.0);
        Served {
            list,
            release,
            volgnummer,
            status,
            bytes: hyper::body::Body::size_hint(r.body()).exact().unwrap_or(0),
        }
    }
}

/// One line per request (target `stelselnode::access`; silence it with
/// `RUST_LOG=info,stelselnode::access=off`): who fetched which list, release and
/// Volgnummer, with what result. Handed to the access log's own thread (`access_log`).
fn access_log(
    state: &State,
    conn: &Conn,
    req: &Request<Incoming>,
    served: Served,
    started: std::time::Instant,
    at: std::time::SystemTime,
) {
    let Some(log) = &state.access_log else {
        return;
    };
    log.log(access_log::Record {
        at,
        peer: conn.peer,
        client: conn.client.clone(),
        request: access_log::Request::Read {
            method: req.method().clone(),
            uri: req.uri().clone(),
        },
        list: served.list,
        release: served.release,
        volgnummer: served.volgnummer,
        status: served.status,
        bytes: served.bytes,
        micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    });
}

/// The status hyper answered a request it could not parse with (as its `on_error` does),
/// `None` when it answered nothing.
fn rejected_status(e: &hyper::Error) -> Option<u16> {
    // Hyper answers none of these (nor an internal parse error).
    if !e.is_parse()
        || e.is_parse_status()
        || e.is_parse_version_h2()
        || e.to_string().starts_with("internal error")
    {
        return None;
    }
    if e.is_parse_too_large() {
        // Too long a URI (414) or too large a head (431); the kinds are not public.
        return Some(if e.to_string().contains("URI") {
            414
        } else {
            431
        });
    }
    Some(400)
}

/// The access-log line (and the count) of a request hyper refused before it reached
/// `handle`, e.g. an ESC byte in the path: the operator sees it like any other.
fn rejected(state: &State, conn: &Conn, status: u16, e: &hyper::Error) {
    if let Some(m) = &state.metrics {
        m.request(None, None, status, 0, &conn.who);
    }
    if let Some(log) = &state.access_log {
        log.log(access_log::Record {
            at: std::time::SystemTime::now(),
            peer: conn.peer,
            client: conn.client.clone(),
            request: access_log::Request::Rejected(e.to_string()),
            list: None,
            release: None,
            volgnummer: None,
            status,
            bytes: 0,
            micros: 0,
        });
    }
}

async fn answer(state: &State, conn: &Conn, req: &Request<Incoming>) -> Resp {
    if let Some(why) = conn.over_limit {
        return unavailable(why);
    }
    let set = state.shared.load();
    let path = req.uri().path();
    let is_health =
        path == tls::HEALTH && (req.method() == Method::GET || req.method() == Method::HEAD);
    let mode = if is_health {
        state.policy.for_health()
    } else {
        state.policy.for_path(path)
    };
    if mode == ClientAuth::Required && conn.client.is_none() {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "{} needs a client certificate from a CA this Stelselnode accepts",
                crate::clip::clip(path)
            ),
        );
    }
    if is_health {
        return health(set.as_deref(), state.store.fault().as_deref());
    }
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.as_bytes())
    };
    let ask = Ask {
        query: req.uri().query(),
        if_none_match: header(header::IF_NONE_MATCH),
        gzip: accepts_gzip(header(header::ACCEPT_ENCODING)),
    };
    match respond(set.as_deref(), req.method(), path, ask) {
        Answer::Ready(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
            let mut r = r;
            r.headers_mut().insert(
                header::RETRY_AFTER,
                http::HeaderValue::from(RETRY_AFTER_SECONDS),
            );
            r
        }
        Answer::Ready(r) => r,
        Answer::Historic { key, ask } => {
            let store = state.store.clone();
            let found = state
                .main
                .spawn_blocking(move || store.historic_body(&key))
                .await;
            let Some(set) = set.as_deref() else {
                return unavailable("nothing has been published yet");
            };
            match found {
                Ok(Ok(bytes)) => historic(set, bytes, ask),
                Ok(Err(e)) => {
                    tracing::error!("reading {}: {e}", ask.what);
                    text(StatusCode::INTERNAL_SERVER_ERROR, "history is unavailable")
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "history is unavailable"),
            }
        }
    }
}

/// How the listener runs.
pub struct Options {
    /// `None`: plain HTTP (asked for explicitly).
    pub tls: Option<Arc<tls::Reloadable>>,
    pub limits: Limits,
    pub metrics: Option<Arc<metrics::Metrics>>,
    pub clients: Option<Arc<clients::Tracker>>,
    /// `None`: no access log (`RUST_LOG` silenced it).
    pub access_log: Option<Arc<access_log::AccessLog>>,
}

/// Accept connections until `shutdown` resolves; then stop accepting and give in-flight
/// responses `shutdown_grace` to finish. Connections are served on per-core worker threads
/// (`workers`); `Err` only when those cannot be started.
pub async fn run(
    listener: TcpListener,
    shared: Shared,
    store: Arc<Store>,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let policy = opts
        .tls
        .as_ref()
        .map(|t| t.policy.clone())
        .unwrap_or_else(ClientPolicy::off);
    let state = Arc::new(State {
        shared,
        store,
        main: tokio::runtime::Handle::current(),
        policy,
        metrics: opts.metrics.clone(),
        clients: opts.clients.clone(),
        access_log: opts.access_log.clone(),
    });
    let counts = Arc::new(Counts::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limits = opts.limits.clone();
    let workers = workers::Workers::start(crate::cores::count())?;
    if let Some(m) = &opts.metrics {
        m.count_connections(workers.counters());
    }
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
        let (slot, over_limit) = counts.enter(peer.ip(), &limits);
        let state = state.clone();
        let limits = limits.clone();
        let tls = opts.tls.as_ref().map(|t| t.config.load_full());
        let watcher = graceful.watcher();
        let on_timeout = opts
            .metrics
            .clone()
            .map(|m| m as Arc<dyn send_timeout::OnTimeout>);
        // Taken off this runtime's reactor here, put on the worker's inside its task.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("connection from {peer}: {e}");
                continue;
            }
        };
        workers.spawn(async move {
            let _slot = slot;
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => send_timeout::SendTimeout::new(s, limits.send_timeout, peer, on_timeout),
                Err(e) => {
                    tracing::debug!("connection from {peer}: {e}");
                    return;
                }
            };
            connection(state, stream, peer, tls, &limits, over_limit, watcher).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections finished"),
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open after {:?}; exiting", limits.shutdown_grace)
        }
    }
    // Closes what is still open after the grace period; joining threads blocks.
    let _ = tokio::task::spawn_blocking(move || drop(workers)).await;
    if let Some(log) = &opts.access_log {
        // Every answered request's line is written before the process exits.
        let log = log.clone();
        let _ = tokio::task::spawn_blocking(move || log.close()).await;
    }
    Ok(())
}

/// Serve one accepted connection on a worker: TLS handshake (when configured), then HTTP/1.1
/// until it closes; requests hyper refuses are logged.
async fn connection(
    state: Arc<State>,
    stream: send_timeout::SendTimeout<tokio::net::TcpStream>,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    over_limit: Option<&'static str>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(64 * 1024)
            .keep_alive(over_limit.is_none());
        b
    };
    let result = match tls {
        None => {
            let conn = Conn {
                peer,
                who: Conn::who(peer, None),
                client: None,
                over_limit,
            };
            let svc = {
                let (state, conn) = (state.clone(), conn.clone());
                service_fn(move |req| handle(state.clone(), conn.clone(), req))
            };
            let r = watcher
                .watch(builder.serve_connection(TokioIo::new(stream), svc))
                .await;
            (r, conn)
        }
        Some(cfg) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            let tls_stream =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {peer}: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake with {peer}: timed out");
                        return;
                    }
                };
            let client = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(ClientIdentity::of)
                .map(Arc::new);
            let conn = Conn {
                peer,
                who: Conn::who(peer, client.as_deref()),
                client,
                over_limit,
            };
            let svc = {
                let (state, conn) = (state.clone(), conn.clone());
                service_fn(move |req| handle(state.clone(), conn.clone(), req))
            };
            let r = watcher
                .watch(builder.serve_connection(TokioIo::new(tls_stream), svc))
                .await;
            (r, conn)
        }
    };
    if let (Err(e), conn) = result {
        match rejected_status(&e) {
            Some(status) => rejected(&state, &conn, status, &e),
            None => tracing::debug!("connection from {peer}: {e}"),
        }
    }
}

/// Serve `GET /metrics` on the (loopback) metrics listener until the process ends.
pub async fn run_metrics(listener: TcpListener, metrics: Arc<metrics::Metrics>, shared: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let shared = shared.clone();
                async move {
                    let r: Resp = if req.uri().path() == "/metrics" && req.method() == Method::GET {
                        let body = metrics.encode(shared.load().as_deref());
                        let mut r =
                            http::Response::new(payload::Payload::bytes(bytes::Bytes::from(body)));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        text(
                            StatusCode::NOT_FOUND,
                            "this listener serves GET /metrics only",
                        )
                    };
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
