//! Registry writes: every field rule refuses bad input and writes nothing; imports of the
//! official examples; import → publish → fetch reproduces their content.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use stelselnode::consume::read::{self, Release2Mapping};
use stelselnode::registry::model::{Aanbiedertype, Registry};

/// Run a write that must be refused; check the message names what it should and that the
/// registry is byte-for-byte the same afterwards.
fn refused(data: &Path, args: &[&str], needles: &[&str]) {
    let before = ok(data, &["dump"]);
    let err = fails(data, args);
    for n in needles {
        assert!(
            err.contains(n),
            "{args:?}: error should mention '{n}':\n{err}"
        );
    }
    assert_eq!(ok(data, &["dump"]), before, "{args:?} wrote something");
}

const AUTH: &str = "https://zorg.voorbeeld.nl/oauth/authorize";
const TOKEN: &str = "https://zorg.voorbeeld.nl/oauth/token";
const ROL: &str = "MM-2.1-BZB-FHIR=https://zorg.voorbeeld.nl/fhir";

fn za_add(naam: &str, auth: &str, token: &str, rol: &str, gd: &str, iv: &str) -> Vec<String> {
    [
        "zorgaanbieder",
        "add",
        naam,
        "--aanbiedertype",
        "ZA",
        "--interfaceversie",
        iv,
        "--gegevensdienst",
        gd,
        "--authorization-endpoint",
        auth,
        "--token-endpoint",
        token,
        "--systeemrol",
        rol,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// (Zorgaanbiedernaam, authorization, token, CODE=URI, GegevensdienstId, Interfaceversie)
type Offer<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

fn refused_za(data: &Path, o: Offer, needles: &[&str]) {
    let args = za_add(o.0, o.1, o.2, o.3, o.4, o.5);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(data, &args, needles);
}

#[test]
fn a_valid_zorgaanbieder_is_written() {
    let (_d, data) = demo();
    let args = za_add(
        "zorgvoorbeeld@medmij",
        AUTH,
        "https://zorg.voorbeeld.nl:443/oauth/token",
        ROL,
        "1",
        "2.0.0",
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&data, &args);
    let show = ok(&data, &["zorgaanbieder", "show", "zorgvoorbeeld@medmij"]);
    assert!(show.contains(":443/oauth/token"), "{show}");
    // and it can be published
    ok(&data, &["publish", "-m", "test"]);
}

#[test]
fn zorgaanbieder_field_rules() {
    let (_d, data) = demo();
    let d = &data;
    // Zorgaanbiedernaam: pattern and length.
    refused_za(
        d,
        ("Zorg@medmij", AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["Zorgaanbiedernaam", "Zorg@medmij", "[a-z]"],
    );
    refused_za(
        d,
        ("zorg.punt@medmij", AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["Zorgaanbiedernaam", "zorg.punt@medmij"],
    );
    refused_za(
        d,
        ("zorg2@medmij", AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["Zorgaanbiedernaam"],
    );
    refused_za(
        d,
        ("zo@medmij", AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["Zorgaanbiedernaam", "10 to 57"],
    );
    let long = format!("{}@medmij", "z".repeat(51));
    refused_za(
        d,
        (&long, AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["Zorgaanbiedernaam", "10 to 57"],
    );
    refused_za(
        d,
        ("zorgaanbiedermedmij", AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["Zorgaanbiedernaam"],
    );
    // Endpoints: https only, no query/fragment/trailing slash, host rules.
    let n = "zorgvoorbeeld@medmij";
    refused_za(
        d,
        (n, "http://zorg.voorbeeld.nl/a", TOKEN, ROL, "1", "2.0.0"),
        &["AuthorizationEndpointuri", "https://"],
    );
    refused_za(
        d,
        (
            n,
            "https://zorg.voorbeeld.nl/a?x=1",
            TOKEN,
            ROL,
            "1",
            "2.0.0",
        ),
        &["AuthorizationEndpointuri", "query"],
    );
    refused_za(
        d,
        (n, "https://zorg.voorbeeld.nl/a#f", TOKEN, ROL, "1", "2.0.0"),
        &["AuthorizationEndpointuri", "fragment"],
    );
    refused_za(
        d,
        (n, "https://zorg.voorbeeld.nl/a/", TOKEN, ROL, "1", "2.0.0"),
        &["AuthorizationEndpointuri", "slash"],
    );
    refused_za(
        d,
        (n, "https://Zorg.Voorbeeld.nl/a", TOKEN, ROL, "1", "2.0.0"),
        &["AuthorizationEndpointuri", "lowercase"],
    );
    // No port at all on the front channel, not even 443.
    refused_za(
        d,
        (
            n,
            "https://zorg.voorbeeld.nl:443/a",
            TOKEN,
            ROL,
            "1",
            "2.0.0",
        ),
        &["AuthorizationEndpointuri", "port"],
    );
    // Back channel: only 443.
    refused_za(
        d,
        (
            n,
            AUTH,
            "https://zorg.voorbeeld.nl:8099/token",
            ROL,
            "1",
            "2.0.0",
        ),
        &["TokenEndpointuri", "8099", "443"],
    );
    refused_za(
        d,
        (n, AUTH, "http://zorg.voorbeeld.nl/token", ROL, "1", "2.0.0"),
        &["TokenEndpointuri", "https"],
    );
    refused_za(
        d,
        (
            n,
            AUTH,
            TOKEN,
            "MM=https://zorg.voorbeeld.nl:9100/pdfa",
            "1",
            "2.0.0",
        ),
        &["ResourceEndpointuri", "9100"],
    );
    refused_za(
        d,
        (
            n,
            AUTH,
            TOKEN,
            "MM=https://zorg.voorbeeld.nl/fhir/",
            "1",
            "2.0.0",
        ),
        &["ResourceEndpointuri", "slash"],
    );
    // Systeemrolcode length / spaces.
    let longrol = format!("{}=https://zorg.voorbeeld.nl/fhir", "R".repeat(31));
    refused_za(
        d,
        (n, AUTH, TOKEN, &longrol, "1", "2.0.0"),
        &["Systeemrolcode", "1 to 30"],
    );
    refused_za(
        d,
        (
            n,
            AUTH,
            TOKEN,
            "MM 2=https://zorg.voorbeeld.nl/fhir",
            "1",
            "2.0.0",
        ),
        &["Systeemrolcode", "white space"],
    );
    // GegevensdienstId: must exist (referential integrity), numeric, length.
    refused_za(
        d,
        (n, AUTH, TOKEN, ROL, "99", "2.0.0"),
        &["GegevensdienstId", "99", "Gegevensdienstnamenlijst"],
    );
    refused_za(
        d,
        (n, AUTH, TOKEN, ROL, "abc", "2.0.0"),
        &["GegevensdienstId", "abc", "numeric"],
    );
    // InterfaceversieId format.
    refused_za(
        d,
        (n, AUTH, TOKEN, ROL, "1", "2.0"),
        &["InterfaceversieId", "2.0", "MAJOR.MINOR.PATCH"],
    );
    // Abonneren.
    let mut args = za_add(n, AUTH, TOKEN, ROL, "1", "2.0.0");
    args.extend(
        [
            "--abonneren-duur",
            "0",
            "--subscription-endpoint",
            "https://zorg.voorbeeld.nl/sub",
        ]
        .map(String::from),
    );
    refused(
        d,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["MaximaleDuur", "positive"],
    );
    let mut args = za_add(n, AUTH, TOKEN, ROL, "1", "2.0.0");
    args.extend(
        [
            "--abonneren-duur",
            "30",
            "--subscription-endpoint",
            "https://zorg.voorbeeld.nl:8443/sub",
        ]
        .map(String::from),
    );
    refused(
        d,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["SubscriptionEndpointuri", "8443"],
    );
    // Aanbiedertype enumeration.
    refused(
        d,
        &[
            "zorgaanbieder",
            "add",
            n,
            "--aanbiedertype",
            "XX",
            "--interfaceversie",
            "2.0.0",
            "--gegevensdienst",
            "1",
            "--authorization-endpoint",
            AUTH,
            "--token-endpoint",
            TOKEN,
            "--systeemrol",
            ROL,
        ],
        &["XX", "ZA, BAZB, APD"],
    );
    // Uniqueness: existing Zorgaanbieder, duplicate Systeemrolcode within a Gegevensdienst.
    refused_za(
        d,
        ("umcharderwijk@medmij", AUTH, TOKEN, ROL, "1", "2.0.0"),
        &["umcharderwijk@medmij", "already exists"],
    );
    let mut args = za_add(n, AUTH, TOKEN, ROL, "1", "2.0.0");
    args.extend(["--systeemrol".to_string(), ROL.to_string()]);
    refused(
        d,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["Systeemrolcode", "unique"],
    );
    // Malformed --systeemrol and missing offering parts.
    refused_za(
        d,
        (n, AUTH, TOKEN, "no-equals-sign", "1", "2.0.0"),
        &["CODE=URI"],
    );
    refused(
        d,
        &[
            "zorgaanbieder",
            "add",
            n,
            "--aanbiedertype",
            "ZA",
            "--interfaceversie",
            "2.0.0",
        ],
        &["--gegevensdienst"],
    );
    // Withdrawing the last offering is refused (a Zorgaanbieder offers at least one).
    refused(
        d,
        &[
            "zorgaanbieder",
            "withdraw",
            "thuismetingenvitaal@medmij",
            "--interfaceversie",
            "2.0.0",
            "--gegevensdienst",
            "5",
        ],
        &["last offering"],
    );
    refused(
        d,
        &["zorgaanbieder", "remove", "onbekend@medmij"],
        &["onbekend@medmij", "does not exist"],
    );
}

#[test]
fn other_entity_field_rules() {
    let (_d, data) = demo();
    let d = &data;
    // OAuthclient: Hostname pattern, organisation name length, Gegevensdiensten.
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "PGO.Voorbeeld.nl",
            "--organisatienaam",
            "Voorbeeld",
        ],
        &["Hostname", "PGO.Voorbeeld.nl", "lowercase"],
    );
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "pgo.voorbeeld.nl:443",
            "--organisatienaam",
            "Voorbeeld",
        ],
        &["Hostname", "no port"],
    );
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "localhost",
            "--organisatienaam",
            "Voorbeeld",
        ],
        &["Hostname", "localhost", "dot"],
    );
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "pgo.voorbeeld.nl",
            "--organisatienaam",
            "PG",
        ],
        &["OAuthclientOrganisatienaam", "3 to 50"],
    );
    let long = "P".repeat(51);
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "pgo.voorbeeld.nl",
            "--organisatienaam",
            &long,
        ],
        &["OAuthclientOrganisatienaam", "3 to 50"],
    );
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "pgo.voorbeeld.nl",
            "--organisatienaam",
            "Voorbeeld",
            "--gegevensdienst",
            "42",
        ],
        &["GegevensdienstId", "42", "Gegevensdienstnamenlijst"],
    );
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "pgo.voorbeeld.nl",
            "--organisatienaam",
            "Voorbeeld",
            "--gegevensdienst",
            "1",
            "--gegevensdienst",
            "1",
        ],
        &["GegevensdienstId", "once"],
    );
    refused(
        d,
        &[
            "oauthclient",
            "add",
            "medmij.deenigeechtepgo.nl",
            "--organisatienaam",
            "Dubbel",
        ],
        &["already exists"],
    );
    // Whitelist: hostname pattern, duplicates.
    refused(
        d,
        &["whitelist", "add", "goed.voorbeeld.nl", "slecht_host.nl"],
        &["Hostname", "slecht_host.nl"],
    );
    refused(
        d,
        &["whitelist", "add", "trailing.dot.nl."],
        &["Hostname", "trailing.dot.nl."],
    );
    refused(
        d,
        &["whitelist", "add", "rcf-rso.nl"],
        &["rcf-rso.nl", "already"],
    );
    // Gegevensdienst: id rules, Weergavenaam length, uniqueness, in-use removal.
    refused(
        d,
        &["gegevensdienst", "add", "08", "--weergavenaam", "Voorbeeld"],
        &["GegevensdienstId", "08", "leading zeros"],
    );
    refused(
        d,
        &[
            "gegevensdienst",
            "add",
            &"9".repeat(31),
            "--weergavenaam",
            "Voorbeeld",
        ],
        &["GegevensdienstId", "1 to 30"],
    );
    refused(
        d,
        &["gegevensdienst", "add", "51", "--weergavenaam", "Vo"],
        &["Weergavenaam", "3 to 50"],
    );
    refused(
        d,
        &[
            "gegevensdienst",
            "add",
            "51",
            "--weergavenaam",
            &"W".repeat(51),
        ],
        &["Weergavenaam", "3 to 50"],
    );
    refused(
        d,
        &[
            "gegevensdienst",
            "add",
            "51",
            "--weergavenaam",
            " Voorbeeld",
        ],
        &["Weergavenaam", "white space"],
    );
    refused(
        d,
        &["gegevensdienst", "add", "1", "--weergavenaam", "Dubbel"],
        &["already exists"],
    );
    refused(
        d,
        &["gegevensdienst", "remove", "1"],
        &["GegevensdienstId", "'1'", "referential integrity"],
    );
    // And the positive counterparts are written.
    ok(
        d,
        &[
            "gegevensdienst",
            "add",
            "51",
            "--weergavenaam",
            "Voorbeelddienst",
        ],
    );
    ok(
        d,
        &[
            "oauthclient",
            "add",
            "pgo.voorbeeld.nl",
            "--organisatienaam",
            "Voorbeeld & Zn",
            "--gegevensdienst",
            "51",
        ],
    );
    ok(d, &["whitelist", "add", "pgo.voorbeeld.nl"]);
    assert!(ok(d, &["dump"]).contains("Voorbeeld & Zn"));
}

fn fresh_with_gnl() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    let gnl = example("gegevensdienstnamenlijst-release1-example.xml");
    ok(&data, &["import", gnl.to_str().unwrap()]);
    (dir, data)
}

fn without_ports(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example(name)).unwrap();
    let out = dir.join(format!("noports-{name}"));
    std::fs::write(&out, text.replace(":8099", "").replace(":9100", "")).unwrap();
    out
}

#[test]
fn official_examples_import_or_are_refused_for_the_right_reason() {
    let valid = [
        "gegevensdienstnamenlijst-release1-example.xml",
        "gegevensdienstnamenlijst-release1-example-phpcopy.xml",
        "oauthclientlist-release2-fv2-example.xml",
        "oauthclientlist-release2-pythonoauth-test.xml",
        "whitelist-release2-fv5-example.xml",
        "whitelist-release2-fv5-example-phpcopy.xml",
        "whitelist-release2-fv5-single-example.xml",
        "whitelist-release2-minvws-stub.xml",
        "zorgaanbiederslijst-release2-empty-example.xml",
        "zorgaanbiederslijst-release3-fv8-example.xml",
    ];
    for f in valid {
        let (_d, data) = fresh_with_gnl();
        let out = ok(&data, &["import", example(f).to_str().unwrap()]);
        assert!(out.contains("imported"), "{f}: {out}");
    }
    let refused_files: [(&str, &[&str]); 7] = [
        (
            "zorgaanbiederslijst-release2-pythonoauth-test-INVALIDNAME.xml",
            &["oauthserver.local@medmij", "pattern"],
        ),
        (
            "whitelist-release2-fv2-example.xml",
            &["flat 1.0 layout", "Hostname"],
        ),
        (
            "whitelist-release2-fv2-pythonoauth-test.xml",
            &["flat 1.0 layout"],
        ),
        (
            "whitelist-release2-fv2-single-example.xml",
            &["flat 1.0 layout"],
        ),
        (
            "zorgaanbiederslijst-release2-fv2-example.xml",
            &["TokenEndpointuri", "8099", "443"],
        ),
        (
            "zorgaanbiederskoppellijst-release1-fv4-example.xml",
            &["Zorgaanbiederskoppellijst", "not a supported list"],
        ),
        (
            "dvp-rapportage-masked-2026-01.xml",
            &["DVPRapportage", "not a supported list"],
        ),
    ];
    for (f, needles) in refused_files {
        let (_d, data) = fresh_with_gnl();
        refused(&data, &["import", example(f).to_str().unwrap()], needles);
    }
    // The port files are refused for their ports alone: without them they import.
    for f in [
        "zorgaanbiederslijst-release2-fv2-example.xml",
        "zorgaanbiederslijst-release2-pythonoauth-test.xml",
    ] {
        let (d, data) = fresh_with_gnl();
        let err = fails(&data, &["import", example(f).to_str().unwrap()]);
        assert!(err.contains("9100") || err.contains("8099"), "{f}: {err}");
        ok(
            &data,
            &["import", without_ports(f, d.path()).to_str().unwrap()],
        );
    }
    // A ZAL needs its Gegevensdiensten in the GNL: alone into an empty registry it is refused.
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    refused(
        &data,
        &[
            "import",
            example("zorgaanbiederslijst-release3-fv8-example.xml")
                .to_str()
                .unwrap(),
        ],
        &["GegevensdienstId", "Gegevensdienstnamenlijst"],
    );
    // Imported together with the GNL it works (one transaction).
    ok(
        &data,
        &[
            "import",
            example("zorgaanbiederslijst-release3-fv8-example.xml")
                .to_str()
                .unwrap(),
            example("gegevensdienstnamenlijst-release1-example.xml")
                .to_str()
                .unwrap(),
        ],
    );
}

fn registry_of(bytes: &[u8]) -> Registry {
    let mut reg = Registry::default();
    let l = read::read_list(bytes).unwrap_or_else(|e| panic!("{e}"));
    read::apply(
        &mut reg,
        l,
        &Release2Mapping {
            interfaceversie: "1.1.0".into(),
            aanbiedertype: Aanbiedertype::ZA,
        },
    );
    // Served documents are in canonical order (Systeemrollen by code, …); content compares
    // regardless of the order the example used.
    reg.canonicalize();
    reg
}

#[test]
fn import_publish_fetch_reproduces_the_official_examples() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    let zal = without_ports("zorgaanbiederslijst-release2-fv2-example.xml", dir.path());
    let files = [
        (zal.clone(), "MedMij_Zorgaanbiederslijst.xml"),
        (
            example("oauthclientlist-release2-pythonoauth-test.xml"),
            "MedMij_OAuthclientlist.xml",
        ),
        (
            example("whitelist-release2-fv5-example.xml"),
            "MedMij_Whitelist.xml",
        ),
        (
            example("gegevensdienstnamenlijst-release1-example.xml"),
            "MedMij_Gegevensdienstnamenlijst.xml",
        ),
    ];
    let mut args = vec!["import".to_string()];
    args.extend(files.iter().map(|(p, _)| p.to_str().unwrap().to_string()));
    ok(&data, &args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&data, &["publish", "-m", "migratie"]);
    let server = Server::start(&data, &[]);
    for (file, list) in &files {
        let original = std::fs::read(file).unwrap();
        let served = server.get(&format!("/{list}"));
        assert_eq!(served.status, 200);
        assert_eq!(
            registry_of(&served.body),
            registry_of(&original),
            "{list} content differs"
        );
        // Migration continues the numbering of the imported list.
        let imported_volgnummer = read::read_list(&original).unwrap().volgnummer;
        assert_eq!(
            read::read_list(&served.body).unwrap().volgnummer,
            imported_volgnummer + 1,
            "{list}"
        );
    }
    drop(server);

    // release3 ZAL example through api=2.
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    let zal3 = example("zorgaanbiederslijst-release3-fv8-example.xml");
    ok(
        &data,
        &[
            "import",
            zal3.to_str().unwrap(),
            example("gegevensdienstnamenlijst-release1-example.xml")
                .to_str()
                .unwrap(),
            // A publication needs a non-empty Whitelist.
            example("whitelist-release2-fv5-example.xml")
                .to_str()
                .unwrap(),
        ],
    );
    ok(&data, &["publish", "-m", "release3"]);
    let server = Server::start(&data, &[]);
    let served = server.get("/MedMij_Zorgaanbiederslijst.xml?api=2");
    assert_eq!(
        registry_of(&served.body),
        registry_of(&std::fs::read(&zal3).unwrap())
    );
}

/// Above a few thousand Zorgaanbieders the ZAL is rendered and validated in parallel parts;
/// the joined documents must be what a consumer validates and verifies.
#[test]
fn a_large_registry_publishes_valid_signed_lists() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    add_zorgaanbieders(&data, 4500);
    // The first publication validates every element; the next, after one Zorgaanbieder
    // changed, only that one's element in the renditions it shows in (incremental
    // validation), and both publish documents that xmllint and xmlsec1 accept.
    let (_, log) = publish_logged(&data, "large");
    assert!(
        log.contains("Zorgaanbiederslijst release3: 4500 of 4500 Zorgaanbieder elements validated"),
        "{log}"
    );
    check_large_exports(&data, dir.path(), "first");
    // Damage the first release2 ZAL's history file in the middle of its blocks: the next
    // gzip variant must not copy the damaged block.
    let gz_of = |doc: &Path| {
        data.join("documents")
            .join(format!("{}.xml.gz", sha256(&std::fs::read(doc).unwrap())))
    };
    let first_r2 = gz_of(
        &dir.path()
            .join("first-1.1.2/MedMij_Zorgaanbiederslijst.xml"),
    );
    let mut bytes = std::fs::read(&first_r2).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&first_r2, bytes).unwrap();
    // Point one Zorgaanbieder's 2.0.0 offering at version `v` of its endpoints.
    let endpoints = |v: &str| {
        ok(
            &data,
            &[
                "zorgaanbieder",
                "update",
                "baaa@medmij",
                "--interfaceversie",
                "2.0.0",
                "--gegevensdienst",
                "1",
                "--authorization-endpoint",
                &format!("https://medmij.baaa.nl/{v}/authorize"),
                "--token-endpoint",
                &format!("https://medmij.baaa.nl/{v}/token"),
                "--systeemrol",
                &format!("MM-2.1-BZB-FHIR=https://medmij.baaa.nl/{v}/fhir"),
            ],
        )
    };
    endpoints("v3");
    let (_, log) = publish_logged(&data, "one changed");
    assert!(
        log.contains("Zorgaanbiederslijst release3: 1 of 4500 Zorgaanbieder elements validated"),
        "{log}"
    );
    // Its 1.1.0 offering did not change.
    assert!(
        log.contains("(Interfaceversie 1.1.0): 0 of 1500 Zorgaanbieder elements validated"),
        "{log}"
    );
    // Every other element is copied from the published documents, not rendered again;
    // the exports below hold what rendering the registry gives.
    assert!(
        log.contains("Zorgaanbiederslijst release3: 1 of 4500 Zorgaanbieder elements validated, the rest were before; 4499 copied from the published document"),
        "{log}"
    );
    assert!(
        log.contains("(Interfaceversie 1.1.0): 0 of 1500 Zorgaanbieder elements validated, the rest were before; 1499 copied"),
        "{log}"
    );
    // Its gzip variant reuses the first publication's blocks of the unchanged groups.
    let reused = |line: &str| -> (usize, usize) {
        let l = log
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("{log}"));
        let n: Vec<usize> = l
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[0], n[1])
    };
    let (copied, groups) = reused("Zorgaanbiederslijst release3: gzip:");
    assert!(
        groups >= 3 && copied + 2 >= groups && copied < groups,
        "{copied} of {groups}"
    );
    // Its 1.1.0 rendition's content did not change, but one block of its `.gz` file was
    // damaged: that block is compressed again, every other one copied.
    let (copied, groups) = reused("(Interfaceversie 1.1.0): gzip:");
    assert_eq!(copied + 1, groups);
    let zal = check_large_exports(&data, dir.path(), "second");
    assert!(zal.contains("https://medmij.baaa.nl/v3/token"));
    // What gzip clients get decompresses, with the system's gzip, to the document: made
    // from reused blocks, and after the damage one compressed again (release2).
    for release in ["2.0.0", "1.1.2"] {
        let doc = dir
            .path()
            .join(format!("second-{release}/MedMij_Zorgaanbiederslijst.xml"));
        let gz = gz_of(&doc);
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&gz)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", gz.display());
        assert!(
            out.stdout == std::fs::read(&doc).unwrap(),
            "gzip variant of {release}"
        );
    }
    // An edit undone before publishing leaves the list written but its content as it was:
    // the ZAL started beside the rule check, at the Volgnummer a change would give it, is
    // let go of; nothing is published and no file of it stays.
    let files = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(data.join("documents"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = files();
    endpoints("v4");
    endpoints("v3");
    let (out, log) = publish_logged(&data, "undone");
    assert!(out.contains("nothing changed"), "{out}");
    assert!(log.contains("rendered, validated and written"), "{log}");
    assert_eq!(files(), before);
}

/// Export the large registry's releases, check them with xmllint and xmlsec1 and against
/// the registry; the release3 ZAL's text.
fn check_large_exports(data: &Path, dir: &Path, tag: &str) -> String {
    let reg = {
        let store = stelselnode::registry::store::Store::open(&data.join("registry.redb")).unwrap();
        store.registry().unwrap()
    };
    let cert = data.join("signing-cert.pem");
    let mut release3 = String::new();
    for (release, official) in [
        ("1.1.2", Some("zorgaanbiederslijst-release2-fv5.xsd")),
        ("2.0.0", None),
    ] {
        let out = dir.join(format!("{tag}-{release}"));
        ok(
            data,
            &[
                "export",
                "--release",
                release,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let zal = out.join("MedMij_Zorgaanbiederslijst.xml");
        let own = if official.is_some() {
            "zorgaanbiederslijst-release2.xsd"
        } else {
            "zorgaanbiederslijst-release3.xsd"
        };
        xmllint_valid(&project_xsd(own), &zal).unwrap();
        if let Some(o) = official {
            xmllint_valid(&official_xsd(o), &zal).unwrap();
        } else {
            xmlsec1_verify(&cert, &zal, None).unwrap();
        }
        xmlsec1_verify(
            &cert,
            &out.join("MedMij_Zorgaanbiederslijst.xml.sig"),
            Some(("MedMij_Zorgaanbiederslijst.xml", &zal)),
        )
        .unwrap();
        let bytes = std::fs::read(&zal).unwrap();
        assert_as_rendered(&reg, &bytes, official.is_some(), release);
        // Same content as the registry, in the same order.
        let back = registry_of(&bytes);
        let expected: Vec<&String> = if release == "2.0.0" {
            reg.zorgaanbieders.keys().collect()
        } else {
            reg.zorgaanbieders
                .iter()
                .filter(|(_, z)| z.interfaceversies.len() == 2)
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            back.zorgaanbieders.keys().collect::<Vec<_>>(),
            expected,
            "{release}"
        );
        if release == "2.0.0" {
            release3 = String::from_utf8(bytes).unwrap();
        }
    }
    release3
}

/// A ZAL (release2's for Interfaceversie 1.1.0, or release3's) is byte for byte what
/// rendering `reg` gives (up to a release3 list's enveloped signature), however much of it
/// a publication copied from the documents before it.
fn assert_as_rendered(reg: &Registry, bytes: &[u8], release2: bool, what: &str) {
    use stelselnode::registry::model::{ListKind, SchemaVersion};
    let text = String::from_utf8_lossy(bytes);
    let field = |name: &str| {
        let open = format!("<{name}>");
        let at = text.find(&open).unwrap() + open.len();
        text[at..at + text[at..].find('<').unwrap()].to_string()
    };
    let rendition = stelselnode::registry::catalogue::Rendition {
        list: ListKind::Zorgaanbiederslijst,
        version: match release2 {
            true => SchemaVersion::Release2,
            false => SchemaVersion::Release3,
        },
        interfaceversie: release2.then(|| "1.1.0".to_string()),
    };
    let header = stelselnode::publish::render::Header {
        volgnummer: field("Volgnummer").parse().unwrap(),
        tijdstempel: field("Tijdstempel"),
    };
    let rendered = stelselnode::publish::render::render(reg, &rendition, &header).unwrap();
    let end = |b: &[u8]| {
        let close = b"</Zorgaanbieders>";
        b.windows(close.len()).position(|w| w == close).unwrap()
    };
    match release2 {
        true => assert!(bytes == rendered, "{what}: not as rendered"),
        false => assert!(
            bytes[..end(bytes)] == rendered[..end(&rendered)],
            "{what}: not as rendered"
        ),
    }
}

/// The files in `data/documents/`, split into history (`.xml.gz`) and served (`.xml`).
fn document_files(data: &Path) -> (Vec<String>, Vec<String>) {
    let mut gz = Vec::new();
    let mut plain = Vec::new();
    for e in std::fs::read_dir(data.join("documents")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(sha) = name.strip_suffix(".xml.gz") {
            gz.push(sha.to_string());
        } else if let Some(sha) = name.strip_suffix(".xml") {
            plain.push(sha.to_string());
        } else {
            panic!("unexpected file {name}");
        }
    }
    gz.sort();
    plain.sort();
    (gz, plain)
}

/// SHA-256 of every document the history logs, and of those published now, from the
/// archive the operator would hand to an auditor.
fn logged_hashes(data: &Path, dir: &Path) -> (Vec<String>, String) {
    let archive = dir.join("audit.tar");
    let _ = std::fs::remove_file(&archive);
    ok(
        data,
        &["history", "export", "--out", archive.to_str().unwrap()],
    );
    let v = ok(
        data,
        &[
            "history",
            "verify",
            archive.to_str().unwrap(),
            "--trust-embedded-cert",
        ],
    );
    assert!(v.contains("OK"), "{v}");
    let log = ok(data, &["history", "list"]);
    let tar = std::fs::read(&archive).unwrap();
    let text = String::from_utf8_lossy(&tar).to_string();
    let mut hashes: Vec<String> = text
        .split("\"sha256\":\"")
        .skip(1)
        .map(|s| s[..64].to_string())
        .collect();
    hashes.sort();
    hashes.dedup();
    (hashes, log)
}

fn sha256(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn publications_keep_history_compressed_and_serve_current_documents_from_files() {
    let (dir, data) = demo();
    // A publication that fails after writing its files leaves them behind only until the
    // next publication commits.
    ok(&data, &["whitelist", "add", "mislukt.voorbeeld.nl"]);
    let failed = std::process::Command::new(BIN)
        .env("STELSELNODE_FAILPOINTS", "publish.commit=error")
        .args(["--data", data.to_str().unwrap(), "publish", "-m", "fails"])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let (gz_failed, _) = document_files(&data);
    ok(&data, &["discard"]);
    ok(&data, &["whitelist", "add", "extra.voorbeeld.nl"]);
    ok(&data, &["publish", "-m", "one more node"]);
    let (gz, plain) = document_files(&data);
    assert!(gz_failed.iter().any(|s| !gz.contains(s)), "the orphan went");
    let (logged, _) = logged_hashes(&data, dir.path());
    // Every document ever published has its history file; only the published set has
    // uncompressed files (the first Whitelist left it).
    assert_eq!(gz, logged, "a .gz per logged document");
    assert_eq!(plain.len(), gz.len() - 1, "{plain:?}");
    // The history file holds exactly the document: gunzip and hash.
    for sha in &gz {
        let f = std::fs::File::open(data.join("documents").join(format!("{sha}.xml.gz"))).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(f), &mut bytes).unwrap();
        assert_eq!(&sha256(&bytes), sha);
    }
    // The server maps them: what it serves hashes to what the log says, and the historic
    // Whitelist comes from its compressed file.
    let server = Server::start(&data, &[]);
    for target in [
        "/MedMij_Whitelist.xml",
        "/MedMij_Whitelist.xml?volgnummer=1",
        "/MedMij_Zorgaanbiederslijst.xml?release=2.0.0",
    ] {
        let r = server.get(target);
        assert_eq!(r.status, 200, "{target}");
        assert!(
            gz.contains(&sha256(&r.body)),
            "{target} is a logged document"
        );
    }
    drop(server);
    // A history file that no longer holds its document is an error, not an answer.
    let wl1 = gz.iter().find(|s| !plain.contains(s)).unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, b"<Whitelist/>").unwrap();
    std::fs::write(
        data.join("documents").join(format!("{wl1}.xml.gz")),
        e.finish().unwrap(),
    )
    .unwrap();
    // Served without gzip, it is inflated as it is sent and checked before its last byte:
    // the answer ends short of its Content-Length, so no client takes it for the document.
    // (A document this small is one piece: the connection closes before its headers.)
    let server = Server::start(&data, &[]);
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /MedMij_Whitelist.xml?volgnummer=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    if let Some((head, body)) = text.split_once("\r\n\r\n") {
        let promised: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(
            !head.starts_with("HTTP/1.1 200") || body.len() < promised,
            "a damaged history file was answered in full: {text}"
        );
    }
    assert!(
        server.wait_stderr("SHA-256 differs", 5),
        "the reason is logged"
    );
    drop(server);
    // Its gzip trailer saying it is empty: an answer with no body to check, so it is
    // checked before answering, and refused.
    let file = data.join("documents").join(format!("{wl1}.xml.gz"));
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&[0; 4]);
    std::fs::write(&file, bytes).unwrap();
    let server = Server::start(&data, &[]);
    assert_eq!(server.get("/MedMij_Whitelist.xml?volgnummer=1").status, 500);
    assert!(
        server.wait_stderr("longer than its gzip trailer", 5),
        "{:?}",
        server.stderr.lock().unwrap()
    );
    drop(server);
    let err = fails(
        &data,
        &[
            "history",
            "export",
            "--out",
            dir.path().join("x.tar").to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not match its SHA-256"), "{err}");
}

#[test]
fn a_data_directory_from_before_documents_were_files_is_migrated_once() {
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v1");
    for f in ["registry.redb", "signing-cert.pem", "signing-key.pem"] {
        std::fs::copy(fixture.join(f), data.join(f)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let size_before = std::fs::metadata(data.join("registry.redb")).unwrap().len();
    // The first command migrates, and says so on stderr.
    let out = cli(&data, &["history", "list"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("moved 7 published document(s)"), "{err}");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.contains("#2") && list.contains("fixture: second publication"),
        "{list}"
    );
    let out = cli(&data, &["history", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "only once");
    let size_after = std::fs::metadata(data.join("registry.redb")).unwrap().len();
    assert!(
        size_after < size_before,
        "{size_after} < {size_before}: compacted"
    );
    // Everything the old directory published is there, byte for byte and verifiable.
    let (gz, plain) = document_files(&data);
    let (logged, _) = logged_hashes(&data, dir.path());
    assert_eq!(gz, logged);
    assert_eq!(plain.len(), 6, "the published set");
    // And the next publication on it works as on a new directory. It reads every table:
    // the old directory did not record which lists changed since its last publication.
    ok(&data, &["whitelist", "add", "na-migratie.voorbeeld.nl"]);
    let out = publish_debug(&data, "after the migration");
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("snapshot") && !log.contains("small tables only"),
        "{log}"
    );
    let server = Server::start(&data, &[]);
    let r = server.get("/MedMij_Whitelist.xml");
    assert!(r.text().contains("na-migratie.voorbeeld.nl"));
    assert_eq!(volgnummer(&r.text()), 3);
    assert_eq!(server.get("/MedMij_Whitelist.xml?volgnummer=1").status, 200);
}

/// In a server, the files of documents a publication replaced are removed after it, off
/// its path (freeing their pages takes a quarter of a second at 100k): soon only the
/// published set has uncompressed files, and the next publication waits for nothing.
#[test]
fn a_server_removes_replaced_files_after_the_publication() {
    let (_dir, data, server) = demo_server();
    let (_, before) = document_files(&data);
    ok(&data, &["whitelist", "add", "opruimen.voorbeeld.nl"]);
    ok(&data, &["publish", "-m", "one more node"]);
    assert!(server
        .get("/MedMij_Whitelist.xml")
        .text()
        .contains("opruimen.voorbeeld.nl"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (gz, plain) = document_files(&data);
        // One Whitelist document replaced per release schema: its history file stays.
        if plain.len() == before.len() && gz.len() > plain.len() {
            assert!(plain.iter().all(|p| gz.contains(p)));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replaced files still there: {plain:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A server keeps the published Zorgaanbieders decoded between publications (read when it
/// starts, and again after a publication that did not read them): the next publication
/// reads only the rows that differ from them, and publishes what rendering the whole
/// registry gives.
#[test]
fn a_server_publication_reads_only_the_changed_zorgaanbieders() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    add_zorgaanbieders(&data, 30);
    ok(&data, &["publish", "-m", "first"]);
    let server = Server::start_env(&data, &[], &[("RUST_LOG", "stelselnode=debug")]);
    let endpoints = |name: &str, v: &str| {
        ok(
            &data,
            &[
                "zorgaanbieder",
                "update",
                name,
                "--interfaceversie",
                "2.0.0",
                "--gegevensdienst",
                "1",
                "--authorization-endpoint",
                &format!("https://medmij.{v}.nl/authorize"),
                "--token-endpoint",
                &format!("https://medmij.{v}.nl/token"),
                "--systeemrol",
                &format!("MM-2.1-BZB-FHIR=https://medmij.{v}.nl/fhir"),
            ],
        )
    };
    let kept = || server.stderr_lines("the Zorgaanbieders kept from the last publication");
    let read_ahead = |n: usize| {
        let read = "published Zorgaanbieders read for the next publication";
        assert!(server.wait_stderr_n(read, n, 10), "not read ahead");
    };
    // Read when the server starts: its first publication reads the one row that differs.
    read_ahead(1);
    endpoints("baaa@medmij", "een");
    ok(&data, &["publish", "-m", "first through the server"]);
    let lines = kept();
    assert!(
        lines.len() == 1 && lines[0].contains(" 1 rows read again"),
        "{lines:?}"
    );
    // The next reads the two rows that differ: one changed, one removed.
    endpoints("baab@medmij", "twee");
    ok(&data, &["zorgaanbieder", "remove", "baac@medmij"]);
    ok(&data, &["publish", "-m", "kept"]);
    let lines = kept();
    assert!(
        lines.len() == 2 && lines[1].contains(" 2 rows read again"),
        "{lines:?}"
    );
    // A publication of the Whitelist alone does not read them: they are read again.
    ok(&data, &["whitelist", "add", "nog.een.voorbeeld.nl"]);
    ok(&data, &["publish", "-m", "whitelist"]);
    read_ahead(2);
    endpoints("baad@medmij", "drie");
    endpoints("baae@medmij", "vier");
    ok(&data, &["publish", "-m", "kept again"]);
    let lines = kept();
    assert!(
        lines.len() == 3 && lines[2].contains(" 2 rows read again"),
        "{lines:?}"
    );
    // A Weergavenaam changes nothing a Zorgaanbieder's rules read: the next publication
    // checks field by field only the Zorgaanbieder that changed.
    ok(
        &data,
        &[
            "gegevensdienst",
            "update",
            "3",
            "--weergavenaam",
            "Een andere naam",
        ],
    );
    ok(&data, &["publish", "-m", "a Weergavenaam"]);
    endpoints("baaf@medmij", "vijf");
    ok(&data, &["publish", "-m", "after a Weergavenaam"]);
    let checked = server.stderr_lines("rule check: ");
    assert!(
        checked
            .last()
            .is_some_and(|l| l.contains("rule check: 1 of 29 Zorgaanbieders changed")),
        "{checked:?}"
    );
    // What was published is what rendering the registry, read cold, gives.
    let exports: Vec<(bool, Vec<u8>)> = [("1.1.2", true), ("2.0.0", false)]
        .into_iter()
        .map(|(release, release2)| {
            let out = dir.path().join(format!("export-{release}"));
            ok(
                &data,
                &[
                    "export",
                    "--release",
                    release,
                    "--out",
                    out.to_str().unwrap(),
                ],
            );
            let zal = std::fs::read(out.join("MedMij_Zorgaanbiederslijst.xml")).unwrap();
            (release2, zal)
        })
        .collect();
    drop(server);
    let store = stelselnode::registry::store::Store::open(&data.join("registry.redb")).unwrap();
    let reg = store.registry().unwrap();
    assert_eq!(reg.zorgaanbieders.len(), 29);
    assert!(String::from_utf8_lossy(&exports[1].1).contains("https://medmij.vier.nl/token"));
    for (release2, zal) in &exports {
        assert_as_rendered(&reg, zal, *release2, "after warm publications");
    }
}
