//! Render one [`Rendition`] of the registry as XML.
//!
//! The output is written so that the root element is already in exclusive canonical form
//! (no empty-element tags, no attributes but the namespace, text escaped as c14n does:
//! `&`, `<`, `>` only). That lets `sign` digest an enveloped signature over the bytes it
//! already holds instead of re-parsing and canonicalising a large document.

use crate::registry::catalogue::Rendition;
use crate::registry::model::{Gegevensdienst, ListKind, Registry, SchemaVersion, Zorgaanbieder};
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use std::io;

/// The per-publication header of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub volgnummer: u64,
    /// `YYYY-MM-DDThh:mm:ssZ`
    pub tijdstempel: String,
}

struct Out {
    w: Writer<Vec<u8>>,
}

impl Out {
    fn open(&mut self, name: &str) -> io::Result<()> {
        self.w.write_event(Event::Start(BytesStart::new(name)))
    }
    fn close(&mut self, name: &str) -> io::Result<()> {
        self.w.write_event(Event::End(BytesEnd::new(name)))
    }
    fn leaf(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.w
            .create_element(name)
            .write_text_content(BytesText::from_escaped(partial_escape(value)))?;
        Ok(())
    }
    /// `<Outer><Inner>value</Inner></Outer>`, the shape of every endpoint element.
    fn wrapped(&mut self, outer: &str, inner: &str, value: &str) -> io::Result<()> {
        self.open(outer)?;
        self.leaf(inner, value)?;
        self.close(outer)
    }
}

/// Render `rendition` of `reg` with `header`. Returns a complete document that ends with
/// `</Root>\n`.
pub fn render(reg: &Registry, rendition: &Rendition, header: &Header) -> io::Result<Vec<u8>> {
    render_inner(
        reg,
        rendition,
        header,
        &mut reg.zorgaanbieders.values(),
        None,
        None,
    )
}

/// The renderer's fingerprint: the SHA-256 of this file's text, of the model (whose
/// canonical order the elements follow), of the dependencies' versions (quick-xml escapes
/// the text) and of the crate's version. A Zorgaanbieder element's bytes are a function of
/// the Zorgaanbieder and the rendition alone, as the renderer with this fingerprint writes
/// them; a publication copies elements only from a document it made.
pub fn fingerprint() -> &'static str {
    static FINGERPRINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let mut text = String::from(env!("CARGO_PKG_VERSION"));
        text.push_str(include_str!("render.rs"));
        text.push_str(include_str!("../registry/model.rs"));
        text.push_str(include_str!("../../Cargo.lock"));
        crate::digest::sha256_hex(text.as_bytes())
    })
}

/// Where a part gets a Zorgaanbieder's element from instead of rendering it: its exact
/// bytes (with the whitespace before it) as rendered before, when they are known to be
/// what rendering it now gives, and which entry of the document they come from.
pub type Reuse<'p> = dyn Fn(&Zorgaanbieder) -> Option<(&'p [u8], usize)> + Sync + 'p;

/// A complete Zorgaanbiederslijst holding only `part` of the Zorgaanbieders, valid on its
/// own, so large lists can be rendered and validated in parallel parts and then put
/// written out one after the other (the publication's pipeline does, in order, cut at
/// [`element_span`]); with where each Zorgaanbieder element lies in it:
/// `marks[0]` is where the first begins and `marks[i + 1]` where the i-th ends (with the
/// whitespace before it). A Zorgaanbieder that is not in this rendition has an empty range.
pub fn render_zal_part_marked(
    reg: &Registry,
    part: &[&Zorgaanbieder],
    rendition: &Rendition,
    header: &Header,
) -> io::Result<MarkedPart> {
    render_zal_part_reusing(reg, part, rendition, header, &|_| None).map(|(part, _)| part)
}

/// [`render_zal_part_marked`], with the elements `reuse` has copied instead of rendered;
/// and, per Zorgaanbieder of the part, the entry it was copied from, if it was.
pub fn render_zal_part_reusing(
    reg: &Registry,
    part: &[&Zorgaanbieder],
    rendition: &Rendition,
    header: &Header,
    reuse: &Reuse,
) -> io::Result<(MarkedPart, Vec<Option<usize>>)> {
    let mut marks = Vec::with_capacity(part.len() + 1);
    let mut copied = Vec::with_capacity(part.len());
    let bytes = render_inner(
        reg,
        rendition,
        header,
        &mut part.iter().copied(),
        Some(&mut marks),
        Some((reuse, &mut copied)),
    )?;
    Ok(((bytes, marks), copied))
}

/// A part made by [`render_zal_part_marked`]: its bytes and where its elements lie.
pub type MarkedPart = (Vec<u8>, Vec<usize>);

/// The document `render` would have made, as pieces of parts made by
/// [`render_zal_part_marked`] (in registry order): the first part's header, every part's
/// Zorgaanbieder elements exactly as marked, the footer. Taken from the marks, so every
/// byte between the header and the footer is a marked (hashed, validated) element.
/// Zorgaanbiedernaam is unique across parts because it is the registry key. The reference
/// the publication's in-order writer is tested against.
#[cfg(test)]
pub fn zal_pieces(parts: &[MarkedPart]) -> Option<Vec<&[u8]>> {
    let mut split = Vec::with_capacity(parts.len());
    for part in parts {
        split.push(element_span(part)?);
    }
    let ((first, _), &(a0, b0)) = (parts.first()?, split.first()?);
    // An empty part closes `Zorgaanbieders` on the same line; take the footer of a part
    // with elements, as the whole document has them.
    let footer = parts
        .iter()
        .zip(&split)
        .find(|(_, (a, b))| b > a)
        .map(|((p, _), (_, b))| &p[*b..])
        .unwrap_or(&first[b0..]);
    let mut pieces = Vec::with_capacity(parts.len() + 2);
    pieces.push(&first[..a0]);
    pieces.extend(parts.iter().zip(split).map(|((p, _), (a, b))| &p[a..b]));
    pieces.push(footer);
    Some(pieces)
}

/// Where a part's Zorgaanbieder elements begin and end: before them its header, after
/// them its footer. `None` if the marks do not fit the part.
pub fn element_span((p, marks): &MarkedPart) -> Option<(usize, usize)> {
    let (a, b) = (*marks.first()?, *marks.last()?);
    (a <= b && b <= p.len()).then_some((a, b))
}

fn render_inner<'a>(
    reg: &'a Registry,
    rendition: &Rendition,
    header: &Header,
    zorgaanbieders: &mut dyn Iterator<Item = &'a Zorgaanbieder>,
    mut marks: Option<&mut Vec<usize>>,
    mut reuse: Option<(&Reuse, &mut Vec<Option<usize>>)>,
) -> io::Result<Vec<u8>> {
    let schema = crate::xml::schema::def(rendition.list, rendition.version)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let root = rendition.list.root();
    let mut out = Out {
        w: Writer::new_with_indent(
            Vec::with_capacity(estimate(reg, rendition.list, zorgaanbieders.size_hint().0)),
            b' ',
            2,
        ),
    };
    out.w
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    out.w.write_event(Event::Start(
        BytesStart::new(root).with_attributes([("xmlns", schema.namespace)]),
    ))?;
    out.leaf("Tijdstempel", &header.tijdstempel)?;
    out.leaf("Volgnummer", &header.volgnummer.to_string())?;
    match rendition.list {
        ListKind::Zorgaanbiederslijst => {
            out.open("Zorgaanbieders")?;
            if let Some(m) = marks.as_mut() {
                m.push(out.w.get_ref().len());
            }
            for z in zorgaanbieders {
                let copy = reuse.as_mut().and_then(|(from, copied)| {
                    let found = from(z);
                    copied.push(found.map(|(_, entry)| entry));
                    found.map(|(bytes, _)| bytes)
                });
                match (copy, &rendition.interfaceversie) {
                    // The writer's state (depth, a line break due) is the same after an
                    // element as before it, so what follows is written as if it had
                    // written this one.
                    (Some(bytes), _) => out.w.get_mut().extend_from_slice(bytes),
                    (None, Some(iv)) => zorgaanbieder_release2(&mut out, z, iv)?,
                    (None, None) => zorgaanbieder_release3(&mut out, z)?,
                }
                if let Some(m) = marks.as_mut() {
                    m.push(out.w.get_ref().len());
                }
            }
            out.close("Zorgaanbieders")?;
        }
        ListKind::OAuthclientlist => {
            let with_gegevensdiensten = rendition.version != SchemaVersion::Release2;
            out.open("OAuthclients")?;
            for c in reg.oauthclients.values() {
                out.open("OAuthclient")?;
                out.leaf("Hostname", &c.hostname)?;
                out.leaf("OAuthclientOrganisatienaam", &c.oauthclient_organisatienaam)?;
                if with_gegevensdiensten {
                    out.open("Gegevensdiensten")?;
                    for id in &c.gegevensdiensten {
                        out.open("Gegevensdienst")?;
                        out.leaf("GegevensdienstId", id)?;
                        out.close("Gegevensdienst")?;
                    }
                    out.close("Gegevensdiensten")?;
                }
                out.close("OAuthclient")?;
            }
            out.close("OAuthclients")?;
        }
        ListKind::Whitelist => {
            out.open("MedMijNodes")?;
            for h in &reg.whitelist {
                out.wrapped("MedMijNode", "Hostname", h)?;
            }
            out.close("MedMijNodes")?;
        }
        ListKind::Gegevensdienstnamenlijst => {
            out.open("Gegevensdiensten")?;
            for g in reg.gegevensdiensten_ordered() {
                out.open("Gegevensdienst")?;
                out.leaf("GegevensdienstId", &g.gegevensdienst_id)?;
                out.leaf("Weergavenaam", &g.weergavenaam)?;
                out.close("Gegevensdienst")?;
            }
            out.close("Gegevensdiensten")?;
        }
    }
    out.close(root)?;
    let mut bytes = out.w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

/// The capacity to start a document with: `zorgaanbieders` is how many this one (a part,
/// perhaps) holds.
fn estimate(reg: &Registry, list: ListKind, zorgaanbieders: usize) -> usize {
    match list {
        ListKind::Zorgaanbiederslijst => 512 + zorgaanbieders * 1700,
        ListKind::OAuthclientlist => 512 + reg.oauthclients.len() * 300,
        ListKind::Whitelist => 512 + reg.whitelist.len() * 100,
        ListKind::Gegevensdienstnamenlijst => 512 + reg.gegevensdiensten.len() * 150,
    }
}

fn zorgaanbieder_release2(out: &mut Out, z: &Zorgaanbieder, iv: &str) -> io::Result<()> {
    // A Zorgaanbieder that offers nothing in this Interfaceversie is not in this document:
    // the release2 schema requires at least one Gegevensdienst.
    let Some(offer) = z.interfaceversie(iv) else {
        return Ok(());
    };
    if offer.gegevensdiensten.is_empty() {
        return Ok(());
    }
    out.open("Zorgaanbieder")?;
    out.leaf("Zorgaanbiedernaam", &z.zorgaanbiedernaam)?;
    out.open("Gegevensdiensten")?;
    for g in &offer.gegevensdiensten {
        gegevensdienst(out, g, false)?;
    }
    out.close("Gegevensdiensten")?;
    out.close("Zorgaanbieder")
}

fn zorgaanbieder_release3(out: &mut Out, z: &Zorgaanbieder) -> io::Result<()> {
    out.open("Zorgaanbieder")?;
    out.leaf("Zorgaanbiedernaam", &z.zorgaanbiedernaam)?;
    out.leaf("Aanbiedertype", z.aanbiedertype.as_str())?;
    out.open("Interfaceversies")?;
    for iv in &z.interfaceversies {
        out.open("Interfaceversie")?;
        out.leaf("InterfaceversieId", &iv.interfaceversie_id)?;
        out.open("Gegevensdiensten")?;
        for g in &iv.gegevensdiensten {
            gegevensdienst(out, g, true)?;
        }
        out.close("Gegevensdiensten")?;
        out.close("Interfaceversie")?;
    }
    out.close("Interfaceversies")?;
    out.close("Zorgaanbieder")
}

fn gegevensdienst(out: &mut Out, g: &Gegevensdienst, release3: bool) -> io::Result<()> {
    out.open("Gegevensdienst")?;
    out.leaf("GegevensdienstId", &g.gegevensdienst_id)?;
    out.wrapped(
        "AuthorizationEndpoint",
        "AuthorizationEndpointuri",
        &g.authorization_endpointuri,
    )?;
    out.wrapped("TokenEndpoint", "TokenEndpointuri", &g.token_endpointuri)?;
    if release3 {
        if let Some(a) = &g.abonneren {
            out.open("Abonneren")?;
            out.leaf("MaximaleDuur", &a.maximale_duur.to_string())?;
            out.leaf("SubscriptionEndpointuri", &a.subscription_endpointuri)?;
            out.close("Abonneren")?;
        }
    }
    out.open("Systeemrollen")?;
    for s in &g.systeemrollen {
        out.open("Systeemrol")?;
        out.leaf("Systeemrolcode", &s.systeemrolcode)?;
        out.wrapped(
            "ResourceEndpoint",
            "ResourceEndpointuri",
            &s.resource_endpointuri,
        )?;
        out.close("Systeemrol")?;
    }
    out.close("Systeemrollen")?;
    out.close("Gegevensdienst")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};

    #[test]
    fn entry_digests_name_every_entry_and_change_with_it_only() {
        use crate::consume::read::entry_digests;
        let reg = crate::consume::read::demo_registry();
        let h = Header {
            volgnummer: 3,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let mut changed = reg.clone();
        let (name, z) = changed.zorgaanbieders.iter_mut().next().unwrap();
        let name = name.clone();
        let mut seen = 0;
        z.interfaceversies[0].gegevensdiensten[0].token_endpointuri =
            "https://ander.voorbeeld.nl/token".into();
        for r in cat.renditions() {
            let doc = render(&reg, &r, &h).unwrap();
            let d = entry_digests(doc.as_slice(), r.list).unwrap();
            let keys: Vec<String> = crate::registry::diff::entries(&reg, &r)
                .into_keys()
                .collect();
            assert_eq!(d.keys().cloned().collect::<Vec<_>>(), keys, "{r}");
            if r.list != ListKind::Zorgaanbiederslijst {
                continue;
            }
            let d2 = entry_digests(render(&changed, &r, &h).unwrap().as_slice(), r.list).unwrap();
            let differ: Vec<&String> = d.keys().filter(|k| d[*k] != d2[*k]).collect();
            // The changed offering is in the first Interfaceversie; a release2 rendition
            // of another Interfaceversie does not show it.
            assert!(
                differ.is_empty() || differ == vec![&name],
                "{r}: {differ:?}"
            );
            seen += differ.len();
        }
        assert!(seen > 0, "the change shows in some rendition");
        // Enveloped signatures and the header are not entries; a DTD is refused.
        assert!(entry_digests(&b"<!DOCTYPE x><x/>"[..], ListKind::Whitelist).is_err());
    }

    #[test]
    fn parts_join_to_the_whole_document() {
        let reg = crate::consume::read::demo_registry();
        let h = Header {
            volgnummer: 3,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let all: Vec<&Zorgaanbieder> = reg.zorgaanbieders.values().collect();
        for r in cat
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
        {
            let whole = render(&reg, &r, &h).unwrap();
            // Part sizes 1..=n, including parts with nothing in this Interfaceversie.
            for size in 1..=all.len() {
                let parts: Vec<MarkedPart> = all
                    .chunks(size)
                    .map(|p| render_zal_part_marked(&reg, p, &r, &h).unwrap())
                    .collect();
                assert_eq!(
                    zal_pieces(&parts).unwrap().concat(),
                    whole,
                    "{r}, parts of {size}"
                );
            }
        }
        // An empty registry joins to the empty document.
        let empty = Registry::default();
        let r = cat.renditions().into_iter().next().unwrap();
        let part = render_zal_part_marked(&empty, &[], &r, &h).unwrap();
        assert_eq!(
            zal_pieces(&[part]).unwrap().concat(),
            render(&empty, &r, &h).unwrap()
        );
    }
}
