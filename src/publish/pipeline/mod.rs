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
#[cfg(test)]
mod tests;

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
use crate::sign::{self, SigningKey};
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
}

impl Run<'_> {
    /// Whether this publication read `list`'s tables (all, unless only some changed).
    fn reads(&self, list: &ListKind) -> bool {
        self.base.partial.as_ref().is_none_or(|d| d.contains(list))
    }

    /// A ZAL large enough to be made in parts on every core.
    fn large(&self, r: &Rendition) -> bool {
        r.list == ListKind::Zorgaanbiederslijst
            && self.registry.zorgaanbieders.len() >= PARALLEL_FROM
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
    key: &SigningKey,
    run: Run,
) -> Result<Option<Published>, PublishError> {
    let t = std::time::Instant::now();
    let stamp = tijdstempel(run.now);
    let known = known_elements(store, &run)?;
    let guess = first_large(&run, &stamp);
    let (hashes, early) = check_and_start(store, key, &run, &known, guess.as_ref())?;
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
    let made = record::caches(store, guard, made);
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
        },
    )?;
    tracing::debug!("commit {:?}", t.elapsed());
    crate::failpoint::hit("publish.committed").map_err(PublishError::Refused)?;
    Ok(Some(Published {
        entry,
        index: records.index,
        documents: records.documents,
    }))
}
