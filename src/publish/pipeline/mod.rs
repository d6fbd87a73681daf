//! The one code path from a registry snapshot to a commit: Volgnummers from content
//! hashes, then per rendition render → XSD-validate → sign → check our own signatures (in
//! parallel), then one redb transaction. It runs only under the publication lock, which
//! [`super::Publisher`] holds.

//!
//! `run` goes through four steps, each in its own file: `plan` (rules, content hashes,
//! Volgnummers, which renditions to make), `making` (render, validate, sign, check, write;
//! a large ZAL in `parts`), `record` (what the publication learnt, its index and log entry)
//! and the commit.

mod making;
mod parts;
mod plan;
mod record;
mod reuse;

use making::*;
use parts::*;
use plan::*;

use super::compress;
use super::render::{self, Header};
use super::{PublishError, Published};
use crate::registry::catalogue::{Catalogue, Rendition};
use crate::registry::model::{tijdstempel, ListKind, Registry};
use crate::registry::publication::{ListVersion, PublishedRendition};
use crate::registry::store::{PublicationBase, PublicationGuard, Snapshot, Store};
use crate::sign::{self, Signers};
use crate::xml::schema;
use std::collections::BTreeMap;
use std::collections::HashSet;
use time::OffsetDateTime;

/// From this many Zorgaanbieders on, a ZAL is rendered and validated in parts on all cores.
const PARALLEL_FROM: usize = 4096;

fn schema_of(r: &Rendition) -> Result<&'static schema::SchemaDef, PublishError> {
    schema::def(r.list, r.version).map_err(|errors| PublishError::Schema {
        rendition: r.to_string(),
        xsd: "-".into(),
        errors,
    })
}

/// SHA-256s of Zorgaanbieder elements (their exact bytes in a ZAL, with the whitespace
/// before them) that were validated against one XSD.
pub type Validated = HashSet<[u8; 32]>;

/// The Volgnummer a list gets when its content changed: one above its last and above its
/// floor (`None` if that overflows).
fn next_volgnummer(old: Option<&ListVersion>, floor: u64) -> Option<u64> {
    old.map(|o| o.volgnummer)
        .unwrap_or(0)
        .max(floor)
        .checked_add(1)
}

/// What one publication renders and why.
pub struct Run<'a> {
    pub registry: &'a Registry,
    pub catalogue: &'a Catalogue,
    pub base: &'a PublicationBase,
    pub operator: &'a str,
    pub reason: &'a str,
    pub now: OffsetDateTime,
    /// The journal entries this publication makes public (publishing the working
    /// registry); `None` for a change published on top of the published registry.
    pub journal_head: Option<u64>,
    /// A signing key step: every list gets a new Volgnummer and its documents are signed
    /// anew, though no content changed (the same Volgnummer with other bytes would be an
    /// equivocation to every consumer).
    pub every_list: bool,
    /// Written in the publication's own transaction (a key step's records).
    pub also_commit: Option<&'a crate::registry::store::AlsoCommit<'a>>,
}

impl Run<'_> {
    /// Whether this publication read `list`'s tables (all, unless only some changed).
    fn reads(&self, list: &ListKind) -> bool {
        self.base.reads(*list)
    }

    /// A ZAL large enough to be made in parts on every core.
    fn large(&self, r: &Rendition) -> bool {
        r.list == ListKind::Zorgaanbiederslijst
            && self.registry.zorgaanbieders.len() >= PARALLEL_FROM
    }

    /// The published document of `r`, if any.
    fn published(&self, r: &Rendition) -> Option<&PublishedRendition> {
        self.base
            .published
            .as_ref()?
            .renditions
            .iter()
            .find(|pr| &pr.rendition == r)
    }

    /// The published version of `list`, if any, and its Volgnummer floor.
    fn previous(&self, list: ListKind) -> (Option<&ListVersion>, u64) {
        let old = self
            .base
            .published
            .as_ref()
            .and_then(|p| p.lists.get(&list));
        (old, self.base.floors.get(&list).copied().unwrap_or(0))
    }
}

/// Publish `run`; `Ok(None)` when nothing would change: plan, make, record, commit.
pub fn run(
    store: &Store,
    guard: &PublicationGuard,
    key: &Signers,
    run: Run,
) -> Result<Option<Published>, PublishError> {
    let t = std::time::Instant::now();
    let stamp = tijdstempel(run.now);
    let known = known_elements(store, &run)?;
    let guess = first_large(&run, &stamp);
    let Planned {
        hashes,
        early,
        rules_checked,
    } = check_and_start(store, key, &run, &known, guess.as_ref())?;
    tracing::debug!(
        "rules and content hashes (and the first large ZAL) {:?}",
        t.elapsed()
    );
    let (lists, changed) = versions(&run, hashes, &stamp)?;
    let Some(Selected { reuse, todo }) = select(store, guard, &run, &lists)? else {
        return Ok(None);
    };
    let made = make_all(store, key, &run, &known, &todo, early)?;
    tracing::debug!("hashes and renditions {:?}", t.elapsed());
    let mut made = record::caches(store, guard, made, rules_checked);
    let deltas = record::deltas(&mut made);
    let records = record::records(&run, lists, changed, reuse, made, stamp)?;
    let t = std::time::Instant::now();
    let entry = store.commit_publication(
        guard,
        &records.index,
        records.entry,
        &records.new,
        run.registry,
        Snapshot {
            journal_head: run.journal_head,
            generation: run.base.generation,
            partial: run.base.partial.clone(),
            touched: match run.journal_head {
                Some(_) => Some(run.base.pending.clone()),
                None => run
                    .base
                    .published_registry
                    .as_ref()
                    .map(|p| crate::registry::store::Touched::between(p, run.registry)),
            },
            also: run.also_commit,
        },
    )?;
    tracing::debug!("commit {:?}", t.elapsed());
    // Committed: a delta that is not recorded only makes consumers take the document whole.
    if let Err(e) = crate::distribute::store::record(store, deltas, run.now.unix_timestamp()) {
        tracing::warn!("the deltas of this publication were not recorded: {e}");
    }
    crate::failpoint::hit("publish.committed").map_err(PublishError::Refused)?;
    Ok(Some(Published {
        entry,
        index: records.index,
        documents: records.documents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::DEFAULT_CATALOGUE;

    /// The demo registry with `n` more Zorgaanbieders, copies of the demo's.
    fn registry(n: usize) -> Registry {
        let mut reg = crate::consume::read::demo_registry();
        let models: Vec<_> = reg.zorgaanbieders.values().cloned().collect();
        for i in 0..n {
            let mut z = models[i % models.len()].clone();
            let name: String = format!("{i:04}")
                .bytes()
                .map(|d| (b'a' + d - b'0') as char)
                .collect();
            z.zorgaanbiedernaam = format!("extra{name}@medmij");
            reg.zorgaanbieders.insert(z.zorgaanbiedernaam.clone(), z);
        }
        reg
    }

    /// An empty staged file in a directory of its own (kept while the directory is).
    fn staged_file() -> (tempfile::TempDir, crate::registry::documents::Staged) {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::registry::documents::Files::beside(&dir.path().join("r.redb"));
        let staged = files.stage(&[]).unwrap();
        (dir, staged)
    }

    /// [`render_in_parts`] into a file of its own, its footer appended: the document's
    /// bytes and the parts' record. The gzip blocks cut from it must cover it exactly.
    fn in_parts(
        reg: &Registry,
        r: &Rendition,
        h: &Header,
        known: &Validated,
    ) -> Result<(Vec<u8>, Parts), PublishError> {
        in_parts_reusing(reg, r, h, known, None)
    }

    fn in_parts_reusing(
        reg: &Registry,
        r: &Rendition,
        h: &Header,
        known: &Validated,
        reuse: Option<&reuse::Reusable>,
    ) -> Result<(Vec<u8>, Parts), PublishError> {
        let (_dir, staged) = staged_file();
        let parts = render_in_parts(reg, r, h, known, &staged, false, reuse)?;
        staged.append(&parts.footer).unwrap();
        let xml = staged.map().unwrap().to_vec();
        let blocks = gzip_blocks(&xml, &parts).expect("blocks fit the document");
        let cut: Vec<u8> = blocks.iter().flat_map(|b| b.slices.concat()).collect();
        assert_eq!(cut, xml);
        Ok((xml, parts))
    }

    /// Every Zorgaanbiederslijst rendition of the default catalogue.
    fn zal_renditions() -> Vec<Rendition> {
        Catalogue::parse(DEFAULT_CATALOGUE)
            .unwrap()
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
            .collect()
    }

    fn doc(p: &(Vec<u8>, Parts)) -> Vec<u8> {
        p.0.clone()
    }

    fn header() -> Header {
        Header {
            volgnummer: 4,
            tijdstempel: "2026-12-01T00:00:00Z".into(),
        }
    }

    /// Point every token endpoint of the `i`-th Zorgaanbieder at `uri`.
    fn with_token_endpoint(reg: &Registry, i: usize, uri: &str) -> Registry {
        let mut reg = reg.clone();
        if let Some(z) = reg.zorgaanbieders.values_mut().nth(i) {
            for iv in &mut z.interfaceversies {
                for g in &mut iv.gegevensdiensten {
                    g.token_endpointuri = uri.into();
                }
            }
        }
        reg
    }

    #[test]
    fn incremental_validation_validates_new_elements_only_and_changes_no_byte() {
        let reg = registry(40);
        let h = header();
        let zals = zal_renditions();
        assert!(zals.len() >= 2, "{zals:?}");
        for r in &zals {
            let whole = render::render(&reg, r, &h).unwrap();
            let cold = in_parts(&reg, r, &h, &Validated::new()).unwrap();
            assert_eq!(doc(&cold), whole, "{r}");
            assert!(!cold.1.elements.is_empty(), "{r}");
            assert_eq!(
                cold.1.validated,
                cold.1.elements.len(),
                "{r}: nothing known yet"
            );
            let known: Validated = cold.1.elements.iter().copied().collect();
            let warm = in_parts(&reg, r, &h, &known).unwrap();
            assert_eq!((doc(&warm), warm.1.validated), (whole, 0), "{r}");

            // One changed Zorgaanbieder: its element alone is validated, the bytes are the
            // whole document's.
            let changed = with_token_endpoint(&reg, 7, "https://ander.voorbeeld.nl/token");
            let warm = in_parts(&changed, r, &h, &known).unwrap();
            assert_eq!(doc(&warm), render::render(&changed, r, &h).unwrap(), "{r}");
            assert!(warm.1.validated <= 1, "{r}: {}", warm.1.validated);
            if r.interfaceversie.is_none() {
                assert_eq!(warm.1.validated, 1, "{r}");
            }

            // An element that breaks the XSD is refused, known neighbours or not.
            let broken = with_token_endpoint(&reg, 7, "http://niet-https.voorbeeld.nl/token");
            if render::render(&broken, r, &h).unwrap() != render::render(&reg, r, &h).unwrap() {
                for k in [&Validated::new(), &known] {
                    match in_parts(&broken, r, &h, k) {
                        Err(PublishError::Schema { errors, .. }) => {
                            assert!(errors.to_string().contains("TokenEndpointuri"), "{errors}")
                        }
                        other => panic!("{r}: {:?}", other.map(|p| p.1.validated)),
                    }
                }
            }
        }
    }

    /// One random edit of the kinds that change a ZAL: an endpoint changed, a
    /// Zorgaanbieder removed or added, an offering moved to another Interfaceversie (which
    /// changes what the release2 projections show).
    fn edit(reg: &mut Registry, seed: &mut u64, step: usize) {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = reg.zorgaanbieders.len();
        let pick = (*seed >> 33) as usize % n.max(1);
        let Some(name) = reg.zorgaanbieders.keys().nth(pick).cloned() else {
            return;
        };
        match (*seed >> 20) % 4 {
            0 => *reg = with_token_endpoint(reg, pick, &format!("https://s{step}.voorbeeld.nl/t")),
            1 => {
                reg.zorgaanbieders.remove(&name);
            }
            2 => {
                let mut z = reg.zorgaanbieders[&name].clone();
                z.zorgaanbiedernaam = format!(
                    "nieuw{}@medmij",
                    "abcdefghij".chars().nth(step % 10).unwrap_or('a')
                );
                reg.zorgaanbieders.insert(z.zorgaanbiedernaam.clone(), z);
            }
            _ => {
                if let Some(z) = reg.zorgaanbieders.get_mut(&name) {
                    if z.interfaceversies.len() > 1 {
                        let to = &z.interfaceversies[1].gegevensdiensten;
                        let movable = z.interfaceversies[0].gegevensdiensten.last().filter(|g| {
                            to.iter()
                                .all(|t| t.gegevensdienst_id != g.gegevensdienst_id)
                        });
                        if movable.is_some() {
                            if let Some(g) = z.interfaceversies[0].gegevensdiensten.pop() {
                                z.interfaceversies[1].gegevensdiensten.push(g);
                            }
                        }
                        z.interfaceversies
                            .retain(|iv| !iv.gegevensdiensten.is_empty());
                    }
                }
            }
        }
        reg.canonicalize();
    }

    #[test]
    fn elements_copied_from_the_published_document_are_the_bytes_rendering_gives() {
        let zals = zal_renditions();
        for r in &zals {
            let mut reg = registry(40);
            let mut seed = 7;
            let (mut doc, mut parts) = in_parts(&reg, r, &header(), &Validated::new()).unwrap();
            let mut copied_any = false;
            for step in 0..40 {
                let before = reg.clone();
                for _ in 0..1 + step % 3 {
                    edit(&mut reg, &mut seed, step);
                }
                let changed =
                    crate::registry::store::Touched::between(&before, &reg).zorgaanbieders;
                let h = Header {
                    volgnummer: 5 + step as u64,
                    tijdstempel: "2026-12-02T00:00:00Z".into(),
                };
                let known: Validated = parts.elements.iter().copied().collect();
                let from = reuse::Reusable::new(&doc, &parts.ranges, &changed)
                    .unwrap_or_else(|| panic!("{r}, step {step}: the layout fits"));
                let made = in_parts_reusing(&reg, r, &h, &known, Some(&from)).unwrap();
                let rendered = render::render(&reg, r, &h).unwrap();
                assert!(made.0 == rendered, "{r}, step {step}");
                let shown = made.1.elements.len();
                assert!(made.1.copied + changed.len() >= shown, "{r}, step {step}");
                copied_any |= made.1.copied > 0;
                // The delta made from what was copied, without comparing copied elements,
                // is the one a comparison of the documents gives, and rebuilds the new one.
                use crate::distribute::{delta, split};
                let known_delta = delta::make_copied(
                    "r",
                    (
                        (&doc, 1, "a"),
                        split::at(&doc, r.list, &parts.ranges).unwrap(),
                    ),
                    (
                        (&made.0, 2, ""),
                        split::at(&made.0, r.list, &made.1.ranges).unwrap(),
                    ),
                    &made.1.copied_at,
                );
                let compared = delta::make(r.list, "r", (&doc, 1, "a"), (&made.0, 2, ""));
                assert_eq!(known_delta, compared, "{r}, step {step}");
                if let Some(d) = &known_delta {
                    assert!(
                        delta::apply(&doc, r.list, d).unwrap() == made.0,
                        "{r}, step {step}"
                    );
                }
                (doc, parts) = made;
            }
            assert!(copied_any, "{r}");
            // A damaged file is not copied from: its part is rendered, bytes unchanged.
            let mut damaged = doc.clone();
            let (a, b) = parts.ranges[5];
            let at = a + (b - a) / 2;
            damaged[at] = if damaged[at] == b'x' { b'y' } else { b'x' };
            let known: Validated = parts.elements.iter().copied().collect();
            let none = Default::default();
            let from = reuse::Reusable::new(&damaged, &parts.ranges, &none).unwrap();
            let made = in_parts_reusing(&reg, r, &header(), &known, Some(&from)).unwrap();
            assert!(made.0 == render::render(&reg, r, &header()).unwrap(), "{r}");
            // Only the damaged element's part was rendered.
            let n = parts.elements.len();
            let size = reg
                .zorgaanbieders
                .len()
                .div_ceil(crate::cores::count() * 4)
                .clamp(1, PART_MAX);
            assert!(
                made.1.copied < n && made.1.copied + size >= n,
                "{r}: {} of {n}",
                made.1.copied
            );
            // A layout that does not fit the document is no source at all.
            let mut shifted = parts.ranges.clone();
            shifted[0].0 += 1;
            assert!(reuse::Reusable::new(&doc, &shifted, &none).is_none());
            let encoded = reuse::encode(&parts.ranges).unwrap();
            assert_eq!(reuse::decode(&encoded).unwrap(), parts.ranges);
        }
    }

    #[test]
    fn parts_validated_out_of_order_are_written_in_order_and_digested_in_order() {
        let (k, c) = crate::sign::SigningKey::generate_development().unwrap();
        let key = Signers::one(crate::sign::SigningKey::from_pem(&k, &c).unwrap());
        let reg = registry(30);
        let h = header();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for r in cat
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
        {
            let all: Vec<_> = reg.zorgaanbieders.values().collect();
            // Part sizes that leave some parts with nothing in this Interfaceversie.
            for size in [1, 4, 7] {
                let parts: Vec<render::MarkedPart> = all
                    .chunks(size)
                    .map(|c| render::render_zal_part_marked(&reg, c, &r, &h).unwrap())
                    .collect();
                assert_eq!(
                    render::zal_pieces(&parts).unwrap().concat(),
                    render::render(&reg, &r, &h).unwrap()
                );
                let (_dir, staged) = staged_file();
                let sink = Sink {
                    staged: &staged,
                    state: Default::default(),
                    digest: Some(std::sync::Mutex::new(sign::EnvelopedDigest::new())),
                };
                // Last first: nothing can be written until the first part arrives.
                for (i, part) in parts.iter().enumerate().rev() {
                    let elements = part
                        .1
                        .windows(2)
                        .filter(|w| w[0] < w[1])
                        .map(|w| crate::digest::sha256(&part.0[w[0]..w[1]]))
                        .collect();
                    sink.deposit(
                        i,
                        Checked {
                            part: part.clone(),
                            elements,
                            copied: Vec::new(),
                        },
                    );
                    assert_eq!(staged.written() == 0, i > 0, "{r}: part {i}");
                }
                let digest = sink.digest.unwrap().into_inner().unwrap();
                let st = sink.state.into_inner().unwrap();
                assert_eq!(
                    (st.next, st.ready.len(), st.writing),
                    (parts.len(), 0, false)
                );
                let footer = st.footer.unwrap().bytes;
                staged.append(&footer).unwrap();
                let whole = render::render(&reg, &r, &h).unwrap();
                assert_eq!(
                    &staged.map().unwrap()[..],
                    &whole[..],
                    "{r}, parts of {size}"
                );
                // The digest taken part by part as they were written is the document's:
                // the signature made from it verifies over the whole.
                let (at, sig) = key
                    .active
                    .enveloped_signature_after(digest, &footer)
                    .unwrap();
                let mut signed = whole.clone();
                let at = whole.len() - footer.len() + at;
                signed.splice(at..at, sig);
                key.active
                    .check_own_enveloped(&signed)
                    .unwrap_or_else(|e| panic!("{r}, parts of {size}: {e}"));
                crate::sign::verify_enveloped(&signed, Some(key.active.public_key())).unwrap();
            }
        }
    }

    #[test]
    fn a_failed_part_lets_go_of_the_parts_waiting_and_stops_the_writing() {
        let reg = registry(8);
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| r.list == ListKind::Zorgaanbiederslijst)
            .unwrap();
        let all: Vec<_> = reg.zorgaanbieders.values().collect();
        let parts: Vec<Checked> = all
            .chunks(3)
            .map(|c| Checked {
                part: render::render_zal_part_marked(&reg, c, &r, &header()).unwrap(),
                elements: Vec::new(),
                copied: Vec::new(),
            })
            .collect();
        let (_dir, staged) = staged_file();
        let sink = Sink {
            staged: &staged,
            state: Default::default(),
            digest: None,
        };
        let mut parts = parts.into_iter();
        let (first, second) = (parts.next().unwrap(), parts.next().unwrap());
        sink.deposit(1, second);
        assert_eq!(sink.state().ready.len(), 1);
        // Part 0 failed validation: part 1 goes, later parts are not taken, nothing is
        // written, and part 0 arriving anyway is not written either.
        sink.fail("part 0: invalid".into());
        assert!(sink.failed() && sink.state().ready.is_empty());
        for (i, p) in parts.enumerate() {
            sink.deposit(i + 2, p);
        }
        sink.deposit(0, first);
        let st = sink.state.into_inner().unwrap();
        assert_eq!((st.next, st.ready.len(), staged.written()), (0, 0, 0));
        assert_eq!(st.failed.as_deref(), Some("part 0: invalid"));
    }

    #[test]
    fn the_skeleton_of_a_document_made_in_parts_is_validated() {
        let reg = registry(3);
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for r in cat
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
        {
            let def = schema_of(&r).unwrap();
            let good = render::render(&reg, &r, &header()).unwrap();
            validate_skeleton(def, &good).unwrap();
            // A header the XSD refuses, with valid Zorgaanbieders.
            let bad = Header {
                volgnummer: 4,
                tijdstempel: "gisteren".into(),
            };
            let e = validate_skeleton(def, &render::render(&reg, &r, &bad).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains("Tijdstempel"), "{r}: {e}");
        }
    }
}
