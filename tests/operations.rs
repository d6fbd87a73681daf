//! Operations in process, mini-redis style: an [`Operation`] is plain data with `apply`,
//! so change sets, imports, releases and gecontroleerde livegang are tested against a
//! temporary data directory without a binary or a server (milliseconds each). The
//! commands are parsed by the real clap definitions and turned into operations by
//! `cli`, as the binary does; the subprocess suites keep what needs the real process
//! (signals, TLS, crashes, the binary's interface).

use clap::Parser;
use std::path::Path;
use std::sync::Arc;
use stelselnode::cli::{Cli, InitArgs};
use stelselnode::operate::{Ctx, Operation};
use stelselnode::registry::store::{Store, Who};

struct Env {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    store: Arc<Store>,
}

/// A demo data directory, initialised as `init --demo` does.
fn demo() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = InitArgs {
        demo: true,
        key: None,
        cert: None,
    };
    stelselnode::app::init(&data, &args, "test-operator").unwrap();
    let store = Arc::new(Store::open(&stelselnode::datadir::registry_path(&data)).unwrap());
    Env {
        _dir: dir,
        data,
        store,
    }
}

/// The operation `args` (a command line without the program name) asks for.
fn parse(args: &[&str]) -> Operation {
    let cli = Cli::try_parse_from(std::iter::once("stelselnode").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    cli.command.into_operation().unwrap()
}

impl Env {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let who = Who {
            operator: "test-operator".into(),
            reason: Some("test".into()),
        };
        let ctx = Ctx::local(&self.data, &self.store, who);
        parse(args).apply(&ctx).map_err(|e| format!("{e:#}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(&self, args: &[&str]) -> String {
        match self.run(args) {
            Ok(out) => panic!("{args:?} succeeded: {out}"),
            Err(e) => e,
        }
    }
}

#[test]
fn a_change_set_is_pending_until_published_and_discard_drops_it() {
    let env = demo();
    env.ok(&["publish", "--message", "first"]);
    let before = env.ok(&["dump"]);
    env.ok(&["whitelist", "add", "nieuw.knooppunt.nl"]);
    env.ok(&[
        "gegevensdienst",
        "update",
        "3",
        "--weergavenaam",
        "Medicatie (alle)",
    ]);
    let diff = env.ok(&["diff"]);
    assert!(diff.contains("+ nieuw.knooppunt.nl"), "{diff}");
    assert!(diff.contains("+ Weergavenaam Medicatie (alle)"), "{diff}");
    assert!(
        env.ok(&["status"]).contains("Whitelist"),
        "status names the list"
    );
    env.ok(&["discard"]);
    assert_eq!(env.ok(&["dump"]), before);
    assert!(!env.ok(&["diff"]).contains("nieuw.knooppunt.nl"));
    // Made again and published: the Whitelist's Volgnummer rises, nothing stays pending.
    env.ok(&["whitelist", "add", "nieuw.knooppunt.nl"]);
    let published = env.ok(&["publish", "--message", "RFC-12"]);
    assert!(published.contains("Whitelist"), "{published}");
    assert!(!env.ok(&["diff"]).contains("nieuw.knooppunt.nl"));
    let index = env.store.published().unwrap().unwrap();
    assert_eq!(index.seq, 2);
}

#[test]
fn a_broken_rule_is_refused_and_nothing_is_written() {
    let env = demo();
    let before = env.ok(&["dump"]);
    let e = env.err(&["whitelist", "add", "not a hostname"]);
    assert!(e.contains("not a hostname"), "{e}");
    let e = env.err(&["gegevensdienst", "remove", "1"]);
    assert!(e.contains('1'), "{e}");
    assert_eq!(env.ok(&["dump"]), before);
}

#[test]
fn an_import_dry_run_shows_its_diff_and_writes_nothing() {
    let env = demo();
    let out = env.data.join("export");
    env.ok(&["publish", "--message", "first"]);
    env.ok(&[
        "export",
        "--release",
        "2.0.0",
        "--out",
        out.to_str().unwrap(),
    ]);
    let whitelist = out.join("MedMij_Whitelist.xml");
    let before = env.ok(&["dump"]);
    env.ok(&["whitelist", "add", "extra.knooppunt.nl"]);
    let shown = env.ok(&["import", whitelist.to_str().unwrap(), "--dry-run"]);
    assert!(shown.contains("extra.knooppunt.nl"), "{shown}");
    assert!(env.ok(&["dump"]).contains("extra.knooppunt.nl"));
    // The real import makes the working registry what the file holds.
    env.ok(&["import", whitelist.to_str().unwrap()]);
    assert_eq!(env.ok(&["dump"]), before);
}

#[test]
fn a_release_is_added_and_its_lifecycle_rules_hold() {
    let env = demo();
    env.ok(&["publish", "--message", "first"]);
    let listed = env.ok(&["release", "list"]);
    assert!(listed.contains("2.0.0"), "{listed}");
    let add = [
        "release",
        "add",
        "9.9.9",
        "--interfaceversie",
        "1.1.0",
        "--zorgaanbiederslijst",
        "release2",
        "--oauthclientlist",
        "release2",
        "--whitelist",
        "release2",
        "--gegevensdienstnamenlijst",
        "release1",
    ];
    let added = env.ok(&add);
    assert!(added.contains("9.9.9"), "{added}");
    assert!(env.ok(&["release", "list"]).contains("9.9.9"));
    // The same id twice is refused.
    let e = env.err(&add);
    assert!(e.contains("9.9.9"), "{e}");
    // A second spelling of a release id is refused: `?api=1` must not pick `1.1.03`.
    for id in ["1.1.03", "0000.0000.0000"] {
        let mut other = add;
        other[2] = id;
        let e = env.err(&other);
        assert!(e.contains(id), "{e}");
    }
    assert!(!env.ok(&["release", "list"]).contains("1.1.03"));
    // The default release cannot be withdrawn.
    let default = env.store.catalogue().unwrap().default.clone();
    let e = env.err(&["release", "set-status", &default, "ingetrokken"]);
    assert!(e.contains(&default), "{e}");
}

#[test]
fn a_gecontroleerde_livegang_starts_and_ends() {
    let env = demo();
    env.ok(&["publish", "--message", "first"]);
    let (gd, za, oc) = ("4", "labnoord@medmij", "app.gezondheidskluis.nl");
    let until = "2099-01-01T00:00:00Z";
    let started = env.run(&[
        "livegang",
        "start",
        "--gegevensdienst",
        gd,
        "--zorgaanbieder",
        za,
        "--oauthclient",
        oc,
        "--until",
        until,
    ]);
    let out = started.unwrap_or_else(|e| panic!("livegang start: {e}"));
    let list = env.ok(&["livegang", "list"]);
    assert!(list.contains(za), "{out}\n{list}");
    let id = env
        .store
        .livegangen()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    env.ok(&["livegang", "end", &id]);
    assert!(env.store.livegangen().unwrap().is_empty());
}

#[test]
fn operations_need_no_binary_and_take_milliseconds() {
    let t = std::time::Instant::now();
    let env = demo();
    env.ok(&["whitelist", "add", "snel.knooppunt.nl"]);
    env.ok(&["whitelist", "remove", "snel.knooppunt.nl"]);
    // Not a timing test: a sanity bound that only a subprocess or a hang would break.
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
    assert!(Path::new(&env.data).join("registry.redb").exists());
}

/// A client certificate's organisation is the client's to choose. One with a newline, an
/// OSC sequence and a right-to-left override must not forge a line in `status --clients`
/// or reach the terminal as an escape, in text or in JSON.
#[test]
fn status_clients_escapes_what_a_client_chose() {
    let env = demo();
    env.ok(&["publish", "--message", "first"]);
    let forged = "PGO\nFAKE 127.0.0.9  last seen 2099-01-01\u{1b}]0;owned\u{7}\u{202e}lanruoj #0a";
    let t = stelselnode::serve::clients::Tracker::default();
    t.record(
        forged,
        true,
        "1.1.2",
        stelselnode::registry::model::ListKind::Whitelist,
        1,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    t.flush(&env.store);
    let text = env.ok(&["status", "--clients"]);
    assert!(!text.lines().any(|l| l.starts_with("FAKE")), "{text}");
    for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!text.contains(bad), "{bad:?} in {text}");
    }
    assert!(text.contains("PGO\\nFAKE 127.0.0.9"), "{text}");
    let json = env.ok(&["status", "--clients", "--json"]);
    assert!(
        !json.contains('\u{202e}') && !json.contains('\u{1b}'),
        "{json}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["clients"][0]["client"], forged);
}

/// A publication records what its rule check found valid, by content: the next one checks
/// field by field only the Zorgaanbieders that changed since (`publish::pipeline::plan`).
/// The record follows the published Zorgaanbieders and Gegevensdiensten and names the
/// rules, so a stale one (another content, other rules) is never taken for this one.
#[test]
fn a_publication_records_what_its_rule_check_found_valid() {
    use stelselnode::publish::cache::rules_checked;
    use stelselnode::registry::model::ListKind;
    let env = demo();
    let published_hash = |list: ListKind| {
        env.store.published().unwrap().unwrap().lists[&list]
            .content_sha256
            .clone()
    };
    env.ok(&["publish", "--message", "first"]);
    let first = rules_checked(&env.store).unwrap().expect("recorded");
    assert_eq!(first.rules, stelselnode::registry::rules::fingerprint());
    assert_eq!(
        first.zorgaanbieders,
        published_hash(ListKind::Zorgaanbiederslijst)
    );
    let ids = || {
        stelselnode::registry::rules::gegevensdienst_ids(&env.store.registry().unwrap()).unwrap()
    };
    assert_eq!(first.gegevensdiensten, ids());
    env.ok(&[
        "zorgaanbieder",
        "remove",
        "radiologencentraalflevoland@medmij",
    ]);
    env.ok(&["publish", "--message", "one changed"]);
    let second = rules_checked(&env.store).unwrap().expect("recorded");
    assert_ne!(second.zorgaanbieders, first.zorgaanbieders);
    assert_eq!(
        second.zorgaanbieders,
        published_hash(ListKind::Zorgaanbiederslijst)
    );
    assert_eq!(second.gegevensdiensten, first.gegevensdiensten);
    // A Weergavenaam changes nothing a Zorgaanbieder's rules read: the record stands.
    env.ok(&[
        "gegevensdienst",
        "update",
        "4",
        "--weergavenaam",
        "Andere naam",
    ]);
    env.ok(&["publish", "--message", "a Weergavenaam"]);
    assert_eq!(rules_checked(&env.store).unwrap(), Some(second.clone()));
    assert_eq!(second.gegevensdiensten, ids());

    // A record made by other rules (an older binary's) is not vouched for by a
    // publication that did not read the Zorgaanbieders (only the Whitelist changed): it
    // stays as it was, so the next publication that reads them checks every one.
    let older = stelselnode::publish::cache::RulesChecked {
        rules: "rules of an older binary".into(),
        ..second.clone()
    };
    {
        let guard = env.store.lock_publications();
        let caches = stelselnode::publish::cache::Caches {
            rules_checked: Some(older.clone()),
            ..Default::default()
        };
        stelselnode::publish::cache::record(&env.store, &guard, caches).unwrap();
    }
    env.ok(&["whitelist", "add", "nieuw.knooppunt.nl"]);
    env.ok(&["publish", "--message", "only the Whitelist"]);
    assert_eq!(rules_checked(&env.store).unwrap(), Some(older));
    env.ok(&["zorgaanbieder", "remove", "ziekenhuisdeblauwebrug@medmij"]);
    env.ok(&["publish", "--message", "one more removed"]);
    let third = rules_checked(&env.store).unwrap().expect("recorded");
    assert_eq!(third.rules, stelselnode::registry::rules::fingerprint());
    assert_eq!(
        third.zorgaanbieders,
        published_hash(ListKind::Zorgaanbiederslijst)
    );
}

/// What a server keeps for its next publication (the published Zorgaanbieders, decoded)
/// gives that publication the working registry a full read gives, reading only the rows
/// that differ; kept from before another publication, it is not used.
#[test]
fn kept_zorgaanbieders_give_the_working_registry_while_nothing_else_was_published() {
    let env = demo();
    let warm = env.store.warm().unwrap().expect("init publishes");
    let seq = warm.seq;
    env.ok(&["zorgaanbieder", "remove", "ziekenhuisdeblauwebrug@medmij"]);
    env.ok(&[
        "zorgaanbieder",
        "remove",
        "radiologencentraalflevoland@medmij",
    ]);
    let cold = env.store.registry().unwrap();
    let guard = env.store.lock_publications();
    let base = env.store.working_base(&guard, Some(warm)).unwrap();
    assert!(base.warmed);
    assert_eq!(base.pending.zorgaanbieders.len(), 2);
    assert!(base.registry.zorgaanbieders == cold.zorgaanbieders);
    // Kept under another publication's number: every row is read.
    let stale = stelselnode::registry::store::Warm {
        seq: seq + 1,
        zorgaanbieders: Default::default(),
    };
    let base = env.store.working_base(&guard, Some(stale)).unwrap();
    assert!(!base.warmed && base.registry.zorgaanbieders == cold.zorgaanbieders);
    drop(guard);
    env.ok(&["publish", "-m", "next"]);
    let now = env.store.warm().unwrap().unwrap();
    assert!(now.seq > seq && now.zorgaanbieders == cold.zorgaanbieders);
}
