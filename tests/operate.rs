//! Operating the stelsel against a running server: change sets, concurrent edits,
//! gecontroleerde livegang, release lifecycle, history and audit exports.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// `livegang start` of one Gegevensdienst for one Zorgaanbieder and one client.
fn livegang_start<'a>(
    gegevensdienst: &'a str,
    zorgaanbieder: &'a str,
    oauthclient: &'a str,
    until: &'a str,
    copy_id: Option<&'a str>,
) -> Vec<&'a str> {
    let mut v = vec![
        "livegang",
        "start",
        "--gegevensdienst",
        gegevensdienst,
        "--zorgaanbieder",
        zorgaanbieder,
        "--oauthclient",
        oauthclient,
        "--until",
        until,
    ];
    if let Some(c) = copy_id {
        v.extend(["--copy-id", c]);
    }
    v
}

/// An RFC 3339 time `s` seconds from now.
fn seconds_from_now(s: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(s))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn change_set_diff_discard_and_publish() {
    let (_dir, data, server) = demo_server();
    let before = ok(&data, &["dump"]);
    let edit = || {
        ok(
            &data,
            &[
                "whitelist",
                "add",
                "nieuw.knooppunt.nl",
                "--reason",
                "RFC-12 nieuwe node",
            ],
        );
        ok(
            &data,
            &[
                "gegevensdienst",
                "update",
                "3",
                "--weergavenaam",
                "Medicatie (alle)",
            ],
        );
    };
    edit();
    let diff = ok(&data, &["diff"]);
    assert!(
        diff.contains("Whitelist release2: 1 added, 0 removed, 0 changed"),
        "{diff}"
    );
    assert!(diff.contains("+ nieuw.knooppunt.nl"), "{diff}");
    assert!(
        diff.contains("Gegevensdienstnamenlijst release1: 0 added, 0 removed, 1 changed"),
        "{diff}"
    );
    assert!(
        diff.contains("- Weergavenaam Medicatiegegevens")
            && diff.contains("+ Weergavenaam Medicatie (alle)"),
        "{diff}"
    );
    assert!(
        !diff.contains("Zorgaanbiederslijst") && !diff.contains("OAuthclientlist"),
        "{diff}"
    );
    assert!(
        diff.contains("by test-operator") && diff.contains("(RFC-12 nieuwe node)"),
        "{diff}"
    );

    ok(&data, &["discard"]);
    assert!(ok(&data, &["diff"]).contains("no pending changes"));
    assert_eq!(ok(&data, &["dump"]), before);

    edit();
    let out = ok(&data, &["publish", "-m", "wijzigingen week 47"]);
    assert!(out.contains("published #2"), "{out}");
    for (list, expected) in [
        ("MedMij_Whitelist.xml", 2),
        ("MedMij_Gegevensdienstnamenlijst.xml", 2),
        ("MedMij_Zorgaanbiederslijst.xml", 1),
        ("MedMij_OAuthclientlist.xml", 1),
    ] {
        for q in ["", "?release=1.1.2", "?api=2"] {
            assert_eq!(
                volgnummer(&server.get(&format!("/{list}{q}")).text()),
                expected,
                "{list}{q}"
            );
        }
    }
    let show = ok(&data, &["history", "show", "2"]);
    assert!(show.contains("reason: wijzigingen week 47"), "{show}");
    assert!(
        show.contains("added nieuw.knooppunt.nl to the Whitelist (RFC-12 nieuwe node)"),
        "{show}"
    );
    // An edit without --reason carries the publication's reason.
    assert!(
        show.contains("updated Gegevensdienst 3 (wijzigingen week 47)"),
        "{show}"
    );
    assert!(ok(&data, &["diff"]).contains("no pending changes"));
}

#[test]
fn whole_change_set_errors_are_reported_together_and_import_shows_its_diff() {
    let (dir, data, _server) = demo_server();
    // A release3 ZAL with two independent rule violations.
    let text =
        std::fs::read_to_string(example("zorgaanbiederslijst-release3-fv8-example.xml")).unwrap();
    let bad = text
        .replacen(
            "<GegevensdienstId>6</GegevensdienstId>",
            "<GegevensdienstId>66</GegevensdienstId>",
            1,
        )
        .replacen(
            "https://medmij.xisbridge.net/oauth/token",
            "https://medmij.xisbridge.net:8443/oauth/token",
            1,
        );
    let f = dir.path().join("bad.xml");
    std::fs::write(&f, bad).unwrap();
    let before = ok(&data, &["dump"]);
    let err = fails(&data, &["import", f.to_str().unwrap()]);
    assert!(err.contains("2 rule violation(s)"), "{err}");
    assert!(err.contains("66") && err.contains("8443"), "{err}");
    assert_eq!(ok(&data, &["dump"]), before);

    // An absurd Volgnummer (it would become the floor for our numbering) is refused.
    let wl = std::fs::read_to_string(example("whitelist-release2-fv5-single-example.xml")).unwrap();
    let huge = dir.path().join("huge.xml");
    std::fs::write(
        &huge,
        wl.replace("<Volgnummer>1<", "<Volgnummer>18446744073709551615<"),
    )
    .unwrap();
    let err = fails(&data, &["import", huge.to_str().unwrap()]);
    assert!(err.contains("Volgnummer is larger than"), "{err}");
    assert_eq!(ok(&data, &["dump"]), before);

    // A good import shows its diff first; --dry-run writes nothing.
    let wl = example("whitelist-release2-fv5-single-example.xml");
    let dry = ok(&data, &["import", "--dry-run", wl.to_str().unwrap()]);
    assert!(
        dry.contains("Whitelist release2: 0 added,") && dry.contains("- medmij.deenigeechtepgo.nl"),
        "{dry}"
    );
    assert!(dry.contains("dry run"), "{dry}");
    assert_eq!(ok(&data, &["dump"]), before);
    ok(&data, &["import", wl.to_str().unwrap()]);
    assert!(ok(&data, &["diff"]).contains("- medmij.deenigeechtepgo.nl"));
}

#[test]
fn concurrent_edits_through_the_server_lose_no_update() {
    let (_dir, data, _server) = demo_server();
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let data = data.clone();
            std::thread::spawn(move || {
                cli(
                    &data,
                    &["whitelist", "add", &format!("node{i}.parallel.nl")],
                )
            })
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let list = ok(&data, &["whitelist", "list"]);
    for i in 0..12 {
        assert!(
            list.contains(&format!("node{i}.parallel.nl")),
            "node{i} lost:\n{list}"
        );
    }
    let diff = ok(&data, &["diff"]);
    assert!(diff.contains("Whitelist release2: 12 added"), "{diff}");
}

fn entry<'a>(body: &'a str, open: &str, key: &str) -> Option<&'a str> {
    // The element (e.g. <Zorgaanbieder>) that contains `key`.
    body.split(open).skip(1).find(|e| e.contains(key))
}

#[test]
fn gecontroleerde_livegang_start_promote_end_and_expiry() {
    let (_dir, data, server) = demo_server();
    let before = ok(&data, &["dump"]);
    // Refusals: unknown Gegevensdienst, Zorgaanbieder, client; a release that is not verplicht.
    let base = ["livegang", "start", "--until", "2099-12-31"];
    for (extra, needle) in [
        (
            vec![
                "--gegevensdienst",
                "77",
                "--zorgaanbieder",
                "labnoord@medmij",
                "--oauthclient",
                "app.gezondheidskluis.nl",
            ],
            "Gegevensdienst '77'",
        ),
        (
            vec![
                "--gegevensdienst",
                "4",
                "--zorgaanbieder",
                "onbekend@medmij",
                "--oauthclient",
                "app.gezondheidskluis.nl",
            ],
            "onbekend@medmij",
        ),
        (
            vec![
                "--gegevensdienst",
                "4",
                "--zorgaanbieder",
                "labnoord@medmij",
                "--oauthclient",
                "onbekend.pgo.nl",
            ],
            "onbekend.pgo.nl",
        ),
        (
            vec![
                "--gegevensdienst",
                "4",
                "--zorgaanbieder",
                "labnoord@medmij",
                "--oauthclient",
                "app.gezondheidskluis.nl",
                "--release",
                "2.0.0",
            ],
            "verplicht",
        ),
        (
            vec![
                "--gegevensdienst",
                "4",
                "--zorgaanbieder",
                "labnoord@medmij",
                "--oauthclient",
                "app.gezondheidskluis.nl",
                "--release",
                "1.1.1",
            ],
            "verplicht",
        ),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        let err = fails(&data, &args);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(ok(&data, &["dump"]), before);
    }

    for until in ["9999-12-31T23:00:00-05:00", "2001-01-01"] {
        let err = fails(
            &data,
            &livegang_start(
                "4",
                "labnoord@medmij",
                "app.gezondheidskluis.nl",
                until,
                None,
            ),
        );
        assert!(
            err.contains("out of range") || err.contains("not in the future"),
            "{until}: {err}"
        );
        assert_eq!(ok(&data, &["dump"]), before);
    }
    ok(
        &data,
        &[
            "livegang",
            "start",
            "--gegevensdienst",
            "4",
            "--zorgaanbieder",
            "labnoord@medmij",
            "--oauthclient",
            "app.gezondheidskluis.nl",
            "--until",
            "2099-12-31",
            "--copy-id",
            "104",
            "--authorization-endpoint",
            "https://medmij.za982.xisbridge.net/oauth/v3/authorize",
            "--token-endpoint",
            "https://medmij.za982.xisbridge.net/oauth/v3/token",
            "--systeemrol",
            "LAB-1.1-LRB-FHIR=https://medmij.za982.xisbridge.net/fhir/v3/gd4",
        ],
    );
    assert!(ok(&data, &["livegang", "list"]).contains("104"));
    ok(&data, &["publish", "-m", "gecontroleerde livegang lab"]);

    for q in ["", "?release=1.1.2", "?api=2"] {
        let gnl = server
            .get(&format!("/MedMij_Gegevensdienstnamenlijst.xml{q}"))
            .text();
        assert!(
            gnl.contains("<GegevensdienstId>104</GegevensdienstId>"),
            "GNL{q}"
        );
        assert!(
            gnl.contains("Laboratoriumresultaten (gecontroleerde livegang)"),
            "GNL{q}"
        );
        let zal = server
            .get(&format!("/MedMij_Zorgaanbiederslijst.xml{q}"))
            .text();
        assert!(
            entry(&zal, "<Zorgaanbieder>", "labnoord@medmij")
                .unwrap()
                .contains("<GegevensdienstId>104<"),
            "ZAL{q}"
        );
        assert_eq!(
            zal.matches("<GegevensdienstId>104<").count(),
            1,
            "only the participant offers it (ZAL{q})"
        );
    }
    for q in ["?release=1.1.2", "?api=2"] {
        let ocl = server
            .get(&format!("/MedMij_OAuthclientlist.xml{q}"))
            .text();
        assert!(
            entry(&ocl, "<OAuthclient>", "app.gezondheidskluis.nl")
                .unwrap()
                .contains("<GegevensdienstId>104<"),
            "OCL{q}"
        );
        assert_eq!(
            ocl.matches("<GegevensdienstId>104<").count(),
            1,
            "only the participant (OCL{q})"
        );
    }
    assert!(
        !server
            .get("/MedMij_OAuthclientlist.xml")
            .text()
            .contains("104"),
        "OCL release2 has no Gegevensdiensten"
    );

    // Promote: labnoord goes live on 4 with the copy's endpoints; the copy disappears.
    ok(&data, &["livegang", "promote", "104"]);
    ok(&data, &["publish", "-m", "livegang lab geslaagd"]);
    let zal = server
        .get("/MedMij_Zorgaanbiederslijst.xml?release=1.1.2")
        .text();
    let lab = entry(&zal, "<Zorgaanbieder>", "labnoord@medmij").unwrap();
    assert!(
        lab.contains("<GegevensdienstId>4<") && lab.contains("/oauth/v3/authorize"),
        "{lab}"
    );
    for list in [
        "MedMij_Zorgaanbiederslijst.xml",
        "MedMij_Gegevensdienstnamenlijst.xml",
        "MedMij_OAuthclientlist.xml",
    ] {
        assert!(
            !server
                .get(&format!("/{list}?api=2"))
                .text()
                .contains(">104<"),
            "{list}"
        );
    }

    // End: the copy disappears.
    ok(
        &data,
        &livegang_start(
            "1",
            "umcharderwijk@medmij",
            "medmij.deenigeechtepgo.nl",
            "2099-12-31",
            None,
        ),
    );
    ok(&data, &["publish", "-m", "tweede livegang"]);
    // Without --copy-id the copy gets the next free number.
    let gnl = server.get("/MedMij_Gegevensdienstnamenlijst.xml").text();
    let copy = gnl
        .split("<GegevensdienstId>")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .find(|i| i.parse::<u32>().unwrap() > 7)
        .unwrap()
        .to_string();
    assert_eq!(copy, "8");
    ok(&data, &["livegang", "end", &copy]);
    ok(&data, &["publish", "-m", "livegang gestopt"]);
    assert!(!server
        .get("/MedMij_Gegevensdienstnamenlijst.xml")
        .text()
        .contains(&format!(">{copy}<")));

    // Expiry: ends by itself as a logged publication, without publishing pending edits.
    let until = seconds_from_now(3);
    ok(
        &data,
        &livegang_start(
            "1",
            "umcharderwijk@medmij",
            "medmij.deenigeechtepgo.nl",
            &until,
            Some("300"),
        ),
    );
    ok(&data, &["publish", "-m", "korte livegang"]);
    assert!(server
        .get("/MedMij_Gegevensdienstnamenlijst.xml")
        .text()
        .contains(">300<"));
    ok(&data, &["whitelist", "add", "pending.edit.nl"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server
        .get("/MedMij_Gegevensdienstnamenlijst.xml")
        .text()
        .contains(">300<")
    {
        assert!(Instant::now() < deadline, "livegang 300 did not expire");
        std::thread::sleep(Duration::from_millis(250));
    }
    let hist = ok(&data, &["history", "list"]);
    assert!(
        hist.contains("stelselnode (automatic)")
            && hist.contains("gecontroleerde livegang 300 expired"),
        "{hist}"
    );
    assert!(
        !server
            .get("/MedMij_Whitelist.xml")
            .text()
            .contains("pending.edit.nl"),
        "pending edit must stay pending"
    );
    assert!(ok(&data, &["diff"]).contains("+ pending.edit.nl"));
    assert!(ok(&data, &["livegang", "list"]).contains("no gecontroleerde livegang"));
}

#[test]
fn release_lifecycle_is_reflected_in_http_answers() {
    let (_dir, data, server) = demo_server();
    ok(
        &data,
        &[
            "release",
            "add",
            "2.1.0",
            "--interfaceversie",
            "2.0.0",
            "--zorgaanbiederslijst",
            "release3",
            "--oauthclientlist",
            "release3",
            "--whitelist",
            "release2",
            "--gegevensdienstnamenlijst",
            "release1",
        ],
    );
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?release=2.1.0").status,
        200
    );
    assert_eq!(
        server
            .get("/MedMij_Whitelist.xml?api=2")
            .header("medmij-release"),
        Some("2.1.0")
    );
    let err = fails(&data, &["release", "set-status", "2.1.0", "verplicht"]);
    assert!(err.contains("1.1.2") && err.contains("verplicht"), "{err}");
    let err = fails(&data, &["release", "set-status", "1.1.1", "optioneel"]);
    assert!(err.contains("forward"), "{err}");
    let err = fails(&data, &["release", "set-status", "1.1.2", "verouderd"]);
    assert!(err.contains("--sunset"), "{err}");
    let err = fails(&data, &["release", "set-status", "1.1.1", "ingetrokken"]);
    assert!(err.contains("default"), "{err}");

    ok(
        &data,
        &[
            "release",
            "set-status",
            "1.1.2",
            "verouderd",
            "--sunset",
            "2027-12-31",
        ],
    );
    let r = server.get("/MedMij_Whitelist.xml?release=1.1.2");
    assert!(r.header("deprecation").is_some());
    assert_eq!(r.header("sunset"), Some("Fri, 31 Dec 2027 00:00:00 GMT"));
    ok(&data, &["release", "set-status", "2.1.0", "verplicht"]);
    ok(&data, &["release", "set-default", "2.1.0"]);
    assert_eq!(
        server.get("/MedMij_Whitelist.xml").header("medmij-release"),
        Some("2.1.0")
    );
    ok(&data, &["release", "set-status", "1.1.1", "ingetrokken"]);
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?release=1.1.1").status,
        410
    );
    let hist = ok(&data, &["history", "list"]);
    assert!(
        hist.contains("release 1.1.1: verouderd -> ingetrokken"),
        "{hist}"
    );
    assert!(hist.contains("default release 1.1.1 -> 2.1.0"), "{hist}");
}

#[test]
fn history_is_served_and_exports_verify_offline() {
    let (dir, data, server) = demo_server();
    let v1 = server.get("/MedMij_Whitelist.xml?release=1.1.2").body;
    let v1_sig = server.get("/MedMij_Whitelist.xml.sig?release=1.1.2").body;
    let v1_default = server.get("/MedMij_Whitelist.xml").body;
    ok(&data, &["whitelist", "add", "nieuw.knooppunt.nl"]);
    ok(&data, &["publish", "-m", "nieuwe node"]);
    ok(&data, &["whitelist", "remove", "rcf-rso.nl"]);
    ok(
        &data,
        &[
            "gegevensdienst",
            "update",
            "7",
            "--weergavenaam",
            "Afspraken en verwijzingen",
        ],
    );
    ok(&data, &["publish", "-m", "opschonen"]);

    assert_eq!(
        server
            .get("/MedMij_Whitelist.xml?release=1.1.2&volgnummer=1")
            .body,
        v1
    );
    assert_eq!(
        server
            .get("/MedMij_Whitelist.xml.sig?release=1.1.2&volgnummer=1")
            .body,
        v1_sig
    );
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?volgnummer=1").body,
        v1_default
    );
    let cur = server.get("/MedMij_Whitelist.xml?volgnummer=3");
    assert_eq!(cur.status, 200);
    assert_eq!(volgnummer(&cur.text()), 3);
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?volgnummer=99").status,
        404
    );
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?volgnummer=abc").status,
        400
    );

    let d = ok(&data, &["history", "diff", "--list", "whitelist", "1", "3"]);
    assert!(
        d.contains("+ nieuw.knooppunt.nl") && d.contains("- rcf-rso.nl"),
        "{d}"
    );
    let h = ok(&data, &["history", "list", "--list", "gnl"]);
    assert!(h.contains("opschonen") && !h.contains("nieuwe node"), "{h}");

    // Export through the running server, with a relative path.
    let out = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "--data",
            data.to_str().unwrap(),
            "history",
            "export",
            "--out",
            "audit.tar",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = dir.path().join("audit.tar");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, server.get("/signing-certificate.pem").body).unwrap();
    let v = ok(
        &data,
        &[
            "history",
            "verify",
            archive.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(v.contains("OK") && v.contains("3 publications"), "{v}");
    // Without a pinned certificate the archive proves nothing about its origin: refused,
    // naming the certificate found; accepted only when the embedded one is trusted knowingly.
    let err = fails(&data, &["history", "verify", archive.to_str().unwrap()]);
    assert!(
        err.contains("not pinned") && err.contains("SHA-256 fingerprint"),
        "{err}"
    );
    let v = ok(
        &data,
        &[
            "history",
            "verify",
            archive.to_str().unwrap(),
            "--trust-embedded-cert",
        ],
    );
    assert!(v.contains("NOT pinned"), "{v}");

    // The CSV tells a non-technical reader what changed.
    let tar_bytes = std::fs::read(&archive).unwrap();
    let text = String::from_utf8_lossy(&tar_bytes);
    assert!(text.contains("3,") && text.contains("rcf-rso.nl"), "CSV");

    // Any changed byte is detected.
    let positions: Vec<usize> = (0..tar_bytes.len())
        .step_by(tar_bytes.len() / 97 + 1)
        .collect();
    for &p in &positions {
        let mut t = tar_bytes.clone();
        t[p] ^= 0x01;
        let f = dir.path().join("tampered.tar");
        std::fs::write(&f, &t).unwrap();
        let o = cli(
            &data,
            &[
                "history",
                "verify",
                f.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
            ],
        );
        assert!(
            !o.status.success(),
            "flipping byte {p} of {} went unnoticed",
            tar_bytes.len()
        );
    }
    // A partial export still verifies (anchored at its first entry).
    let part = dir.path().join("part.tar");
    ok(
        &data,
        &[
            "history",
            "export",
            "--out",
            part.to_str().unwrap(),
            "--from",
            "2",
        ],
    );
    ok(
        &data,
        &[
            "history",
            "verify",
            part.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
}

#[test]
fn a_rendition_that_comes_back_keeps_its_historic_bytes() {
    let (dir, data, server) = demo_server();
    let zal3 = server.get("/MedMij_Zorgaanbiederslijst.xml?api=2").body;
    // 2.0.0 was the only release using ZAL release3; withdraw it, then add 2.0.1 using it.
    ok(&data, &["release", "set-status", "2.0.0", "ingetrokken"]);
    ok(
        &data,
        &[
            "release",
            "add",
            "2.0.1",
            "--interfaceversie",
            "2.0.0",
            "--zorgaanbiederslijst",
            "release3",
            "--oauthclientlist",
            "release3",
            "--whitelist",
            "release2",
            "--gegevensdienstnamenlijst",
            "release1",
        ],
    );
    let back = server.get("/MedMij_Zorgaanbiederslijst.xml?release=2.0.1");
    assert_eq!(back.status, 200);
    assert_eq!(back.body, zal3, "same Volgnummer, same bytes");
    let archive = dir.path().join("a.tar");
    ok(
        &data,
        &["history", "export", "--out", archive.to_str().unwrap()],
    );
    ok(
        &data,
        &[
            "history",
            "verify",
            archive.to_str().unwrap(),
            "--trust-embedded-cert",
        ],
    );
}

#[test]
fn release_changes_leave_pending_edits_pending_and_end_their_livegangen() {
    let (_dir, data, server) = demo_server();
    ok(
        &data,
        &livegang_start(
            "1",
            "umcharderwijk@medmij",
            "medmij.deenigeechtepgo.nl",
            "2099-12-31",
            Some("201"),
        ),
    );
    ok(&data, &["publish", "-m", "livegang"]);
    assert!(server
        .get("/MedMij_Gegevensdienstnamenlijst.xml?release=1.1.2")
        .text()
        .contains(">201<"));
    ok(
        &data,
        &[
            "whitelist",
            "add",
            "pending.edit.nl",
            "--reason",
            "nog niet publiceren",
        ],
    );
    ok(
        &data,
        &[
            "release",
            "set-status",
            "1.1.2",
            "verouderd",
            "--sunset",
            "2027-12-31",
        ],
    );
    // The release change is public, the livegang on it ended with it, the edit is still pending.
    assert!(server
        .get("/MedMij_Whitelist.xml?release=1.1.2")
        .header("deprecation")
        .is_some());
    assert!(!server
        .get("/MedMij_Gegevensdienstnamenlijst.xml?release=1.1.2")
        .text()
        .contains(">201<"));
    assert!(ok(&data, &["livegang", "list"]).contains("no gecontroleerde livegang"));
    assert!(!server
        .get("/MedMij_Whitelist.xml")
        .text()
        .contains("pending.edit.nl"));
    let diff = ok(&data, &["diff"]);
    assert!(
        diff.contains("+ pending.edit.nl") && diff.contains("nog niet publiceren"),
        "{diff}"
    );
    assert!(
        !diff.contains("201"),
        "the livegang's end is not a pending edit: {diff}"
    );
    let hist = ok(&data, &["history", "list"]);
    assert!(
        hist.contains("gecontroleerde livegang 201 ends with it"),
        "{hist}"
    );
}

#[test]
fn without_a_server_publish_ends_expired_livegangen_and_discard_drops_import_floors() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    // An import raises the Whitelist's numbering floor; discarding it lowers it again.
    ok(
        &data,
        &[
            "import",
            example("whitelist-release2-fv5-example.xml")
                .to_str()
                .unwrap(),
        ],
    );
    ok(&data, &["discard"]);
    ok(
        &data,
        &[
            "gegevensdienst",
            "add",
            "60",
            "--weergavenaam",
            "Testdienst",
        ],
    );
    let out = ok(&data, &["publish", "-m", "gnl only"]);
    assert!(
        out.contains("Whitelist                  Volgnummer      1  unchanged"),
        "{out}"
    );

    let until = seconds_from_now(2);
    ok(
        &data,
        &livegang_start(
            "1",
            "umcharderwijk@medmij",
            "medmij.deenigeechtepgo.nl",
            &until,
            Some("301"),
        ),
    );
    ok(&data, &["publish", "-m", "korte livegang"]);
    std::thread::sleep(Duration::from_secs(3));
    ok(&data, &["whitelist", "add", "later.edit.nl"]);
    let out = ok(&data, &["publish", "-m", "later"]);
    assert!(out.contains("gecontroleerde livegang 301 expired"), "{out}");
    let hist = ok(&data, &["history", "list"]);
    assert!(hist.contains("stelselnode (automatic)"), "{hist}");
    assert!(!ok(&data, &["dump"]).contains("\"301\""));
}

#[test]
fn non_utf8_arguments_are_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, data, _server) = demo_server();
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff.xml");
    let o = std::process::Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .arg("import")
        .arg(bad)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("UTF-8"));
}

#[test]
fn sigkill_during_publications_leaves_a_consistent_servable_store() {
    let (dir, data, server) = demo_server();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (data, stop) = (data.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200 {
                let _ = cli(
                    &data,
                    &["whitelist", "add", &format!("crash{i}.voorbeeld.nl")],
                );
                let _ = cli(&data, &["publish", "-m", &format!("crash test {i}")]);
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    drop(server); // SIGKILL, most likely mid-publication
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.join().unwrap();

    let server = Server::start(&data, &[]);
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, server.get("/signing-certificate.pem").body).unwrap();
    for list in LISTS {
        for q in ["", "?release=1.1.2", "?api=2"] {
            let url = format!("http://{}/{list}{q}", server.addr);
            ok(&data, &["verify", &url, "--cert", cert.to_str().unwrap()]);
        }
    }
    let archive = dir.path().join("after-crash.tar");
    ok(
        &data,
        &["history", "export", "--out", archive.to_str().unwrap()],
    );
    let v = ok(
        &data,
        &[
            "history",
            "verify",
            archive.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(v.contains("hash chain intact"), "{v}");
    // And it goes on publishing.
    ok(&data, &["whitelist", "add", "na.de.crash.nl"]);
    ok(&data, &["publish", "-m", "after the crash"]);
    assert!(server
        .get("/MedMij_Whitelist.xml")
        .text()
        .contains("na.de.crash.nl"));
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let (_dir, data) = demo();
    let mut child = std::process::Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .arg("dump")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `| head -0`
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101));
}

#[test]
fn a_publication_in_which_only_the_gnl_changed_reads_only_the_small_tables() {
    let (_dir, data) = demo();
    let zal = |s: &Server| {
        s.get("/MedMij_Zorgaanbiederslijst.xml?release=2.0.0")
            .text()
    };
    let server = Server::start(&data, &[]);
    let zal_before = zal(&server);
    drop(server);
    ok(
        &data,
        &[
            "gegevensdienst",
            "update",
            "4",
            "--weergavenaam",
            "Uitslagen",
        ],
    );
    let (out, log) = publish_logged(&data, "only the GNL");
    assert!(log.contains("small tables only"), "{log}");
    assert!(
        out.contains("Gegevensdienstnamenlijst   Volgnummer      2  changed"),
        "{out}"
    );
    assert!(
        out.contains("Zorgaanbiederslijst        Volgnummer      1  unchanged"),
        "{out}"
    );
    // The published registry is still complete: nothing is pending, and discarding
    // nothing changes nothing.
    let d = ok(&data, &["diff"]);
    assert!(
        d.contains("no pending changes") || !d.contains("changed"),
        "{d}"
    );
    // A change to a large table next is a full publication, and sees every row.
    ok(&data, &["whitelist", "add", "nieuw.voorbeeld.nl"]);
    ok(
        &data,
        &[
            "gegevensdienst",
            "update",
            "4",
            "--weergavenaam",
            "Laboratoriumuitslagen",
        ],
    );
    let (out, log) = publish_logged(&data, "Whitelist and GNL");
    assert!(!log.contains("small tables only"), "{log}");
    assert!(
        out.contains("Whitelist                  Volgnummer      2  changed"),
        "{out}"
    );
    assert!(
        out.contains("Gegevensdienstnamenlijst   Volgnummer      3  changed"),
        "{out}"
    );
    let server = Server::start(&data, &[]);
    assert_eq!(
        zal(&server),
        zal_before,
        "the ZAL kept its bytes throughout"
    );
    let gnl = server.get("/MedMij_Gegevensdienstnamenlijst.xml").text();
    assert!(
        gnl.contains("Laboratoriumuitslagen") && volgnummer(&gnl) == 3,
        "{gnl}"
    );
    assert!(server
        .get("/MedMij_Whitelist.xml")
        .text()
        .contains("nieuw.voorbeeld.nl"));
    drop(server);
    // A discarded edit leaves nothing to publish; that publication says so and clears
    // what the edit marked, so a GNL change after it is a small publication again.
    ok(&data, &["whitelist", "add", "weg.voorbeeld.nl"]);
    ok(&data, &["discard"]);
    let out = publish_debug(&data, "nothing");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("small tables only"),
        "the Whitelist table was written twice"
    );
    ok(
        &data,
        &["gegevensdienst", "update", "4", "--weergavenaam", "Lab"],
    );
    let (out, log) = publish_logged(&data, "GNL after a discard");
    assert!(log.contains("small tables only"), "{log}");
    assert!(
        out.contains("Gegevensdienstnamenlijst   Volgnummer      4  changed"),
        "{out}"
    );
    // A Whitelist edit reads the Whitelist's table and the small ones, not the 100,000-row
    // ones; a Zorgaanbieder edit reads the Zorgaanbieders'. After each, the published
    // registry is complete: nothing shows as pending.
    ok(&data, &["whitelist", "add", "nog-een.voorbeeld.nl"]);
    let (out, log) = publish_logged(&data, "Whitelist only");
    assert!(
        log.contains("partial: small tables and Whitelist;"),
        "{log}"
    );
    assert!(
        out.contains("Whitelist                  Volgnummer      3  changed"),
        "{out}"
    );
    assert!(ok(&data, &["diff"]).contains("no pending changes"));
    let za = ok(&data, &["zorgaanbieder", "list"]);
    let mut first = za.split_whitespace();
    let naam = first.next().unwrap().to_string();
    let other = if first.next() == Some("ZA") {
        "BAZB"
    } else {
        "ZA"
    };
    ok(
        &data,
        &["zorgaanbieder", "update", &naam, "--aanbiedertype", other],
    );
    let (out, log) = publish_logged(&data, "one Zorgaanbieder");
    assert!(
        log.contains("partial: small tables and Zorgaanbiederslijst;"),
        "{log}"
    );
    assert!(
        out.contains("Zorgaanbiederslijst        Volgnummer      2  changed"),
        "{out}"
    );
    assert!(
        out.contains("Whitelist                  Volgnummer      3  unchanged"),
        "{out}"
    );
    assert!(ok(&data, &["diff"]).contains("no pending changes"));
    let server = Server::start(&data, &[]);
    assert_ne!(zal(&server), zal_before);
    let wl = server.get("/MedMij_Whitelist.xml").text();
    assert!(wl.contains("nog-een.voorbeeld.nl") && wl.contains("nieuw.voorbeeld.nl"));
    drop(server);
    // Nothing pending: a publication changes nothing, and reads no large table for it.
    let out = publish_debug(&data, "nothing");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("small tables only"), "{log}");
    let said = format!("{}{log}", String::from_utf8_lossy(&out.stdout));
    assert!(said.contains("nothing changed since publication"), "{said}");
}

/// `status` marks exactly the lists whose content differs from what is published: an edit
/// marks its list, an edit undone or discarded unmarks it, a publication clears them all.
/// (Lists not written since the publication are counted, not read.)
#[test]
fn status_marks_the_lists_with_unpublished_changes() {
    let (_dir, data, _server) = demo_server();
    let marked = |data: &std::path::Path| -> Vec<String> {
        ok(data, &["status"])
            .lines()
            .filter(|l| l.contains("(registry has unpublished changes)"))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let counts = |data: &std::path::Path| ok(data, &["status"]).lines().next().unwrap().to_string();
    assert_eq!(marked(&data), Vec::<String>::new());
    let before = counts(&data);
    ok(&data, &["whitelist", "add", "status.example.nl"]);
    assert_eq!(marked(&data), ["Whitelist"]);
    assert_ne!(
        counts(&data),
        before,
        "the Whitelist count follows the edit"
    );
    ok(&data, &["whitelist", "remove", "status.example.nl"]);
    assert_eq!(marked(&data), Vec::<String>::new(), "changed back");
    assert_eq!(counts(&data), before);
    ok(
        &data,
        &[
            "zorgaanbieder",
            "update",
            "thuismetingenvitaal@medmij",
            "--interfaceversie",
            "1.1.0",
            "--gegevensdienst",
            "4",
            "--authorization-endpoint",
            "https://thuis.example.nl/oauth/authorize",
            "--token-endpoint",
            "https://thuis.example.nl/oauth/token",
            "--systeemrol",
            "AA-FIRST=https://thuis.example.nl/fhir/a",
        ],
    );
    ok(
        &data,
        &["gegevensdienst", "update", "4", "--weergavenaam", "Thuis"],
    );
    assert_eq!(
        marked(&data),
        ["Zorgaanbiederslijst", "Gegevensdienstnamenlijst"]
    );
    // `diff` reads only the rows that differ: a changed, a removed row, with their lines.
    ok(&data, &["whitelist", "remove", "rcf-rso.nl"]);
    let diff = ok(&data, &["diff"]);
    for needle in [
        // It offered nothing in Interfaceversie 1.1.0: new in that rendition.
        "Zorgaanbiederslijst release2 (Interfaceversie 1.1.0): 1 added, 0 removed, 0 changed",
        "+ thuismetingenvitaal@medmij",
        "Whitelist release2: 0 added, 1 removed, 0 changed",
        "- rcf-rso.nl",
        "Gegevensdienstnamenlijst release1: 0 added, 0 removed, 1 changed",
        "+ Weergavenaam Thuis",
    ] {
        assert!(diff.contains(needle), "{needle} in {diff}");
    }
    assert!(!diff.contains("OAuthclientlist"), "{diff}");
    ok(&data, &["discard"]);
    assert_eq!(marked(&data), Vec::<String>::new(), "discarded");
    ok(&data, &["whitelist", "add", "status.example.nl"]);
    ok(&data, &["publish", "-m", "status"]);
    assert_eq!(marked(&data), Vec::<String>::new(), "published");
}

/// Errors quote the offending value on one line, and nothing printed reaches the terminal
/// as an escape sequence, whether the command ran here or in the server.
#[test]
fn errors_quote_peer_values_without_forging_lines_or_escapes() {
    let (_dir, data) = demo();
    let hostile = "x\nFAKE line\u{1b}]0;owned\u{7}\u{202e}";
    let check = |e: &str| {
        assert!(e.starts_with("error: "), "{e}");
        assert!(!e.lines().any(|l| l.starts_with("FAKE")), "{e}");
        for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
            assert!(!e.contains(bad), "{bad:?} in {e}");
        }
    };
    check(&fails(&data, &["zorgaanbieder", "show", hostile]));
    check(&fails(&data, &["whitelist", "remove", hostile]));
    let _server = Server::start(&data, &[]);
    check(&fails(&data, &["zorgaanbieder", "show", hostile]));
}

/// A second OS user who may not read the data directory is told so, not sent to `init`.
#[test]
fn another_os_user_is_told_permission_denied() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!("SKIPPED another_os_user_is_told_permission_denied: needs root to run as nobody");
        return;
    }
    let (_dir, data) = demo();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(BIN)
        .arg("--data")
        .arg(&data)
        .arg("status")
        .env("STELSELNODE_OPERATOR", "someone-else")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("permission denied"), "{err}");
    assert!(!err.contains("stelselnode init"), "{err}");
}
