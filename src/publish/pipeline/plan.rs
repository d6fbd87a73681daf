//! A publication's plan: the rule check and the lists' content hashes (with the first
//! large ZAL started beside them), each list's Volgnummer, and which renditions are made
//! again and which keep their published bytes.

use super::*;
use crate::registry::publication::document_key;

/// The elements earlier publications validated, per XSD of a large ZAL (read only if this
/// publication may make one).
pub(super) fn known_elements(
    store: &Store,
    run: &Run,
) -> Result<BTreeMap<&'static str, Validated>, PublishError> {
    let mut known = BTreeMap::new();
    for r in run
        .catalogue
        .renditions()
        .iter()
        .filter(|r| run.large(r) && run.reads(&r.list))
    {
        let def = schema_of(r)?;
        if !known.contains_key(def.xsd_file) {
            known.insert(
                def.xsd_file,
                crate::publish::cache::validated_elements(store, def.xsd_file, &validator(def))?,
            );
        }
    }
    Ok(known)
}

/// The first large ZAL, the longest work, does not wait for the rule check and the content
/// hashes: it is started beside them at the Volgnummer it gets if its content changed (a
/// list written since the last publication almost always did), and used only if that is
/// the Volgnummer they give it; nothing of it is kept if a rule is broken.
pub(super) fn first_large(run: &Run, stamp: &str) -> Option<(Rendition, Header)> {
    run.catalogue
        .renditions()
        .into_iter()
        .find(|r| run.large(r) && run.reads(&r.list))
        .and_then(|r| {
            let (old, floor) = run.previous(r.list);
            let header = Header {
                volgnummer: next_volgnummer(old, floor)?,
                tijdstempel: stamp.to_string(),
            };
            Some((r, header))
        })
}

/// The first large ZAL as started beside the rule check, for its rendition and header.
pub(super) type Early<'a> = Option<(
    &'a Rendition,
    &'a Header,
    Result<(Making<'a>, Started), PublishError>,
)>;

/// The content hashes of the lists this publication read, beside the rule check (both walk
/// the whole registry, one core each), and the first large ZAL started beside them; a list
/// whose hash cannot be made, or a registry that breaks a rule, publishes nothing.
pub(super) fn check_and_start<'a>(
    store: &'a Store,
    key: &'a Signers,
    run: &'a Run,
    known: &'a BTreeMap<&'static str, Validated>,
    guess: Option<&'a (Rendition, Header)>,
) -> Result<Planned<'a>, PublishError> {
    let reg = run.registry;
    let ids = crate::registry::rules::gegevensdienst_ids(reg);
    let scope = ids.as_deref().and_then(|ids| rules_scope(store, run, ids));
    let (rules, hashes, early) = std::thread::scope(|s| {
        let hashes = s.spawn(|| {
            let _timed = Timed("content hashes", std::time::Instant::now());
            ListKind::ALL
                .into_iter()
                .filter(|l| run.reads(l))
                .map(|list| {
                    let hash = reg
                        .list_content_sha256(list)
                        .map_err(|e| PublishError::Render {
                            rendition: list.to_string(),
                            msg: format!("content could not be serialised: {e}"),
                        })?;
                    Ok((list, hash))
                })
                .collect::<Result<BTreeMap<ListKind, String>, PublishError>>()
        });
        let rules = s.spawn(|| {
            let _timed = Timed("rule check", std::time::Instant::now());
            if let Some(changed) = scope {
                tracing::debug!(
                    "rule check: {} of {} Zorgaanbieders changed since they were found valid",
                    changed.len(),
                    reg.zorgaanbieders.len()
                );
            }
            crate::registry::rules::ensure_valid_changed(reg, run.catalogue, scope)
        });
        let early = guess.map(|(r, h)| {
            let known = schema_of(r).ok().and_then(|d| known.get(d.xsd_file));
            let started = start_large(store, run, r, h, key, known);
            (r, h, started)
        });
        (rules.join(), hashes.join(), early)
    });
    rules
        .map_err(|_| PublishError::Refused("the rule check panicked".into()))?
        .map_err(PublishError::Invalid)?;
    let hashes =
        hashes.map_err(|_| PublishError::Refused("a hashing thread panicked".into()))??;
    // (A partial registry may hold no Whitelist: the published one, unchanged, was checked.)
    if run.reads(&ListKind::Whitelist) && reg.whitelist.is_empty() {
        return Err(PublishError::Refused(
            "the Whitelist would be empty: consumers reject an empty Whitelist, so nothing was published; add the MedMij nodes first (`whitelist add HOST`)".into(),
        ));
    }
    // Only a check that had the Zorgaanbieders before it vouches for them. One that did
    // not read their table (a partial publication) leaves the last record as it is: it
    // still names the rules and the Gegevensdiensten it was made with.
    let rules_checked = hashes
        .get(&ListKind::Zorgaanbiederslijst)
        .filter(|_| run.reads(&ListKind::Zorgaanbiederslijst))
        .zip(ids)
        .map(
            |(zorgaanbieders, ids)| crate::publish::cache::RulesChecked {
                rules: crate::registry::rules::fingerprint().to_string(),
                zorgaanbieders: zorgaanbieders.clone(),
                gegevensdiensten: ids,
            },
        );
    Ok(Planned {
        hashes,
        early,
        rules_checked,
    })
}

/// What [`check_and_start`] found: the content hashes of the lists read, the first large
/// ZAL as started, and what the rule check found valid (recorded for the next one).
pub(super) struct Planned<'a> {
    pub(super) hashes: BTreeMap<ListKind, String>,
    pub(super) early: Early<'a>,
    pub(super) rules_checked: Option<crate::publish::cache::RulesChecked>,
}

/// Which Zorgaanbieders the rule check checks, when not all: those that differ from the
/// published ones (the overlay's keys), when the published ones were found valid by these
/// rules against these GegevensdienstIds (`cache::RulesChecked`, keyed by hashes). Field
/// rules are per row, and a Zorgaanbieder refers to nothing but GegevensdienstIds;
/// every other table, and the catalogue's rule for every Zorgaanbieder, are checked anyway.
fn rules_scope<'a>(
    store: &Store,
    run: &'a Run,
    gegevensdienst_ids: &str,
) -> Option<&'a std::collections::BTreeSet<String>> {
    // Publishing the working registry: `pending` holds the rows that differ.
    run.journal_head?;
    let published = run.previous(ListKind::Zorgaanbiederslijst).0?;
    let checked = match crate::publish::cache::rules_checked(store) {
        Ok(c) => c?,
        Err(e) => {
            tracing::warn!("what the last rule check found valid cannot be read: {e}");
            return None;
        }
    };
    (checked.rules == crate::registry::rules::fingerprint()
        && checked.zorgaanbieders == published.content_sha256
        && checked.gegevensdiensten == gegevensdienst_ids)
        .then_some(&run.base.pending.zorgaanbieders)
}

/// Each list's version: unchanged content keeps its Volgnummer, changed content gets the
/// next one. Returns the versions and the lists that changed.
pub(super) fn versions(
    run: &Run,
    mut hashes: BTreeMap<ListKind, String>,
    stamp: &str,
) -> Result<(BTreeMap<ListKind, ListVersion>, Vec<ListKind>), PublishError> {
    let mut lists = BTreeMap::new();
    let mut changed = Vec::new();
    for list in ListKind::ALL {
        let (old, floor) = run.previous(list);
        if !run.reads(&list) {
            // Its table is unchanged since the publication: same content, same version.
            let old = old.ok_or_else(|| {
                PublishError::Refused(format!("internal error: {list} has no published version"))
            })?;
            lists.insert(list, old.clone());
            continue;
        }
        let hash = hashes.remove(&list).ok_or_else(|| {
            PublishError::Refused(format!("internal error: {list} was not hashed"))
        })?;
        match old {
            Some(o) if o.content_sha256 == hash && o.volgnummer >= floor && !run.every_list => {
                lists.insert(list, o.clone());
            }
            _ => {
                let volgnummer =
                    next_volgnummer(old, floor).ok_or_else(|| PublishError::Signature {
                        rendition: list.to_string(),
                        msg: "Volgnummer cannot rise any further".into(),
                    })?;
                lists.insert(
                    list,
                    ListVersion {
                        volgnummer,
                        tijdstempel: stamp.to_string(),
                        content_sha256: hash,
                    },
                );
                changed.push(list);
            }
        }
    }
    Ok((lists, changed))
}

/// The renditions a publication keeps and those it makes.
pub(super) struct Selected {
    /// Renditions whose bytes are reused (their list did not change, or they come back at
    /// a Volgnummer published before).
    pub(super) reuse: Vec<PublishedRendition>,
    /// Renditions to make, with their header.
    pub(super) todo: Vec<(Rendition, Header)>,
}

/// Reuse the bytes of renditions whose list did not change; the rest are made. `None`
/// when nothing would change.
pub(super) fn select(
    store: &Store,
    guard: &PublicationGuard,
    run: &Run,
    lists: &BTreeMap<ListKind, ListVersion>,
) -> Result<Option<Selected>, PublishError> {
    let prev = run.base.published.as_ref();
    let mut reuse = Vec::new();
    let mut todo = Vec::new();
    for r in &run.catalogue.renditions() {
        let lv = &lists[&r.list];
        let existing = prev.and_then(|p| {
            p.renditions
                .iter()
                .find(|pr| &pr.rendition == r && pr.volgnummer == lv.volgnummer)
        });
        // A rendition that was published at this Volgnummer before (and left the served set
        // meanwhile) comes back with its original bytes: history is immutable.
        let historic = match existing {
            Some(_) => None,
            None => store.document_sha256(&document_key(r, lv.volgnummer))?,
        };
        match (existing, historic) {
            (Some(pr), _) => reuse.push(pr.clone()),
            (None, Some(sha256)) => reuse.push(PublishedRendition {
                rendition: r.clone(),
                volgnummer: lv.volgnummer,
                sha256,
            }),
            (None, None) => todo.push((
                r.clone(),
                Header {
                    volgnummer: lv.volgnummer,
                    tijdstempel: lv.tijdstempel.clone(),
                },
            )),
        }
    }
    if let Some(p) = prev {
        if todo.is_empty() && &p.catalogue == run.catalogue && p.renditions.len() == reuse.len() {
            if run.journal_head.is_some() {
                // The working registry equals what is published: nothing is dirty any more
                // (after a `discard`, say), so the next publication can be partial again.
                store.clear_dirty(guard, run.base.generation)?;
            }
            return Ok(None);
        }
    }
    Ok(Some(Selected { reuse, todo }))
}

/// Logs how long its scope took when it ends.
struct Timed(&'static str, std::time::Instant);

impl Drop for Timed {
    fn drop(&mut self) {
        tracing::debug!("{} {:?}", self.0, self.1.elapsed());
    }
}
