use super::*;

fn demo() -> Registry {
    demo_registry()
}

/// Kept whole, a document comes back byte for byte (release3 ones with their
/// ds:Signature); kept in part, only the chosen entries remain.
#[test]
fn select_entries_keeps_the_document_as_it_is() {
    use crate::publish::render::{render, Header};
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
    let mut reg = demo();
    for c in reg.oauthclients.values_mut().take(1) {
        c.oauthclient_organisatienaam = "A & B <\"zorg\"> 'x'".into();
    }
    let (k, c) = crate::sign::SigningKey::generate_development().unwrap();
    let key = crate::sign::SigningKey::from_pem(&k, &c).unwrap();
    let h = Header {
        volgnummer: 4,
        tijdstempel: "2026-01-01T00:00:00Z".into(),
    };
    for r in Catalogue::parse(DEFAULT_CATALOGUE).unwrap().renditions() {
        let doc = key.sign_enveloped(&render(&reg, &r, &h).unwrap()).unwrap();
        let all: std::collections::BTreeSet<String> = entry_digests(&doc[..], r.list)
            .unwrap()
            .into_keys()
            .collect();
        let (whole, n) = select_entries(&doc[..], r.list, &all).unwrap();
        assert_eq!(n, all.len(), "{r}");
        assert_eq!(
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&doc),
            "{r}"
        );
        let one: std::collections::BTreeSet<String> = all.iter().take(1).cloned().collect();
        let (part, n) = select_entries(&doc[..], r.list, &one).unwrap();
        assert_eq!(n, 1, "{r}");
        let kept = entry_digests(&part[..], r.list).unwrap();
        assert_eq!(
            kept.keys().cloned().collect::<Vec<_>>(),
            one.into_iter().collect::<Vec<_>>()
        );
    }
}

/// The demo list whose file name starts with `name`.
fn demo_list(name: &str) -> &'static [u8] {
    crate::demo::DEMO_LISTS
        .iter()
        .find(|(n, _)| n.starts_with(name))
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no demo list {name}"))
}

#[test]
fn zorgaanbieder_entries_are_taken_as_they_are_parsed_not_kept_in_the_tree() {
    let zal = demo_list("zorgaanbiederslijst");
    let text = std::str::from_utf8(zal).unwrap();
    let names: Vec<&str> = text
        .split("<Zorgaanbiedernaam>")
        .skip(1)
        .map(|s| &s[..s.find('<').unwrap()])
        .collect();
    assert!(names.len() > 1);
    let mut taken = Vec::new();
    let tree = parse_tree(zal, Some(("Zorgaanbieders", "Zorgaanbieder")), &mut |z| {
        taken.push(z.text_of("Zorgaanbiedernaam")?);
        Ok(())
    })
    .unwrap();
    assert_eq!(taken, names);
    assert!(tree.child("Zorgaanbieders").unwrap().children.is_empty());
    assert!(tree.child("Volgnummer").is_ok());
    let l = read_list(zal).unwrap();
    match &l.content {
        Content::ZalRelease3(z) => assert_eq!(z.len(), names.len()),
        Content::ZalRelease2(z) => assert_eq!(z.len(), names.len()),
        _ => panic!("not a ZAL"),
    }
    // The keys taken are checked as the tree's are (libxml2 already refuses exact
    // duplicates of a Zorgaanbiedernaam, whose pattern allows no white space).
    let err = unique(
        ListKind::Zorgaanbiederslijst,
        ["a@medmij", "b@medmij", " a@medmij"],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Zorgaanbieder 1 and Zorgaanbieder 3"), "{err}");
}

#[test]
fn whitelist_hosts_are_taken_as_they_are_parsed_and_checked_unique() {
    let wl = demo_list("whitelist");
    let text = std::str::from_utf8(wl).unwrap();
    let n = text.matches("<MedMijNode>").count();
    match read_list(wl).unwrap().content {
        Content::Whitelist(hosts) => assert_eq!(hosts.len(), n),
        _ => panic!("not a Whitelist"),
    }
    // The first node twice: refused, naming the host (libxml2's unique constraint
    // comes first; the keys taken are checked as well, see `unique`).
    let a = text.find("<MedMijNode>").unwrap();
    let b = a + text[a..].find("</MedMijNode>").unwrap() + "</MedMijNode>".len();
    let host = &text[a..b]
        .split("<Hostname>")
        .nth(1)
        .and_then(|h| h.split('<').next())
        .unwrap();
    let doubled = format!("{}{}{}", &text[..b], &text[a..b], &text[b..]);
    let err = read_list(doubled.as_bytes()).unwrap_err().to_string();
    assert!(err.contains(host), "{err}");
    let err = unique(ListKind::Whitelist, ["a.nl", "b.nl", "a.nl"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("MedMijNode 1 and MedMijNode 3"), "{err}");
}

fn map(iv: &str) -> Release2Mapping {
    Release2Mapping {
        interfaceversie: iv.into(),
        aanbiedertype: Aanbiedertype::ZA,
    }
}

/// A release2 list rendered from `reg` (what another Stelselnode would serve).
fn release2(reg: &Registry, list: ListKind) -> Vec<u8> {
    let cat =
        crate::registry::catalogue::Catalogue::parse(crate::registry::catalogue::DEFAULT_CATALOGUE)
            .unwrap();
    let r = cat.get("1.1.1").unwrap().rendition(list);
    let h = crate::publish::render::Header {
        volgnummer: 9,
        tijdstempel: "2026-01-01T00:00:00Z".into(),
    };
    crate::publish::render::render(reg, &r, &h).unwrap()
}

#[test]
fn a_release2_list_replaces_only_what_it_can_carry() {
    let before = demo();
    // A release2 ZAL has one Interfaceversie and no Abonneren or Aanbiedertype: those
    // survive its import; an OCL release2 has no Gegevensdiensten: they survive too.
    for list in [ListKind::Zorgaanbiederslijst, ListKind::OAuthclientlist] {
        let doc = release2(&before, list);
        let l = read_list(&doc).unwrap();
        assert_eq!(l.volgnummer, 9);
        let mut after = before.clone();
        apply(&mut after, l, &map("1.1.0"));
        after.canonicalize();
        assert_eq!(after, before, "{list}");
    }
    // Into another Interfaceversie it adds offerings, keeps the others.
    let mut other = before.clone();
    apply(
        &mut other,
        read_list(&release2(&before, ListKind::Zorgaanbiederslijst)).unwrap(),
        &map("1.0.0"),
    );
    other.canonicalize();
    let z = &other.zorgaanbieders["umcharderwijk@medmij"];
    assert_eq!(
        z.interfaceversie("1.0.0").map(|i| i.gegevensdiensten.len()),
        z.interfaceversie("1.1.0").map(|i| i.gegevensdiensten.len())
    );
}

#[test]
fn inspect_counts_without_reading_content() {
    for (_, bytes) in crate::demo::DEMO_LISTS {
        let i = inspect(bytes).unwrap();
        let l = read_list(bytes).unwrap();
        assert_eq!(i.describe(), l.describe());
    }
}
