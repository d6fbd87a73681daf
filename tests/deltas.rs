//! Property test of deltas, in process: over a long random sequence of edits of every kind
//! (Zorgaanbieders, OAuthclients, Whitelist and Gegevensdienstnamenlijst entries added,
//! changed and removed; offerings moved between Interfaceversies, which changes what the
//! release2 projections show; whole lists replaced as an import does; gecontroleerde
//! livegang started and ended; releases added to the catalogue), every rendition of every
//! step is rendered (release3 ones with their enveloped signature, as published), and the
//! delta from the previous document must rebuild the new one byte for byte, through its
//! encoding.

use std::collections::BTreeMap;
use stelselnode::distribute::delta::{self, Delta};
use stelselnode::publish::render::{render, Header};
use stelselnode::registry::catalogue::{Catalogue, Release, Rendition, Status, DEFAULT_CATALOGUE};
use stelselnode::registry::livegang;
use stelselnode::registry::model::{
    Aanbiedertype, Gegevensdienst, Gegevensdienstnaam, Interfaceversie, OAuthclient, Registry,
    SchemaVersion, Systeemrol, Zorgaanbieder,
};
use stelselnode::registry::publication::rendition_id;

/// xorshift64*: reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn name(&mut self) -> String {
        (0..6)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
    fn pick<'a, K: Clone + 'a>(&mut self, keys: impl Iterator<Item = &'a K>) -> Option<K> {
        let v: Vec<&K> = keys.collect();
        (!v.is_empty()).then(|| v[self.below(v.len())].clone())
    }
}

fn offering(rng: &mut Rng, id: &str) -> Gegevensdienst {
    let host = format!("{}.example.nl", rng.name());
    Gegevensdienst {
        gegevensdienst_id: id.into(),
        authorization_endpointuri: format!("https://{host}/authorize"),
        token_endpointuri: format!("https://{host}/token"),
        abonneren: None,
        systeemrollen: vec![Systeemrol {
            systeemrolcode: "MM-2.1-BZB-FHIR".into(),
            resource_endpointuri: format!("https://{host}/fhir"),
        }],
    }
}

fn zorgaanbieder(rng: &mut Rng, naam: String) -> Zorgaanbieder {
    let mut ivs = vec![Interfaceversie {
        interfaceversie_id: "2.0.0".into(),
        gegevensdiensten: vec![offering(rng, "1")],
    }];
    if rng.below(2) == 0 {
        ivs.insert(
            0,
            Interfaceversie {
                interfaceversie_id: "1.1.0".into(),
                gegevensdiensten: vec![offering(rng, "4")],
            },
        );
    }
    Zorgaanbieder {
        zorgaanbiedernaam: naam,
        aanbiedertype: Aanbiedertype::ZA,
        interfaceversies: ivs,
    }
}

/// One random edit; returns its kind (for the coverage count).
fn edit(rng: &mut Rng, reg: &mut Registry, cat: &mut Catalogue, step: u64) -> &'static str {
    match rng.below(14) {
        0 | 1 => {
            let naam = format!("{}@medmij", rng.name());
            let z = zorgaanbieder(rng, naam.clone());
            reg.zorgaanbieders.insert(naam, z);
            "zorgaanbieder add"
        }
        2 => {
            if let Some(k) = rng.pick(reg.zorgaanbieders.keys()) {
                reg.zorgaanbieders.remove(&k);
            }
            "zorgaanbieder remove"
        }
        3 => {
            if let Some(k) = rng.pick(reg.zorgaanbieders.keys()) {
                let z = zorgaanbieder(rng, k.clone());
                reg.zorgaanbieders.insert(k, z);
            }
            "zorgaanbieder update"
        }
        4 => {
            // An offering moves in or out of Interfaceversie 1.1.0: the release2
            // projection of 1.1.0 gains or loses the entry.
            if let Some(k) = rng.pick(reg.zorgaanbieders.keys()) {
                let z = reg.zorgaanbieders.get_mut(&k).unwrap();
                if z.interfaceversies.len() > 1 {
                    z.interfaceversies.remove(0);
                } else {
                    z.interfaceversies.insert(
                        0,
                        Interfaceversie {
                            interfaceversie_id: "1.1.0".into(),
                            gegevensdiensten: vec![offering(rng, "4")],
                        },
                    );
                }
            }
            "interfaceversie projection"
        }
        5 => {
            let h = format!("{}.pgo.nl", rng.name());
            reg.oauthclients.insert(
                h.clone(),
                OAuthclient {
                    hostname: h,
                    oauthclient_organisatienaam: format!("PGO {}", rng.name()),
                    gegevensdiensten: vec!["1".into()],
                },
            );
            "oauthclient add/update"
        }
        6 => {
            if let Some(k) = rng.pick(reg.oauthclients.keys()) {
                reg.oauthclients.remove(&k);
            }
            "oauthclient remove"
        }
        7 => {
            if rng.below(2) == 0 {
                reg.whitelist.insert(format!("{}.node.nl", rng.name()));
            } else if let Some(k) = rng.pick(reg.whitelist.iter()) {
                reg.whitelist.remove(&k);
            }
            "whitelist add/remove"
        }
        8 => {
            let id = (10 + rng.below(20)).to_string();
            if rng.below(3) == 0 {
                reg.gegevensdiensten.remove(&id);
            } else {
                reg.gegevensdiensten.insert(
                    id.clone(),
                    Gegevensdienstnaam {
                        gegevensdienst_id: id,
                        weergavenaam: format!("Dienst {}", rng.name()),
                    },
                );
            }
            "gegevensdienstnaam add/update/remove"
        }
        9 => {
            // An import: the Whitelist replaced whole (sometimes by a tiny one).
            let n = 1 + rng.below(6);
            reg.whitelist = (0..n)
                .map(|_| format!("{}.import.nl", rng.name()))
                .collect();
            "import"
        }
        10 | 11 => {
            let started = reg.livegangen.keys().next().cloned();
            match started {
                Some(id) => {
                    livegang::end(reg, &id).unwrap();
                    "livegang end"
                }
                None => {
                    // One that offers Gegevensdienst 4 in the verplicht release's
                    // Interfaceversie, whose endpoints the copy takes.
                    let offering: Vec<String> = reg
                        .zorgaanbieders
                        .iter()
                        .filter(|(_, z)| z.interfaceversie("1.1.0").is_some())
                        .map(|(k, _)| k.clone())
                        .collect();
                    let Some(z) = rng.pick(offering.iter()) else {
                        return "livegang start (nothing to copy)";
                    };
                    let Some(c) = rng.pick(reg.oauthclients.keys()) else {
                        return "livegang start (nothing to copy)";
                    };
                    let start = livegang::Start {
                        gegevensdienst: "4".into(),
                        zorgaanbieders: vec![z],
                        oauthclients: vec![c],
                        until: "2099-01-01".into(),
                        copy_id: None,
                        release: None,
                        endpoints: None,
                    };
                    match livegang::start(reg, cat, start, "test", time::OffsetDateTime::now_utc())
                    {
                        Ok(_) => "livegang start",
                        Err(_) => "livegang start (refused)",
                    }
                }
            }
        }
        12 => {
            // A new release: a rendition that did not exist (no delta yet), and next
            // time a projection of another Interfaceversie.
            let mut r: Release = cat.get("2.0.0").unwrap().clone();
            r.id = format!("2.{}.0", step % 9000 + 1);
            r.status = Status::Optioneel;
            if rng.below(2) == 0 {
                r.zorgaanbiederslijst = SchemaVersion::Release2;
                r.interfaceversie = "2.0.0".into();
            }
            let _ = cat.add_release(r);
            "catalogue"
        }
        _ => {
            if let Some(k) = rng.pick(reg.zorgaanbieders.keys()) {
                let z = reg.zorgaanbieders.get_mut(&k).unwrap();
                z.aanbiedertype = match z.aanbiedertype {
                    Aanbiedertype::ZA => Aanbiedertype::BAZB,
                    _ => Aanbiedertype::ZA,
                };
            }
            "aanbiedertype"
        }
    }
}

/// The demo registry: the embedded demo lists read back.
fn demo_registry() -> Registry {
    use stelselnode::consume::read::{apply, read_list, Release2Mapping};
    let mut reg = Registry::default();
    for (_, bytes) in stelselnode::demo::DEMO_LISTS {
        let map = Release2Mapping {
            interfaceversie: "1.1.0".into(),
            aanbiedertype: Aanbiedertype::ZA,
        };
        apply(&mut reg, read_list(bytes).unwrap(), &map);
    }
    reg.canonicalize();
    reg
}

/// Every rendition of `reg` as published: release3 documents carry their enveloped
/// signature.
fn documents(
    reg: &Registry,
    cat: &Catalogue,
    h: &Header,
    key: &stelselnode::sign::SigningKey,
) -> BTreeMap<Rendition, Vec<u8>> {
    cat.renditions()
        .into_iter()
        .map(|r| {
            let mut doc = render(reg, &r, h).unwrap();
            let def = stelselnode::xml::schema::def(r.list, r.version).unwrap();
            if !def.official {
                key.sign_enveloped_in_place(&mut doc).unwrap();
            }
            (r, doc)
        })
        .collect()
}

#[test]
fn deltas_rebuild_every_document_byte_for_byte_over_random_edits() {
    let (k, c) = stelselnode::sign::SigningKey::generate_development().unwrap();
    let key = stelselnode::sign::SigningKey::from_pem(&k, &c).unwrap();
    let mut cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
    let mut reg = demo_registry();
    let mut rng = Rng(0x5eed_0fde_17a5);
    let header = |v: u64| Header {
        volgnummer: v,
        tijdstempel: format!(
            "2026-12-07T{:02}:{:02}:{:02}Z",
            v / 3600 % 24,
            v / 60 % 60,
            v % 60
        ),
    };
    let mut before = documents(&reg, &cat, &header(1), &key);
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut checked, mut made) = (0, 0);
    const SEQUENCES: u64 = 1000;
    for step in 2..SEQUENCES + 2 {
        for _ in 0..1 + rng.below(3) {
            *kinds
                .entry(edit(&mut rng, &mut reg, &mut cat, step))
                .or_default() += 1;
        }
        reg.canonicalize();
        let after = documents(&reg, &cat, &header(step), &key);
        for (r, new) in &after {
            let Some(old) = before.get(r) else { continue };
            checked += 1;
            let id = rendition_id(r);
            let (a, b) = (
                stelselnode::digest::sha256_hex(old),
                stelselnode::digest::sha256_hex(new),
            );
            if let Some(d) = delta::make(r.list, &id, (old, step - 1, &a), (new, step, &b)) {
                made += 1;
                let back = Delta::decode(&d.encode()).unwrap();
                assert_eq!(back, d, "step {step}, {id}");
                let rebuilt = delta::apply(old, r.list, &back).unwrap();
                assert!(rebuilt == *new, "step {step}, {id}: not byte for byte");
            }
        }
        before = after;
    }
    eprintln!("{checked} document pairs, {made} deltas; edits: {kinds:?}");
    // Every kind of edit happened, and deltas were made for most pairs (not for empty
    // documents, or where a delta would be no smaller than the document).
    for kind in [
        "zorgaanbieder add",
        "zorgaanbieder remove",
        "zorgaanbieder update",
        "interfaceversie projection",
        "oauthclient remove",
        "whitelist add/remove",
        "gegevensdienstnaam add/update/remove",
        "import",
        "livegang start",
        "livegang end",
        "catalogue",
    ] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "{kind} never happened"
        );
    }
    assert!(made * 10 > checked * 6, "{made} deltas for {checked} pairs");
}
