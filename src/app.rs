//! Process-level flows: `init`, `serve`, and dispatching other commands either to a running
//! server (admin socket) or to the registry in this process.

use crate::cli::{self, Cli, Command, InitArgs, ServeArgs};
use crate::consume::read::{self, Release2Mapping};
use crate::datadir;
use crate::operate::admin;
use crate::publish;
use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
use crate::registry::model::Aanbiedertype;
use crate::registry::store::Store;
use crate::serve::{self, PublishedSet, Shared};
use crate::sign::SigningKey;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwapOption;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The demo registry (project-schema lists, the richest form), embedded so `serve --demo`
/// needs nothing but the binary.
pub const DEMO_LISTS: &[(&str, &[u8])] = &[
    (
        "gegevensdienstnamenlijst.xml",
        include_bytes!("../data/demo/gegevensdienstnamenlijst.xml"),
    ),
    (
        "zorgaanbiederslijst.xml",
        include_bytes!("../data/demo/zorgaanbiederslijst.xml"),
    ),
    (
        "oauthclientlist.xml",
        include_bytes!("../data/demo/oauthclientlist.xml"),
    ),
    (
        "whitelist.xml",
        include_bytes!("../data/demo/whitelist.xml"),
    ),
];

pub fn main(cli: Cli) -> ExitCode {
    let data = cli.data.clone().unwrap_or_else(datadir::default_dir);
    let operator = cli.operator.clone().unwrap_or_else(datadir::os_user);
    let result = match cli.command {
        Command::Init(a) => init(&data, &a, &operator).map(|s| print!("{s}")),
        Command::Serve(a) => serve_blocking(&data, a, &operator),
        Command::Verify(a) => verify_command(a),
        Command::History(cli::HistoryCmd::Verify {
            path,
            cert,
            trust_embedded_cert,
            max_size,
        }) => cert
            .as_deref()
            .map(crate::consume::verify::read_pinned)
            .transpose()
            .and_then(|pinned| {
                crate::operate::history::verify(
                    &path,
                    pinned.as_ref(),
                    trust_embedded_cert,
                    max_size,
                )
            })
            .map(|s| print!("{s}")),
        cmd => {
            let who = crate::registry::store::Who {
                operator,
                reason: cli.reason.clone(),
            };
            return registry_command(&data, cmd, who);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::clip::clip_lines(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

fn verify_command(a: cli::VerifyArgs) -> Result<()> {
    let pinned = a
        .cert
        .as_deref()
        .map(crate::consume::verify::read_pinned)
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
    let out = crate::consume::verify::verify(&a.target, a.sig.as_deref(), &trust, &opts)?;
    print!("{out}");
    Ok(())
}

fn registry_command(data: &Path, cmd: Command, who: crate::registry::store::Who) -> ExitCode {
    // The admin protocol carries text; refuse (rather than panic on) non-UTF-8 arguments.
    let argv: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(argv) = argv else {
        eprintln!("error: arguments must be valid UTF-8");
        return ExitCode::from(2);
    };
    if let Err(e) = crate::registry::store::check_recorded(&who.operator, who.reason.as_deref()) {
        eprintln!("error: {e}; nothing was changed");
        return ExitCode::from(2);
    }
    let publishes = cmd.publishes();
    // Known before a publication is sent, so a lost connection can be explained after it.
    let before = if publishes {
        admin::published_seq(data)
    } else {
        None
    };
    let req = admin::Request {
        argv,
        operator: who.operator.clone(),
        cwd: std::env::current_dir().unwrap_or_default(),
        probe: false,
    };
    if let Some(resp) = admin::forward(data, &req) {
        return match resp {
            Ok(r) => {
                print!("{}", r.out);
                eprint!("{}", r.err);
                ExitCode::from(u8::try_from(r.code).unwrap_or(1))
            }
            Err(e) if publishes => lost_during_publication(data, before.flatten(), &e),
            Err(e) => {
                eprintln!(
                    "error: talking to the server on {}: {e}; run `stelselnode status` to see what took effect",
                    admin::socket_path(data).display()
                );
                ExitCode::from(1)
            }
        };
    }
    let store = match Store::open(&datadir::registry_path(data)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let ctx = cli::Ctx {
        data,
        store: &store,
        who,
    };
    let mut out = String::new();
    let r = cli::execute(&ctx, cmd, &mut out);
    print!("{out}");
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::clip::clip_lines(&format!("{e:#}")));
            ExitCode::from(1)
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
        for (name, bytes) in DEMO_LISTS {
            lists.push(read::read_list(bytes).map_err(|e| anyhow::anyhow!("demo {name}: {e}"))?);
        }
        Some(lists)
    } else {
        None
    };
    datadir::create_dir(data)?;
    datadir::write_private(&data.join(datadir::KEY_FILE), &key_pem)?;
    datadir::write_private(&data.join(datadir::CERT_FILE), &cert_pem)?;
    let store = Store::create(&reg_path, &catalogue)?;
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
        let key = datadir::load_signing_key(data)?;
        let p = publish::publish(
            &store,
            &key,
            operator,
            "demo registry",
            time::OffsetDateTime::now_utc(),
        )?;
        if let Some(p) = p {
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
        print!("{msg}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(serve(data, a))
}

async fn serve(data: &Path, a: ServeArgs) -> Result<()> {
    let store = Arc::new(Store::open(&datadir::registry_path(data))?);
    let cert = datadir::certificate_pem(data)?;
    // Fail at start, not at the first publication, on a broken key/certificate pair.
    let key = Arc::new(datadir::load_signing_key(data)?);
    let initial = PublishedSet::load(&store, cert.clone())?;
    let shared: Shared = Arc::new(ArcSwapOption::from(initial.map(Arc::new)));
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = admin::bind(data).context("binding the admin socket")?;

    let handler: admin::Handler = {
        let store = store.clone();
        let shared = shared.clone();
        let data = data.to_path_buf();
        let cert = cert.clone();
        Arc::new(move |req: admin::Request| admin_command(&store, &shared, &data, &cert, req))
    };
    tokio::spawn(admin::run(admin_listener, handler));
    tokio::spawn(expire_livegangen(
        store.clone(),
        key,
        shared.clone(),
        cert.clone(),
    ));

    println!("stelselnode listening on http://{addr}/");
    let base = format!("http://{addr}");
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

    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    };
    serve::run(listener, shared, store.clone(), shutdown).await;
    let _ = std::fs::remove_file(admin::socket_path(data));
    tracing::info!("stopped");
    Ok(())
}

/// A gecontroleerde livegang past its `until` ends by itself: checked every second (only
/// the small livegang table is read), applied as a normal logged publication.
async fn expire_livegangen(store: Arc<Store>, key: Arc<SigningKey>, shared: Shared, cert: String) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (s, k) = (store.clone(), key.clone());
        let r = tokio::task::spawn_blocking(move || {
            crate::registry::livegang::expire_due(&s, &k, time::OffsetDateTime::now_utc())
        })
        .await;
        match r {
            Ok(Ok(ids)) if !ids.is_empty() => {
                tracing::info!(
                    "gecontroleerde livegang {} expired and was published",
                    ids.join(", ")
                );
                reload(&store, &shared, &cert);
            }
            Ok(Err(e)) => tracing::error!("expiring gecontroleerde livegang: {e:#}"),
            _ => {}
        }
    }
}

/// Swap in the published set if the store has a newer publication than the one served.
fn reload(store: &Store, shared: &Shared, cert: &str) {
    let current = shared.load().as_ref().map(|s| s.index.seq);
    if let Ok(Some(idx)) = store.published() {
        if Some(idx.seq) != current {
            match PublishedSet::load(store, cert.to_string()) {
                Ok(set) => shared.store(set.map(Arc::new)),
                Err(e) => tracing::error!(
                    "published set could not be loaded; keeping the previous one: {e}"
                ),
            }
        }
    }
}

fn admin_command(
    store: &Store,
    shared: &Shared,
    data: &Path,
    cert: &str,
    req: admin::Request,
) -> admin::Response {
    if req.probe {
        return match store.published() {
            Ok(p) => admin::Response {
                code: 0,
                out: p.map(|i| i.seq.to_string()).unwrap_or_default(),
                err: String::new(),
            },
            Err(e) => admin::Response {
                code: 1,
                out: String::new(),
                err: format!("error: {e}\n"),
            },
        };
    }
    let mut argv = vec!["stelselnode".to_string()];
    argv.extend(req.argv);
    let parsed = match <Cli as clap::Parser>::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            return admin::Response {
                code: 2,
                out: String::new(),
                err: e.to_string(),
            }
        }
    };
    let reason = parsed.reason.clone();
    let mut cmd = parsed.command;
    if cmd.is_local_only() {
        return admin::Response {
            code: 2,
            out: String::new(),
            err: "this command cannot run through the admin socket\n".into(),
        };
    }
    cmd.absolutize(&req.cwd);
    if let Err(e) = crate::registry::store::check_recorded(&req.operator, reason.as_deref()) {
        return admin::Response {
            code: 2,
            out: String::new(),
            err: format!("error: {e}; nothing was changed\n"),
        };
    }
    let ctx = cli::Ctx {
        data,
        store,
        who: crate::registry::store::Who {
            operator: req.operator,
            reason,
        },
    };
    let mut out = String::new();
    let result = cli::execute(&ctx, cmd, &mut out);
    // A publication (or anything else that moved the published index) is swapped in now.
    reload(store, shared, cert);
    match result {
        Ok(()) => admin::Response {
            code: 0,
            out,
            err: String::new(),
        },
        Err(e) => admin::Response {
            code: 1,
            out,
            err: format!("error: {}\n", crate::clip::clip_lines(&format!("{e:#}"))),
        },
    }
}
