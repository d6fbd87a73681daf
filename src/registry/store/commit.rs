//! Publication records and their commit: what a publication starts from, the published
//! index and log, and the one transaction that makes a publication current.

use super::*;

/// What a publication was made from, as its commit needs to know.
pub struct Snapshot<'a> {
    /// The last journalled edit it publishes (`None`: a change published on top of the
    /// published registry; pending edits stay pending). `Some` means the registry is the
    /// working registry as the snapshot read it: with no write since, the commit publishes
    /// the working tables as they are (see `set_published`).
    pub journal_head: Option<u64>,
    /// The working registry's write generation at the snapshot.
    pub generation: u64,
    /// The registry held only these lists' tables (see [`PublicationBase::partial`]).
    pub partial: Option<std::collections::BTreeSet<ListKind>>,
    /// Besides the rows the overlay names at the commit, the only rows in which the
    /// registry can differ from the working one then: of a snapshot of the working
    /// registry, the rows the overlay named at the snapshot ([`PublicationBase::pending`];
    /// a row edited after it and changed back has left the overlay since); of a registry
    /// published on top of the published one, where it differs from that. `None`: the
    /// commit compares every row.
    pub touched: Option<Touched>,
    /// Written in the publication's transaction besides its own rows.
    pub also: Option<&'a AlsoCommit<'a>>,
}

/// What a publication writes besides its own rows, in its transaction, to tables their
/// modules own (a signing key step's records, see `sign::keyring`).
pub type AlsoCommit<'a> = dyn Fn(&redb::WriteTransaction) -> Result<(), RowError> + Sync + 'a;

/// A document a publication made, with its gzip variant and SHA-256.
pub struct NewDocument {
    /// Storage key: `<rendition id>#<Volgnummer>`, `….sig` for its detached signature.
    pub key: String,
    pub bytes: bytes::Bytes,
    pub gzip: bytes::Bytes,
    pub sha256: String,
}

impl NewDocument {
    /// Detached signatures (a few kB) stay in redb; lists go to files.
    fn inline(&self) -> bool {
        self.key.ends_with(".sig")
    }
}

/// What `status` reads (see [`Store::status_view`]).
pub struct StatusView {
    /// Rows of the working registry: Zorgaanbieders, OAuth clients, Whitelist nodes,
    /// Gegevensdiensten.
    pub counts: [u64; 4],
    pub catalogue: Catalogue,
    pub published: Option<PublishedIndex>,
    /// The lists whose tables were written since the last publication or whose overlay
    /// holds rows (none before the first publication): only these can differ from what is
    /// published.
    pub compare: std::collections::BTreeSet<ListKind>,
    /// The working registry with the tables of `compare` and the small tables.
    pub registry: Registry,
}

/// Proof that the caller holds the publication lock: functions that read the published
/// state and then commit a publication take it, so nothing can publish in between.
pub struct PublicationGuard<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);

/// Everything a publication starts from, read in one transaction.
pub struct PublicationBase {
    pub registry: Registry,
    /// Read only when asked for (changes published on top of what is published): reading
    /// 100,000 rows costs most of a second.
    pub published_registry: Option<Registry>,
    pub catalogue: Catalogue,
    /// Key of the last journalled edit in `registry`.
    pub journal_head: u64,
    pub published: Option<PublishedIndex>,
    pub floors: BTreeMap<ListKind, u64>,
    /// The working registry's write generation at the snapshot.
    pub generation: u64,
    /// `Some(lists)` when `registry` holds only the tables of `lists` and the small tables
    /// (GNL, livegangen), because only those changed since the last publication: only
    /// `lists` are rendered again; all others keep their published Volgnummer and bytes.
    pub partial: Option<std::collections::BTreeSet<ListKind>>,
    /// The rows that differ from what is published (the overlay's keys), at the snapshot
    /// (empty when the published registry was read instead).
    pub pending: Touched,
    /// Whether the Zorgaanbieders came from a [`Warm`] (only `pending`'s were read).
    pub warmed: bool,
}

impl PublicationBase {
    /// Whether the snapshot read `list`'s tables (all, unless only some changed).
    pub fn reads(&self, list: ListKind) -> bool {
        reads(self.partial.as_ref(), list)
    }
}

fn reads(partial: Option<&std::collections::BTreeSet<ListKind>>, list: ListKind) -> bool {
    partial.is_none_or(|l| l.contains(&list))
}

/// The Zorgaanbieders of the registry publication `seq` published, as that publication
/// held them decoded: a server keeps them for its next publication, which then reads and
/// decodes only the rows that differ from them (the overlay's keys) instead of all
/// (most of its snapshot: 0.4 s at 100,000). Sound because the published registry
/// changes only when a publication commits, and every commit raises `seq`.
pub struct Warm {
    pub seq: u64,
    pub zorgaanbieders: BTreeMap<String, crate::registry::model::Zorgaanbieder>,
}

impl Store {
    /// Take the publication lock: publications and catalogue changes run one at a time
    /// (others wait), from their snapshot to their commit.
    pub fn lock_publications(&self) -> PublicationGuard<'_> {
        // A panic while holding it cannot leave redb half-written (transactions), so a
        // poisoned lock is still a valid lock.
        PublicationGuard(
            self.publications
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The state a publication starts from, all in one read transaction: working and
    /// published registry, catalogue, journal head, published index and Volgnummer floors.
    pub fn publication_base(
        &self,
        guard: &PublicationGuard,
        with_published_registry: bool,
    ) -> Result<PublicationBase, StoreError> {
        self.base(guard, with_published_registry, None)
    }

    /// [`Store::publication_base`] of the working registry, its Zorgaanbieders taken from
    /// `warm` where it is still what is published (see [`Warm`]): only the rows that
    /// differ from the published ones are read and decoded.
    pub fn working_base(
        &self,
        guard: &PublicationGuard,
        warm: Option<Warm>,
    ) -> Result<PublicationBase, StoreError> {
        self.base(guard, false, warm)
    }

    fn base(
        &self,
        _guard: &PublicationGuard,
        with_published_registry: bool,
        warm: Option<Warm>,
    ) -> Result<PublicationBase, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let journal_head = tx
            .open_table(JOURNAL)
            .map_err(|x| e(x.into()))?
            .last()
            .map_err(|x| e(x.into()))?
            .map(|(k, _)| k.value())
            .unwrap_or(0);
        let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta
                .get(k)
                .map_err(|x| e(x.into()))?
                .map(|v| v.value().to_vec()))
        };
        let catalogue = self.read_catalogue(&meta)?;
        let published: Option<PublishedIndex> = get(META_PUBLISHED)?
            .map(|v| from_json("published index", &v))
            .transpose()?;
        let floors: BTreeMap<ListKind, u64> = get("floors")?
            .map(|v| from_json("floors", &v))
            .transpose()?
            .unwrap_or_default();
        let generation = generation(&meta).map_err(&e)?;
        let dirty = read_json::<Dirty>(&meta, META_DIRTY).map_err(&e)?;
        // Only some lists changed (and nothing else about the publication did): the
        // tables of the others (100,000 rows for a ZAL) need not be read at all.
        let large = [
            ListKind::Zorgaanbiederslijst,
            ListKind::OAuthclientlist,
            ListKind::Whitelist,
        ];
        let partial: Option<std::collections::BTreeSet<ListKind>> = match (&published, &dirty) {
            (Some(p), Some(d))
                if !with_published_registry
                    && p.catalogue == catalogue
                    && p.floors == floors
                    && !large.iter().all(|l| d.contains_key(l)) =>
            {
                Some(d.keys().copied().collect())
            }
            _ => None,
        };
        // (A publication on top of the published registry compares what it touched.)
        let pending = match with_published_registry {
            true => Touched::default(),
            false => pending_rows(&tx).map_err(&e)?,
        };
        // The published Zorgaanbieders are still those in `warm` while no publication
        // committed since: its rows that differ from the working ones are the overlay's.
        let warm = warm.filter(|w| {
            reads(partial.as_ref(), ListKind::Zorgaanbiederslijst)
                && !with_published_registry
                && Some(w.seq) == published.as_ref().map(|p| p.seq)
        });
        let warmed = warm.is_some();
        let registry = match warm {
            Some(w) => {
                let rows = warm_rows(&tx, WORKING, w.zorgaanbieders, &pending.zorgaanbieders)
                    .map_err(&e)?;
                read_tables_with(&tx, WORKING, partial.as_ref(), Some(rows)).map_err(&e)?
            }
            None => read_tables(&tx, WORKING, partial.as_ref()).map_err(&e)?,
        };
        let published_registry = if with_published_registry {
            Some(read_published(&tx).map_err(&e)?)
        } else {
            None
        };
        Ok(PublicationBase {
            registry,
            published_registry,
            catalogue,
            journal_head,
            published,
            floors,
            generation,
            partial,
            pending,
            warmed,
        })
    }

    /// What `status` shows, in one read transaction, without reading the large tables of
    /// lists that neither were written since the last publication nor hold overlay rows
    /// (they are what was published): the working registry's row counts, the catalogue,
    /// the published index, and the working registry holding the tables of the lists in
    /// `compare` (and the small tables).
    pub fn status_view(&self) -> Result<StatusView, StoreError> {
        use redb::ReadableTableMetadata;
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
        let catalogue = self.read_catalogue(&meta)?;
        let published: Option<PublishedIndex> = meta
            .get(META_PUBLISHED)
            .map_err(|x| e(x.into()))?
            .map(|v| from_json("published index", v.value()))
            .transpose()?;
        let dirty = read_json::<Dirty>(&meta, META_DIRTY).map_err(&e)?;
        let len = |t: Rows| -> Result<u64, StoreError> {
            tx.open_table(t)
                .map_err(|x| e(x.into()))?
                .len()
                .map_err(|x| e(x.into()))
        };
        // Written since the publication, or holding rows that differ from it (a
        // publication on top of what is published, such as a livegang's end, changes
        // the overlay before the working tables): every list that can differ.
        let overlaid = [
            (ListKind::Zorgaanbiederslijst, len(OVERLAY.zorgaanbieders)?),
            (ListKind::OAuthclientlist, len(OVERLAY.oauthclients)?),
            (
                ListKind::Whitelist,
                tx.open_table(OVERLAY.whitelist)
                    .map_err(|x| e(x.into()))?
                    .len()
                    .map_err(|x| e(x.into()))?,
            ),
            (
                ListKind::Gegevensdienstnamenlijst,
                len(OVERLAY.gegevensdiensten)?,
            ),
        ];
        let compare: std::collections::BTreeSet<ListKind> = match (&published, dirty) {
            (None, _) => Default::default(),
            (Some(_), Some(d)) => d
                .into_keys()
                .chain(overlaid.iter().filter(|(_, n)| *n > 0).map(|(l, _)| *l))
                .collect(),
            (Some(_), None) => ListKind::ALL.into_iter().collect(),
        };
        let counts = [
            len(WORKING.zorgaanbieders)?,
            len(WORKING.oauthclients)?,
            tx.open_table(WORKING.whitelist)
                .map_err(|x| e(x.into()))?
                .len()
                .map_err(|x| e(x.into()))?,
            len(WORKING.gegevensdiensten)?,
        ];
        let registry = read_tables(&tx, WORKING, Some(&compare)).map_err(e)?;
        Ok(StatusView {
            counts,
            catalogue,
            published,
            compare,
            registry,
        })
    }

    pub fn published(&self) -> Result<Option<PublishedIndex>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
        let v = meta.get(META_PUBLISHED).map_err(|x| e(x.into()))?;
        v.map(|v| from_json("published index", v.value()))
            .transpose()
    }

    pub fn log(&self) -> Result<Vec<(LogEntry, Vec<u8>)>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(PUBLICATIONS).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|x| e(x.into()))? {
            let (_, v) = row.map_err(|x| e(x.into()))?;
            out.push((from_json("publication log", v.value())?, v.value().to_vec()));
        }
        Ok(out)
    }

    pub(super) fn last_log_hash(&self, tx: &redb::WriteTransaction) -> Result<String, StoreError> {
        let e = self.e();
        let t = tx.open_table(PUBLICATIONS).map_err(|x| e(x.into()))?;
        let last = t.last().map_err(|x| e(x.into()))?;
        Ok(match last {
            Some((_, v)) => hex(ring::digest::digest(&ring::digest::SHA256, v.value()).as_ref()),
            None => hex(&[0u8; 32]),
        })
    }

    /// Commit a publication: new documents, the new index and the log entry, atomically.
    /// `expected_seq` guards against a concurrent publication in between.
    pub fn commit_publication(
        &self,
        _guard: &PublicationGuard,
        index: &PublishedIndex,
        mut entry: LogEntry,
        documents: &[NewDocument],
        registry: &Registry,
        from: Snapshot<'_>,
    ) -> Result<LogEntry, StoreError> {
        let journal_head = from.journal_head;
        check_recorded(&entry.operator, Some(&entry.reason)).map_err(StoreError::Refused)?;
        // The files first: a crash before the commit leaves unreferenced files only.
        for d in documents.iter().filter(|d| !d.inline()) {
            self.files
                .put(&d.sha256, &d.bytes, &d.gzip)
                .map_err(|x| self.file_err(&d.sha256, &x))?;
        }
        // A rendition that returns to the set at an earlier Volgnummer is served from its
        // file again.
        for r in &index.renditions {
            self.files
                .restore(&r.sha256)
                .map_err(|x| self.file_err(&r.sha256, &x))?;
        }
        let e = self.e();
        let tx = self.write_tx()?;
        let current_seq = {
            let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let current_seq = published_seq(&meta, &e)?;
            if current_seq + 1 != index.seq {
                return Err(StoreError::Refused(format!(
                    "another publication ({current_seq}) was committed meanwhile; run publish again"
                )));
            }
            self.read_catalogue(&meta)?
                .check_transition(&index.catalogue)
                .map_err(StoreError::Refused)?;
            current_seq
        };
        entry.prev_sha256 = self.last_log_hash(&tx)?;
        if let Some(head) = journal_head {
            // The edits this publication rendered become part of its audit record; edits
            // that arrived while it rendered stay pending.
            let mut j = tx.open_table(JOURNAL).map_err(|x| e(x.into()))?;
            for row in j.range(..=head).map_err(|x| e(x.into()))? {
                let (_, v) = row.map_err(|x| e(x.into()))?;
                let mut change: Change = from_json("journal", v.value())?;
                // An edit made without --reason is made for the publication's reason.
                if change.reason.is_none() {
                    change.reason = Some(entry.reason.clone());
                }
                entry.changes.push(change);
            }
            j.retain(|k, _| k > head).map_err(|x| e(x.into()))?;
        }
        {
            let mut docs = tx.open_table(DOCUMENTS).map_err(|x| e(x.into()))?;
            for d in documents {
                let k = &d.key;
                let value = match d.inline() {
                    true => d.bytes.to_vec(),
                    false => documents::reference(&d.sha256),
                };
                // History is immutable: a Volgnummer once published keeps its bytes.
                if let Some(old) = docs.get(k.as_str()).map_err(|x| e(x.into()))? {
                    let same = match documents::referenced(old.value()) {
                        Some(sha) => sha == d.sha256,
                        None => old.value() == d.bytes.as_ref(),
                    };
                    if !same {
                        return Err(StoreError::Refused(format!(
                            "document {k} was published before with other bytes; refusing to rewrite history"
                        )));
                    }
                }
                docs.insert(k.as_str(), value.as_slice())
                    .map_err(|x| e(x.into()))?;
            }
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            meta.insert(META_PUBLISHED, to_json(index)?.as_slice())
                .map_err(|x| e(x.into()))?;
            // Publishing the working registry with no write since its snapshot: the
            // working tables hold exactly the rows it rendered.
            let generation = generation(&meta).map_err(&e)?;
            let compare = match (journal_head, &from.touched) {
                (Some(_), _) if generation == from.generation => Compare::Nothing,
                _ if current_seq == 0 => Compare::All,
                (_, Some(t)) => Compare::Rows(t),
                (_, None) => Compare::All,
            };
            set_published(&tx, registry, from.partial.as_ref(), compare).map_err(&e)?;
            if journal_head.is_some() {
                // What the snapshot included is published; later writes stay dirty.
                let mut dirty = read_json::<Dirty>(&meta, META_DIRTY)
                    .map_err(&e)?
                    .unwrap_or_default();
                dirty.retain(|_, g| *g > from.generation);
                meta.insert(META_DIRTY, to_json(&dirty)?.as_slice())
                    .map_err(|x| e(x.into()))?;
            }
            // The catalogue takes effect with the publication that uses it.
            meta.insert(META_CATALOGUE, to_json(&index.catalogue)?.as_slice())
                .map_err(|x| e(x.into()))?;
            let mut log = tx.open_table(PUBLICATIONS).map_err(|x| e(x.into()))?;
            log.insert(index.seq, to_json(&entry)?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        if let Some(f) = from.also {
            f(&tx).map_err(&e)?;
        }
        crate::failpoint::hit("publish.commit").map_err(StoreError::Refused)?;
        self.commit(tx)?;
        Ok(entry)
    }

    /// After a publication committed: the files of documents that left the published set
    /// go (see [`Store::prune_files`], which opening the store also runs). The caller
    /// holds the publication lock.
    pub fn prune_published(&self, _guard: &PublicationGuard) {
        let t = std::time::Instant::now();
        match self.published() {
            Ok(Some(index)) => {
                let current: Vec<String> =
                    index.renditions.iter().map(|r| r.sha256.clone()).collect();
                self.prune_files(&current);
            }
            Ok(None) => {}
            Err(x) => tracing::warn!("not pruning document files: {x}"),
        }
        tracing::debug!("prune {:?}", t.elapsed());
    }

    /// Uncompressed files of documents that left the published set go (their history
    /// stays), and so do files that no row refers to (left by a publication that failed
    /// after writing them). Runs under the publication lock or at open, so no publication
    /// is writing files meanwhile. A failure only leaves files behind.
    pub(super) fn prune_files(&self, current: &[String]) {
        let referenced = || -> Result<std::collections::HashSet<String>, StoreError> {
            let e = self.e();
            let tx = self.read_tx()?;
            let t = tx.open_table(DOCUMENTS).map_err(|x| e(x.into()))?;
            let mut out = std::collections::HashSet::new();
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (_, v) = row.map_err(|x| e(x.into()))?;
                if let Some(sha) = documents::referenced(v.value()) {
                    out.insert(sha.to_string());
                }
            }
            Ok(out)
        };
        let referenced = match referenced() {
            Ok(r) => r,
            Err(x) => return tracing::warn!("not pruning document files: {x}"),
        };
        let current: std::collections::HashSet<&str> = current.iter().map(|s| s.as_str()).collect();
        let referenced: std::collections::HashSet<&str> =
            referenced.iter().map(|s| s.as_str()).collect();
        if let Err(x) = self.files.prune(&current, &referenced) {
            tracing::warn!("removing document files: {x}");
        }
    }

    /// The lists whose tables changed since the last publication of the working registry.
    pub fn dirty(&self) -> Result<Option<Dirty>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
        read_json(&meta, META_DIRTY).map_err(e)
    }

    /// A publication of the working registry found nothing to publish: what its snapshot
    /// included equals what is published, so those lists are no longer dirty.
    pub fn clear_dirty(
        &self,
        _guard: &PublicationGuard,
        generation: u64,
    ) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let Some(mut dirty) = read_json::<Dirty>(&meta, META_DIRTY).map_err(&e)? else {
                return Ok(());
            };
            let before = dirty.len();
            dirty.retain(|_, g| *g > generation);
            if dirty.len() == before {
                return Ok(());
            }
            meta.insert(META_DIRTY, to_json(&dirty)?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        self.commit(tx)
    }
}
