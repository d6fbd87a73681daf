//! Publication: the [`Publisher`] owns every publication (the pending change set, a
//! release catalogue change, the expiry of a gecontroleerde livegang), runs them one at a
//! time through the one pipeline ([`pipeline`]) and, in a server, swaps the served set to
//! the bytes it just made. Any failure leaves the store and the served set untouched.

pub mod cache;
pub mod compress;
pub mod pipeline;
pub mod render;

use crate::registry::catalogue::{Catalogue, Status};
use crate::registry::livegang;
use crate::registry::publication::{document_key, LogEntry, PublishedIndex};
use crate::registry::store::{PublicationGuard, Store, StoreError};
use crate::serve::set::{Body, PublishedSet, Shared};
use crate::sign::keyring::{self, Step};
use crate::sign::Signers;
use crate::xml::schema;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{rendition}: not valid against {xsd}: {errors}")]
    Schema {
        rendition: String,
        xsd: String,
        errors: schema::SchemaErrors,
    },
    #[error("{rendition}: {msg}")]
    Signature { rendition: String, msg: String },
    #[error("the registry breaks its rules; nothing was published:\n{0}")]
    Invalid(crate::registry::rules::Violations),
    #[error("{0}")]
    Refused(String),
    #[error("{rendition}: rendering failed: {msg}")]
    Render { rendition: String, msg: String },
}

/// The outcome of a publication that committed.
pub struct Published {
    pub entry: LogEntry,
    pub index: PublishedIndex,
    /// The documents it made, by storage key, with their gzip variants; moved into the
    /// served set by the Publisher.
    pub documents: HashMap<String, Body>,
}

/// What `publish` did: livegangen that had expired (ended first, as their own
/// publication), and the publication of the change set if anything changed.
pub struct Outcome {
    pub expired: Vec<String>,
    pub published: Option<Published>,
}

/// What a catalogue change did.
pub struct CatalogueChange {
    /// What changed, with the operator's reason: the publication's reason.
    pub reason: String,
    /// Gecontroleerde livegangen that ended because their release stopped being verplicht.
    pub ended: Vec<String>,
    /// The publication that made it public; `None` before the first publication (the
    /// catalogue then takes effect with it) or when nothing had to be published.
    pub published: Option<Published>,
    pub before_first_publication: bool,
}

/// Every publication goes through here, one at a time.
pub struct Publisher {
    store: Arc<Store>,
    /// The data directory, whose signing key and certificate each publication loads (so a
    /// key the operator replaces is used from the next publication on, without a restart).
    data: PathBuf,
    /// The server's served set, swapped after every publication; `None` in the CLI.
    served: Option<Shared>,
    metrics: Option<Arc<crate::serve::metrics::Metrics>>,
    /// A static export kept current after every publication (`serve --export-static`).
    export: Option<PathBuf>,
    /// How long the heads it signs are valid, and how often they are made again.
    pub heads: crate::distribute::head::Timing,
    /// The server's: the published Zorgaanbieders, decoded, for the next publication
    /// (see `registry::store::Warm`). Taken by each publication of the working registry,
    /// and put back only by one that committed having read them.
    warm: Arc<std::sync::Mutex<Option<crate::registry::store::Warm>>>,
}

impl Publisher {
    pub fn new(store: Arc<Store>, data: &Path, served: Option<Shared>) -> Publisher {
        Publisher {
            store,
            data: data.to_path_buf(),
            served,
            metrics: None,
            export: None,
            heads: Default::default(),
            warm: Default::default(),
        }
    }

    /// In a server, read the published Zorgaanbieders for the next publication on a thread
    /// of its own (when it starts, and after a publication that did not keep those it
    /// read): a newer set kept meanwhile is not replaced. The CLI keeps nothing.
    pub fn warm_up(&self) {
        if self.served.is_none() {
            return;
        }
        let (store, slot) = (self.store.clone(), self.warm.clone());
        let spawned = std::thread::Builder::new()
            .name("warm-up".into())
            .spawn(move || {
                let t = std::time::Instant::now();
                match store.warm() {
                    Ok(Some(w)) => {
                        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                        tracing::debug!(
                            "{} published Zorgaanbieders read for the next publication in {:?}",
                            w.zorgaanbieders.len(),
                            t.elapsed()
                        );
                        if slot.as_ref().is_none_or(|s| s.seq < w.seq) {
                            *slot = Some(w);
                        }
                    }
                    Ok(None) => {}
                    // Only the next publication's speed depends on it.
                    Err(e) => {
                        tracing::warn!("the published Zorgaanbieders were not read ahead: {e}")
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("the published Zorgaanbieders were not read ahead: {e}");
        }
    }

    /// Sign heads valid for `timing.lifetime`, made again every `timing.resign_every`.
    pub fn with_head_timing(mut self, timing: crate::distribute::head::Timing) -> Publisher {
        self.heads = timing;
        self
    }

    /// Keep a static export for edges current after every publication.
    pub fn with_export(mut self, dir: Option<PathBuf>) -> Publisher {
        self.export = dir;
        self
    }

    /// Sign the heads of the set served now again (they expire; see `distribute::head`),
    /// and keep a static export's heads current.
    pub fn resign_heads(&self) {
        // A publication swaps and exports under this lock: an export of the set it replaced
        // must not come after its own.
        let _guard = self.store.lock_publications();
        let Some(set) = self.served.as_ref().and_then(|s| s.load_full()) else {
            return;
        };
        match self.key() {
            Ok(key) => set.sign_heads(&key, OffsetDateTime::now_utc(), self.heads.lifetime),
            Err(e) => tracing::error!("heads not signed again: {e}"),
        }
        self.key_metrics();
        self.export_static(&set);
    }

    /// Write the static export of `set`, if one is kept. The publication has committed:
    /// a failure here is logged, and the edges keep the previous export.
    pub fn export_static(&self, set: &PublishedSet) {
        if let Some(dir) = &self.export {
            match crate::serve::edge::export(set, dir, &self.store) {
                Ok(msg) => tracing::info!("{}", msg.trim_end()),
                Err(e) => tracing::error!("static export to {} failed: {e:#}", dir.display()),
            }
        }
    }

    /// Count publications and their duration in the server's metrics.
    pub fn with_metrics(
        mut self,
        metrics: Option<Arc<crate::serve::metrics::Metrics>>,
    ) -> Publisher {
        self.metrics = metrics;
        self
    }

    /// The keyring as the metrics show it.
    fn key_metrics(&self) {
        let Some(m) = &self.metrics else { return };
        match keyring::status(&self.store, &self.data, OffsetDateTime::now_utc()) {
            Ok((keys, warning)) => m.signing_keys(keys, warning.is_some()),
            Err(e) => tracing::error!("signing keys not read for the metrics: {e}"),
        }
    }

    fn record(&self, published: &Option<Published>, started: std::time::Instant) {
        if let (Some(m), Some(_)) = (&self.metrics, published) {
            m.publication(started.elapsed().as_secs_f64());
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The keys that sign now (see `sign::keyring`), as the data directory and the
    /// keyring hold them.
    pub fn key(&self) -> Result<Signers, PublishError> {
        keyring::signers(&self.store, &self.data).map_err(|e| PublishError::Refused(e.to_string()))
    }

    /// A signing key step (`key next`, `activate`, `retire`), decided by `decide` under
    /// the publication lock (two steps at once cannot both pass its checks): published as
    /// its own publication of what is published, every list under a new Volgnummer and
    /// signed by the keys of the step, whose records the keyring writes in that
    /// publication's transaction. Before the first publication it is only recorded.
    pub fn key_step(
        &self,
        operator: &str,
        now: OffsetDateTime,
        decide: impl FnOnce() -> Result<Step, keyring::KeyringError>,
    ) -> Result<(Step, Option<Published>), PublishError> {
        let guard = self.store.lock_publications();
        let step = decide().map_err(|e| PublishError::Refused(e.to_string()))?;
        let started = std::time::Instant::now();
        let base = self.store.publication_base(&guard, true)?;
        let (Some(index), Some(registry)) = (&base.published, &base.published_registry) else {
            step.commit(&self.store)?;
            self.key_metrics();
            return Ok((step, None));
        };
        let p = {
            let write = |tx: &redb::WriteTransaction| step.write(tx);
            pipeline::run(
                &self.store,
                &guard,
                &step.signers,
                pipeline::Run {
                    registry,
                    catalogue: &index.catalogue,
                    base: &base,
                    operator,
                    reason: &step.summary,
                    now,
                    journal_head: None,
                    every_list: true,
                    also_commit: Some(&write),
                },
            )?
        };
        let published = self.swap(&guard, p, &step.signers)?;
        self.record(&published, started);
        self.warm_up();
        Ok((step, published))
    }

    /// Publish the working registry: the pending change set becomes public. A livegang
    /// past its date ends first, as its own publication. Waits while another publication
    /// runs.
    pub fn publish(
        &self,
        operator: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Outcome, PublishError> {
        let expired = self.expire_livegangen(now)?;
        let key = self.key()?;
        let guard = self.store.lock_publications();
        let started = std::time::Instant::now();
        let t = std::time::Instant::now();
        let warm = self.warm.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Taken: read again unless this publication keeps them (not if it fails, changes
        // nothing or does not read them).
        let mut read_again = ReadAhead(Some(self));
        let mut base = self.store.working_base(&guard, warm)?;
        if base.warmed {
            tracing::debug!(
                "snapshot: the Zorgaanbieders kept from the last publication, {} rows read again",
                base.pending.zorgaanbieders.len()
            );
        }
        match &base.partial {
            Some(lists) => {
                let large: Vec<String> = lists
                    .iter()
                    .filter(|l| **l != crate::registry::model::ListKind::Gegevensdienstnamenlijst)
                    .map(|l| l.to_string())
                    .collect();
                tracing::debug!(
                    "snapshot {:?} (partial: small tables {}; changed since the last publication: {lists:?})",
                    t.elapsed(),
                    match large.is_empty() {
                        true => "only".to_string(),
                        false => format!("and {}", large.join(", ")),
                    }
                )
            }
            None => tracing::debug!("snapshot {:?}", t.elapsed()),
        }
        crate::failpoint::hit("publish.snapshot").map_err(PublishError::Refused)?;
        let published = pipeline::run(
            &self.store,
            &guard,
            &key,
            pipeline::Run {
                registry: &base.registry,
                catalogue: &base.catalogue,
                base: &base,
                operator,
                reason,
                now,
                journal_head: Some(base.journal_head),
                every_list: false,
                also_commit: None,
            },
        )?;
        let published = self.swap(&guard, published, &key)?;
        self.record(&published, started);
        // Committed, having read the Zorgaanbieders: they are what is published now.
        let read_zal = base.reads(crate::registry::model::ListKind::Zorgaanbiederslijst);
        if let (Some(_), Some(p), true) = (&self.served, &published, read_zal) {
            *self.warm.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(crate::registry::store::Warm {
                    seq: p.index.seq,
                    zorgaanbieders: std::mem::take(&mut base.registry.zorgaanbieders),
                });
            read_again.0 = None;
        }
        // At 100k, freeing the registry's millions of allocations takes a tenth of a
        // second that nobody needs to wait for.
        let _ = std::thread::Builder::new().spawn(move || drop(base));
        Ok(Outcome { expired, published })
    }

    /// Change the release catalogue with `change` and publish it at once, on top of what
    /// is published (pending edits stay pending). A gecontroleerde livegang whose release
    /// stops being verplicht ends with it (FACTS.md §9).
    pub fn change_catalogue(
        &self,
        operator: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
        change: impl FnOnce(&mut Catalogue) -> Result<String, String>,
    ) -> Result<CatalogueChange, PublishError> {
        // Held from reading the catalogue to committing its publication: nothing can come
        // in between and be reverted by this one.
        let guard = self.store.lock_publications();
        let base = self.store.publication_base(&guard, true)?;
        let old = base.catalogue.clone();
        let mut cat = old.clone();
        let what = change(&mut cat)
            .map_err(|e| PublishError::Refused(format!("{e}; nothing was changed")))?;
        let reason = match reason {
            Some(r) => format!("{what}: {r}"),
            None => what,
        };
        if base.published.is_none() {
            self.store.set_catalogue(&guard, &cat)?;
            return Ok(CatalogueChange {
                reason,
                ended: Vec::new(),
                published: None,
                before_first_publication: true,
            });
        }
        let verplicht =
            |c: &Catalogue, id: &str| c.get(id).map(|r| r.status) == Some(Status::Verplicht);
        let mut ended: Vec<String> = Vec::new();
        for l in base.registry.livegangen.values().chain(
            base.published_registry
                .iter()
                .flat_map(|r| r.livegangen.values()),
        ) {
            if verplicht(&old, &l.release)
                && !verplicht(&cat, &l.release)
                && !ended.contains(&l.copy_id)
            {
                ended.push(l.copy_id.clone());
            }
        }
        let reason = if ended.is_empty() {
            reason
        } else {
            format!(
                "{reason}; gecontroleerde livegang {} ends with it",
                ended.join(", ")
            )
        };
        let published = self.end_livegangen(&guard, &ended, operator, &reason, Some(&cat), now)?;
        Ok(CatalogueChange {
            reason,
            ended,
            published,
            before_first_publication: false,
        })
    }

    /// End every livegang whose `until` has passed: as its own logged publication of what
    /// is published, then in the working registry. Returns the ids.
    pub fn expire_livegangen(&self, now: OffsetDateTime) -> Result<Vec<String>, PublishError> {
        // Both what is published and what is pending: an unpublished `end` must not keep a
        // published copy alive past its date.
        let mut ids = livegang::due(&self.store.livegangen()?, now);
        for id in livegang::due(&self.store.published_livegangen()?, now) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Ok(ids);
        }
        let guard = self.store.lock_publications();
        self.end_livegangen(
            &guard,
            &ids,
            "stelselnode (automatic)",
            &format!("gecontroleerde livegang {} expired", ids.join(", ")),
            None,
            now,
        )?;
        Ok(ids)
    }

    /// Publish the end of livegangen `ids` (with a new catalogue, if given) on top of what
    /// is published, then end them in the working registry too.
    fn end_livegangen(
        &self,
        guard: &PublicationGuard,
        ids: &[String],
        operator: &str,
        reason: &str,
        catalogue: Option<&Catalogue>,
        now: OffsetDateTime,
    ) -> Result<Option<Published>, PublishError> {
        // Publish first: if that fails nothing changed and the next attempt starts over.
        let started = std::time::Instant::now();
        let key = self.key()?;
        let base = self.store.publication_base(guard, true)?;
        let mut published_now = None;
        if let (Some(index), Some(published)) = (&base.published, &base.published_registry) {
            let mut registry = published.clone();
            for id in ids {
                if registry.livegangen.contains_key(id) {
                    livegang::end(&mut registry, id).map_err(PublishError::Refused)?;
                }
            }
            registry.canonicalize();
            let p = pipeline::run(
                &self.store,
                guard,
                &key,
                pipeline::Run {
                    registry: &registry,
                    catalogue: catalogue.unwrap_or(&index.catalogue),
                    base: &base,
                    operator,
                    reason,
                    now,
                    journal_head: None,
                    every_list: false,
                    also_commit: None,
                },
            )?;
            published_now = self.swap(guard, p, &key)?;
            self.record(&published_now, started);
            self.warm_up();
        }
        // The working registry follows. This is not a pending edit (its publication is
        // already logged above), so it is not journalled.
        self.store.update_unjournalled(|reg| {
            for id in ids {
                if reg.livegangen.contains_key(id) {
                    livegang::end(reg, id)?;
                }
            }
            Ok(reason.to_string())
        })?;
        Ok(published_now)
    }

    /// Serve what a publication committed: the new set is built from the bytes it made and
    /// the bodies already served, not read back from the store.
    fn swap(
        &self,
        guard: &PublicationGuard,
        published: Option<Published>,
        key: &Signers,
    ) -> Result<Option<Published>, PublishError> {
        let Some(mut p) = published else {
            return Ok(None);
        };
        let Some(served) = &self.served else {
            // The CLI: its files are pruned before it returns.
            self.store.prune_published(guard);
            return Ok(Some(p));
        };
        let t = std::time::Instant::now();
        let current = served.load();
        // What the publication made, gzip variants included: nothing is compressed again.
        let mut made: HashMap<String, Body> = std::mem::take(&mut p.documents);
        let mut serving: HashMap<String, &Body> = HashMap::new();
        let mut history = HashMap::new();
        match current.as_deref() {
            Some(set) => {
                for pr in &set.index.renditions {
                    if let Some(d) = set.docs.get(&pr.rendition) {
                        let key = document_key(&pr.rendition, pr.volgnummer);
                        serving.insert(format!("{key}.sig"), &d.sig);
                        serving.insert(key, &d.xml);
                    }
                }
                history.clone_from(&set.history);
            }
            None => {
                for (entry, _) in self.store.log()? {
                    for d in entry.documents {
                        history.insert(document_key(&d.rendition, d.volgnummer), d.sha256);
                    }
                }
            }
        }
        for d in &p.entry.documents {
            history.insert(document_key(&d.rendition, d.volgnummer), d.sha256.clone());
        }
        let set = PublishedSet::build(
            p.index.clone(),
            key.active.cert_pem.clone(),
            history,
            |key| match made.remove(key) {
                Some(body) => Ok(body),
                None => match serving.get(key) {
                    Some(body) => Ok((*body).clone()),
                    // A rendition that comes back with its historic bytes.
                    None => Body::new(self.store.document(key)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("published document {key} is missing"))
                    })?),
                },
            },
        )?;
        let mut set = set;
        set.attach_distribution(&self.store);
        set.sign_heads(key, OffsetDateTime::now_utc(), self.heads.lifetime);
        self.key_metrics();
        let set = Arc::new(set);
        let replaced = served.swap(Some(set.clone()));
        // Off the publication's path: unmapping the replaced set's documents and removing
        // the files of those that left it frees hundreds of MB of page cache (a quarter of
        // a second at 100k). Under the publication lock, as every file change is.
        let store = self.store.clone();
        let _ = std::thread::Builder::new()
            .name("prune".into())
            .spawn(move || {
                drop(replaced);
                let guard = store.lock_publications();
                store.prune_published(&guard);
            });
        tracing::debug!("swap (hash and gzip what was made) {:?}", t.elapsed());
        self.export_static(&set);
        Ok(Some(p))
    }
}

/// Reads the published Zorgaanbieders ahead when dropped, unless disarmed (`.0 = None`).
struct ReadAhead<'a>(Option<&'a Publisher>);

impl Drop for ReadAhead<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            p.warm_up();
        }
    }
}
