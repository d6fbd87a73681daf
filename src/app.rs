//! Process-level flows: `init`, `serve`, and running an operation either in a running
//! server (through the admin socket) or against the registry in this process.

use crate::cli::{Cli, InitArgs, Local, ServeArgs};
use crate::consume::read::{self, Release2Mapping};
use crate::datadir;
use crate::operate::{admin, Ctx, Operation};
use crate::publish::Publisher;
use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
use crate::registry::model::Aanbiedertype;
use crate::registry::store::{Store, StoreError, Who};
use crate::serve::{self, PublishedSet, Shared};
use crate::sign::SigningKey;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwapOption;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Write command output; a closed pipe (`| head`) is not an error worth a panic. Peer
/// strings in it cannot reach the terminal as escape sequences (`terminal::output`).
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let s = crate::terminal::output(s);
    let _ = o.write_all(s.as_bytes()).and_then(|()| o.flush());
}

/// An error on stderr, as `error: …`, through `terminal::output` like every output.
fn error(msg: impl std::fmt::Display) {
    eprintln!("error: {}", crate::terminal::output(&msg.to_string()));
}

pub fn main(cli: Cli) -> ExitCode {
    let data = cli.data.clone().unwrap_or_else(datadir::default_dir);
    let operator = cli.operator.clone().unwrap_or_else(datadir::os_user);
    let result = match cli.command.local() {
        Ok(Local::Init(a)) => init(&data, &a, &operator).map(|s| out(&s)),
        Ok(Local::Serve(a)) => serve_blocking(&data, a, &operator),
        Ok(Local::Verify(a)) => verify_command(a),
        Ok(Local::Sync(a)) => return sync_command(a),
        Ok(Local::HistoryVerify {
            path,
            cert,
            trust_embedded_cert,
            max_size,
        }) => cert
            .as_deref()
            .map(crate::consume::verify::read_pinned_der)
            .transpose()
            .and_then(|pinned| {
                crate::operate::audit::verify(
                    &path,
                    pinned.as_deref(),
                    trust_embedded_cert,
                    max_size,
                )
            })
            .map(|s| out(&s)),
        Err(cmd) => {
            let who = Who {
                operator,
                reason: cli.reason.clone(),
            };
            return match (*cmd).into_operation() {
                Ok(op) => run_operation(
                    &data,
                    op,
                    who,
                    std::time::Duration::from_secs(cli.lock_wait),
                ),
                Err(e) => {
                    error(e);
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error(crate::clip::clip_lines(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

fn verify_command(a: crate::cli::VerifyArgs) -> Result<()> {
    let pinned = a
        .cert
        .as_deref()
        .map(crate::consume::verify::read_pinned_der)
        .transpose()?;
    let ca_pem =
        a.ca.as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("--ca {}", p.display())))
            .transpose()?;
    let trust = crate::consume::verify::Trust {
        pinned,
        trust_embedded: a.trust_embedded_cert,
    };
    let opts = crate::consume::fetch::Options {
        timeout: std::time::Duration::from_secs(a.timeout),
        max_bytes: a.max_size,
        ca_pem,
    };
    let report = crate::consume::verify::verify(&a.target, a.sig.as_deref(), &trust, &opts)?;
    out(&report);
    Ok(())
}

/// `stelselnode sync`: once (the exit code says how it went) or as a daemon.
fn sync_command(a: crate::cli::SyncArgs) -> ExitCode {
    use crate::consume::sync::{self, Failure, Select};
    let setup = || -> Result<sync::Options, Failure> {
        let local = |e: anyhow::Error| Failure::Local(format!("{e:#}"));
        let pinned = crate::consume::verify::read_pinned_der(&a.cert).map_err(local)?;
        let https = a.base_url.starts_with("https://");
        if !https && !a.base_url.starts_with("http://") {
            return Err(Failure::Local(format!(
                "BASE_URL '{}' must start with https:// (or http:// behind a trusted proxy)",
                crate::clip::clip(&a.base_url)
            )));
        }
        let read = |p: &std::path::PathBuf, what: &str| {
            std::fs::read_to_string(p)
                .map_err(|e| Failure::Local(format!("{what} {}: {e}", p.display())))
        };
        let tls = if https {
            let ca = a.ca.as_ref().map(|p| read(p, "--ca")).transpose()?;
            let client = match (&a.client_cert, &a.client_key) {
                (Some(c), Some(k)) => Some((read(c, "--client-cert")?, read(k, "--client-key")?)),
                _ => None,
            };
            let client = client.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
            Some(crate::consume::fetch::tls_config(ca.as_deref(), client).map_err(local)?)
        } else {
            None
        };
        let mut base = a.base_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(sync::Options {
            base_url: base,
            out: a.out.clone(),
            pinned,
            select: match (&a.release, &a.api) {
                (Some(r), _) => Select::Release(r.clone()),
                (None, Some(n)) => Select::Api(n.clone()),
                (None, None) => Select::Default,
            },
            client: sync::http::Client::new(tls, std::time::Duration::from_secs(a.timeout))?,
            max_size: a.max_size,
        })
    };
    let opts = match setup() {
        Ok(o) => o,
        Err(e) => {
            error(e);
            return ExitCode::from(2);
        }
    };
    if let Some(secs) = a.interval {
        let metrics = match &a.metrics_listen {
            None => None,
            Some(addr) => {
                let m = std::sync::Arc::new(sync::metrics::Metrics::default());
                let bound = addr
                    .parse::<std::net::SocketAddr>()
                    .ok()
                    .filter(|s| s.ip().is_loopback())
                    .ok_or_else(|| format!("--metrics-listen '{}' must be a loopback address with a port, e.g. 127.0.0.1:9465", crate::clip::clip(addr)))
                    .and_then(|s| std::net::TcpListener::bind(s).map_err(|e| format!("--metrics-listen {addr}: {e}")));
                match bound {
                    Ok(l) => {
                        if let Ok(a) = l.local_addr() {
                            println!("stelselnode sync metrics on http://{a}/metrics");
                        }
                        if let Err(e) = sync::metrics::serve(l, m.clone()) {
                            error(e);
                            return ExitCode::from(1);
                        }
                        Some(m)
                    }
                    Err(e) => {
                        error(e);
                        return ExitCode::from(2);
                    }
                }
            }
        };
        sync::daemon(
            &opts,
            std::time::Duration::from_secs(secs),
            metrics.as_deref(),
        );
    }
    match sync::once(&opts, time::OffsetDateTime::now_utc()) {
        Ok(s) => {
            out(&format!(
                "{}
",
                sync::describe(&s)
            ));
            ExitCode::SUCCESS
        }
        Err(f) => {
            error(format_args!("{f}; {} was left as it was", a.out.display()));
            ExitCode::from(f.exit_code())
        }
    }
}

/// Run an operation: in the server if one runs on this data directory (redb allows one
/// process), else here.
fn run_operation(
    data: &Path,
    mut op: Operation,
    who: Who,
    lock_wait: std::time::Duration,
) -> ExitCode {
    if let Err(e) = who.check() {
        error(format_args!("{e}; nothing was changed"));
        return ExitCode::from(2);
    }
    if let Ok(cwd) = std::env::current_dir() {
        op.absolutize(&cwd);
    }
    // The admin protocol carries text: refuse (rather than fail on) non-UTF-8 arguments.
    if let Err(e) = serde_json::to_vec(&op) {
        error(format_args!("arguments must be valid UTF-8 ({e})"));
        return ExitCode::from(2);
    }
    let publishes = op.publishes();
    // Known before a publication is sent, so a lost connection can be explained after it.
    let before = if publishes {
        admin::published_seq(data)
    } else {
        None
    };
    let req = admin::Request {
        op: Some(op.clone()),
        operator: who.operator.clone(),
        reason: who.reason.clone(),
    };
    match admin::forward(data, &req) {
        None => {}
        Some(Ok(r)) => {
            out(&r.out);
            eprint!("{}", crate::terminal::output(&r.err));
            return ExitCode::from(u8::try_from(r.code).unwrap_or(1));
        }
        Some(Err(e)) if publishes => return lost_during_publication(data, before.flatten(), &e),
        // Nothing to lose by asking the registry itself: the server went away (killed,
        // crashed) before it answered.
        Some(Err(e)) if op.reads_only() => eprintln!(
            "the server on {} did not answer ({e}); reading the registry here instead",
            admin::socket_path(data).display()
        ),
        Some(Err(e)) => {
            error(format_args!(
                "the server on {} went away before it answered ({e}); `stelselnode diff` shows whether the change is in the change set",
                admin::socket_path(data).display()
            ));
            return ExitCode::from(1);
        }
    }
    let store = match open_waiting(data, lock_wait) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            error(e);
            return ExitCode::from(1);
        }
    };
    let ctx = Ctx::local(data, &store, who);
    match op.apply(&ctx) {
        Ok(text) => {
            out(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            error(crate::clip::clip_lines(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// Open the registry; while another command holds it (one process at a time), wait for it
/// up to `bound`, saying so once.
fn open_waiting(data: &Path, bound: std::time::Duration) -> Result<Store, StoreError> {
    let path = datadir::registry_path(data);
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match Store::open(&path) {
            Err(StoreError::Locked(_)) if started.elapsed() < bound => {
                if !said {
                    eprintln!(
                        "the registry {} is in use by another stelselnode process; waiting up to {} s for it (--lock-wait)…",
                        path.display(),
                        bound.as_secs()
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

/// The server went away (or the connection broke) while it ran a publication: find out
/// whether it committed, from the server if it still answers, else from the registry file.
fn lost_during_publication(data: &Path, before: Option<u64>, e: &std::io::Error) -> ExitCode {
    eprintln!("error: the connection to the server was lost during the publication ({e}); checking whether it committed…");
    let mut now = admin::published_seq(data);
    if now.is_none() {
        // No server: the registry file is free once the server process is gone.
        for _ in 0..50 {
            if let Ok(store) = Store::open(&datadir::registry_path(data)) {
                now = store.published().ok().map(|p| p.map(|i| i.seq));
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let show = |s: Option<u64>| s.map(|n| format!("#{n}")).unwrap_or_else(|| "none".into());
    match now {
        Some(after) if after > before => {
            eprintln!(
                "the publication COMMITTED: the latest publication is now {} (it was {}); see `stelselnode history show {}`",
                show(after),
                show(before),
                after.unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Some(after) => {
            eprintln!(
                "the publication did NOT commit: the latest publication is still {}; nothing changed, run the command again",
                show(after)
            );
            ExitCode::from(1)
        }
        None => {
            eprintln!("could not tell whether it committed: neither the server nor the registry answers; run `stelselnode status` when the server is back");
            ExitCode::from(1)
        }
    }
}

/// Create the data directory. Everything is checked before anything is written.
pub fn init(data: &Path, a: &InitArgs, operator: &str) -> Result<String> {
    let mut out = String::new();
    let reg_path = datadir::registry_path(data);
    for f in [
        &reg_path,
        &data.join(datadir::KEY_FILE),
        &data.join(datadir::CERT_FILE),
    ] {
        if f.exists() {
            bail!(
                "{} already exists; this data directory is initialised",
                f.display()
            );
        }
    }
    let (key_pem, cert_pem, dev) = match (&a.key, &a.cert) {
        (Some(k), Some(c)) => {
            let k = std::fs::read_to_string(k)
                .with_context(|| format!("reading --key {}", k.display()))?;
            let c = std::fs::read_to_string(c)
                .with_context(|| format!("reading --cert {}", c.display()))?;
            SigningKey::from_pem(&k, &c)?;
            (k, c, false)
        }
        _ => {
            let (k, c) = SigningKey::generate_development()?;
            (k, c, true)
        }
    };
    let catalogue = Catalogue::parse(DEFAULT_CATALOGUE)?;
    let demo = if a.demo {
        let mut lists = Vec::new();
        for (name, bytes) in crate::demo::DEMO_LISTS {
            lists.push(read::read_list(bytes).map_err(|e| anyhow::anyhow!("demo {name}: {e}"))?);
        }
        Some(lists)
    } else {
        None
    };
    datadir::create_dir(data)?;
    datadir::write_private(&data.join(datadir::KEY_FILE), &key_pem)?;
    datadir::write_private(&data.join(datadir::CERT_FILE), &cert_pem)?;
    let store = Arc::new(Store::create(&reg_path, &catalogue)?);
    std::fmt::Write::write_fmt(&mut out, format_args!("initialised {}\n", data.display()))?;
    if dev {
        out.push_str("signing key: generated a DEVELOPMENT key and self-signed certificate (not for production; use `init --key PEM --cert PEM`)\n");
    }
    if let Some(lists) = demo {
        let map = Release2Mapping {
            interfaceversie: "1.1.0".into(),
            aanbiedertype: Aanbiedertype::ZA,
        };
        let who = crate::registry::store::Who {
            operator: operator.to_string(),
            reason: Some("demo registry".into()),
        };
        store.update(&who, |reg| {
            for l in lists {
                read::apply(reg, l, &map);
            }
            Ok(String::new())
        })?;
        let publisher = Publisher::new(store.clone(), data, None);
        let outcome =
            publisher.publish(operator, "demo registry", time::OffsetDateTime::now_utc())?;
        if let Some(p) = outcome.published {
            out.push_str(&format!(
                "published the demo registry as publication #{}\n",
                p.entry.seq
            ));
        }
    }
    Ok(out)
}

fn serve_blocking(data: &Path, a: ServeArgs, operator: &str) -> Result<()> {
    if !datadir::is_initialised(data) {
        if !a.demo {
            bail!(
                "{} is not initialised: run `stelselnode init` (or `serve --demo` for the demo registry)",
                data.display()
            );
        }
        let msg = init(
            data,
            &InitArgs {
                demo: true,
                key: None,
                cert: None,
            },
            operator,
        )?;
        out(&msg);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(serve(data, a))
}

async fn serve(data: &Path, a: ServeArgs) -> Result<()> {
    // Arguments first: a wrong TLS setup is reported before anything is opened.
    let (tls, dev_ca) = tls_settings(data, &a)?;
    let started = std::time::Instant::now();
    let store = Arc::new(Store::open(&datadir::registry_path(data))?);
    tracing::debug!("registry opened in {:?}", started.elapsed());
    // Fail at start, not at the first publication, on a broken key/certificate pair.
    let cert = crate::sign::keyring::signers(&store, data)?.active.cert_pem;
    let initial = PublishedSet::load(&store, cert)?;
    // Reading hundreds of MB left freed heap behind; give it back.
    crate::os::release_memory();
    tracing::debug!("published set loaded after {:?}", started.elapsed());
    let shared: Shared = Arc::new(ArcSwapOption::from(initial.map(Arc::new)));
    let metrics = a
        .metrics_listen
        .as_ref()
        .map(|_| Arc::new(serve::metrics::Metrics::new(tls.clone())));
    if let Some(dir) = &a.export_static {
        serve::edge::check_root(dir).context("--export-static")?;
    }
    let publisher = Arc::new(
        Publisher::new(store.clone(), data, Some(shared.clone()))
            .with_metrics(metrics.clone())
            .with_export(a.export_static.clone())
            .with_head_timing(head_timing(&a)?),
    );
    // The first publication need not decode every published Zorgaanbieder.
    publisher.warm_up();
    // Heads expire: signed now and every RESIGN_EVERY (and by every publication).
    publisher.resign_heads();
    tokio::spawn(resign_heads(publisher.clone()));
    // Installed here, not inside the task: SIGHUP's default action is to terminate.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    tokio::spawn(reload_on_sighup(hup, tls.clone()));
    crate::os::raise_file_limit();
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = admin::bind(data).context("binding the admin socket")?;

    let clients = Arc::new(serve::clients::Tracker::load(&store));
    tokio::spawn(flush_clients(clients.clone(), store.clone()));
    let handler: admin::Handler = {
        let store = store.clone();
        let publisher = publisher.clone();
        let data = data.to_path_buf();
        let clients = clients.clone();
        Arc::new(move |req: admin::Request| {
            // `status --clients` reads the store: write what is only in memory first.
            if matches!(req.op, Some(Operation::Clients(_))) {
                clients.flush(&store);
            }
            admin_request(&data, &store, &publisher, req)
        })
    };
    tokio::spawn(admin::run(admin_listener, handler));
    tokio::spawn(expire_livegangen(publisher.clone()));

    if let (Some(addr), Some(m)) = (&a.metrics_listen, &metrics) {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-listen {addr}"))?;
        let bound = l.local_addr()?;
        if !bound.ip().is_loopback() {
            bail!("--metrics-listen {addr}: metrics are served on a loopback address only (127.0.0.1 or ::1)");
        }
        println!("stelselnode metrics on http://{bound}/metrics");
        tokio::spawn(serve::run_metrics(l, m.clone(), shared.clone()));
    }
    // Signal handlers before the "listening" line: a SIGTERM sent as soon as that line is
    // seen must shut down gracefully, not hit the default action and kill the process.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("stelselnode listening on {scheme}://{addr}/");
    let base = format!("{scheme}://{addr}");
    if let Some(ca) = &dev_ca {
        println!(
            "  TLS with a DEVELOPMENT CA: curl --cacert {} https://localhost:{}/MedMij_Whitelist.xml",
            ca.display(),
            addr.port()
        );
    }
    println!("  data directory {}", data.display());
    for l in crate::registry::model::ListKind::ALL {
        println!(
            "  {base}/{}  (also ?release=1.1.2, ?api=2, and .sig)",
            l.file_name()
        );
    }
    println!("  {base}/signing-certificate.pem");
    println!("  {base}/health");
    if shared.load().is_none() {
        println!("  nothing is published yet: run `stelselnode publish -m REASON`");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let shutdown = async move {
        tokio::select! {
            _ = recv_or_pending(&mut term) => {},
            _ = recv_or_pending(&mut int) => {},
        }
    };
    let access_log = if serve::access_log::AccessLog::enabled() {
        let dropped = metrics
            .as_ref()
            .map(|m| m.access_log_dropped())
            .unwrap_or_default();
        let out = Box::new(std::io::stderr());
        Some(
            serve::access_log::AccessLog::start(out, serve::access_log::QUEUE, dropped)
                .context("starting the access log's thread")?,
        )
    } else {
        None
    };
    let opts = serve::Options {
        tls,
        clients: Some(clients.clone()),
        metrics,
        access_log,
        limits: serve::Limits {
            max_connections: a.max_connections,
            per_client: a.max_connections_per_client,
            header_timeout: std::time::Duration::from_secs(a.idle_timeout),
            send_timeout: std::time::Duration::from_secs(a.send_timeout),
            shutdown_grace: std::time::Duration::from_secs(a.shutdown_grace),
            ..serve::Limits::default()
        },
    };
    serve::run(listener, shared, store.clone(), opts, shutdown)
        .await
        .context("starting the threads that serve connections")?;
    clients.flush(&store);
    let _ = std::fs::remove_file(admin::socket_path(data));
    tracing::info!("stopped");
    Ok(())
}

/// The listener's TLS: the operator's files, the demo's development CA, or plain HTTP when
/// asked for explicitly.
fn tls_settings(
    data: &Path,
    a: &ServeArgs,
) -> Result<(
    Option<Arc<serve::tls::Reloadable>>,
    Option<std::path::PathBuf>,
)> {
    use serve::tls::{ClientAuth, ClientPolicy, Reloadable, Settings};
    if a.insecure_http {
        return Ok((None, None));
    }
    let (settings, dev_ca) = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => (
            Settings {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: a.client_ca.clone(),
            },
            None,
        ),
        _ if a.demo => {
            let (s, ca) = serve::tls::development(data)?;
            (s, Some(ca))
        }
        _ => bail!(
            "serve needs --tls-cert and --tls-key (https), or --insecure-http for plain HTTP behind a proxy that terminates TLS"
        ),
    };
    let default = a.client_auth.unwrap_or(if a.client_ca.is_some() {
        ClientAuth::Optional
    } else {
        ClientAuth::Off
    });
    let policy = ClientPolicy {
        default,
        paths: a.client_auth_path.clone(),
    };
    Ok((Some(Arc::new(Reloadable::new(settings, policy)?)), dev_ca))
}

async fn recv_or_pending(s: &mut tokio::signal::unix::Signal) {
    if s.recv().await.is_none() {
        std::future::pending::<()>().await
    }
}

/// SIGHUP re-reads the TLS certificate, key and client CA; open connections keep theirs.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    tls: Option<Arc<serve::tls::Reloadable>>,
) {
    while hup.recv().await.is_some() {
        let Some(tls) = &tls else {
            tracing::info!("SIGHUP: plain HTTP, nothing to reload");
            continue;
        };
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
            Err(e) => {
                tracing::error!("SIGHUP: TLS reload failed, the previous certificate stays: {e:#}")
            }
        }
    }
}

/// `--head-resign` and `--head-lifetime`: a head must be made again well before it expires.
fn head_timing(a: &ServeArgs) -> Result<crate::distribute::head::Timing> {
    let t = crate::distribute::head::Timing {
        resign_every: std::time::Duration::from_secs(a.head_resign),
        lifetime: std::time::Duration::from_secs(a.head_lifetime),
    };
    if t.resign_every >= t.lifetime {
        bail!(
            "--head-resign {} must be shorter than --head-lifetime {}: a head would expire before the next one is signed",
            a.head_resign,
            a.head_lifetime
        );
    }
    Ok(t)
}

/// Sign the served set's heads again on a schedule, so consumers tell a quiet week from
/// a frozen mirror (see `distribute::head`).
async fn resign_heads(publisher: Arc<Publisher>) {
    loop {
        tokio::time::sleep(publisher.heads.resign_every).await;
        let p = publisher.clone();
        let _ = tokio::task::spawn_blocking(move || p.resign_heads()).await;
    }
}

/// Client records are written every 10 s (and on `status --clients`, and at shutdown).
async fn flush_clients(clients: Arc<serve::clients::Tracker>, store: Arc<Store>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tick.tick().await;
        let (c, s) = (clients.clone(), store.clone());
        let _ = tokio::task::spawn_blocking(move || c.flush(&s)).await;
    }
}

/// A gecontroleerde livegang past its `until` ends by itself: checked every second (only
/// the small livegang table is read), applied as a normal logged publication.
async fn expire_livegangen(publisher: Arc<Publisher>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let p = publisher.clone();
        let r = tokio::task::spawn_blocking(move || {
            p.expire_livegangen(time::OffsetDateTime::now_utc())
        })
        .await;
        match r {
            Ok(Ok(ids)) if !ids.is_empty() => tracing::info!(
                "gecontroleerde livegang {} expired and was published",
                ids.join(", ")
            ),
            Ok(Err(e)) => tracing::error!("expiring gecontroleerde livegang: {e:#}"),
            _ => {}
        }
    }
}

/// One request on the admin socket: an operation, run as the operator who sent it.
fn admin_request(
    data: &Path,
    store: &Arc<Store>,
    publisher: &Publisher,
    req: admin::Request,
) -> admin::Response {
    let reply = |code: i32, out: String, err: String| admin::Response { code, out, err };
    let Some(op) = req.op else {
        return match store.published() {
            Ok(p) => reply(
                0,
                p.map(|i| i.seq.to_string()).unwrap_or_default(),
                String::new(),
            ),
            Err(e) => reply(1, String::new(), format!("error: {e}\n")),
        };
    };
    let who = Who {
        operator: req.operator,
        reason: req.reason,
    };
    if let Err(e) = who.check() {
        return reply(
            2,
            String::new(),
            format!("error: {e}; nothing was changed\n"),
        );
    }
    let ctx = Ctx::serving(data, store, publisher, who);
    match op.apply(&ctx) {
        Ok(out) => reply(0, out, String::new()),
        Err(e) => reply(
            1,
            String::new(),
            format!("error: {}\n", crate::clip::clip_lines(&format!("{e:#}"))),
        ),
    }
}
