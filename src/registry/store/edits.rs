//! Working edits: the scoped and whole-registry edits the operator makes, their rules
//! checked in the write transaction, and the journal of the pending change set.

use super::*;

/// The part of the registry an edit reads, checks and may change.
///
/// Every field rule is local to one entity, and every rule between entities points into
/// the Gegevensdienstnamenlijst or the livegangen, which are small and always read whole.
/// So checking the rows an edit read, after the edit, checks everything the edit can
/// break, and an edit of one Zorgaanbieder costs milliseconds instead of a pass over
/// 100,000 of them. An edit that can break a reference into it (removing a Gegevensdienst)
/// or that touches many rows (imports, livegangen) uses [`Scope::Whole`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Whole,
    Rows {
        zorgaanbieders: Vec<String>,
        oauthclients: Vec<String>,
        whitelist: Vec<String>,
    },
}

impl Scope {
    /// An edit wrote only rows it read: a row it did not read could exist already and be
    /// overwritten unseen.
    fn contains(&self, reg: &Registry) -> Result<(), StoreError> {
        let Scope::Rows {
            zorgaanbieders,
            oauthclients,
            whitelist,
        } = self
        else {
            return Ok(());
        };
        let outside = reg
            .zorgaanbieders
            .keys()
            .find(|k| !zorgaanbieders.contains(k))
            .or_else(|| reg.oauthclients.keys().find(|k| !oauthclients.contains(k)))
            .or_else(|| reg.whitelist.iter().find(|k| !whitelist.contains(k)));
        match outside {
            Some(k) => Err(StoreError::Refused(format!(
                "internal error: an edit wrote '{}', which it had not read; nothing was written",
                crate::clip::clip(k)
            ))),
            None => Ok(()),
        }
    }

    /// Only the Gegevensdienstnamenlijst and the livegangen.
    pub fn small_tables() -> Scope {
        Scope::Rows {
            zorgaanbieders: Vec::new(),
            oauthclients: Vec::new(),
            whitelist: Vec::new(),
        }
    }

    pub fn zorgaanbieder(naam: &str) -> Scope {
        Scope::Rows {
            zorgaanbieders: vec![naam.to_string()],
            oauthclients: Vec::new(),
            whitelist: Vec::new(),
        }
    }

    pub fn oauthclient(hostname: &str) -> Scope {
        Scope::Rows {
            zorgaanbieders: Vec::new(),
            oauthclients: vec![hostname.to_string()],
            whitelist: Vec::new(),
        }
    }

    pub fn whitelist(hostnames: &[String]) -> Scope {
        Scope::Rows {
            zorgaanbieders: Vec::new(),
            oauthclients: Vec::new(),
            whitelist: hostnames.to_vec(),
        }
    }
}

/// Write only the rows that differ between `before` and `after`, keep the published bytes
/// of the rows written (see [`OVERLAY`]), and mark the lists whose tables changed as dirty
/// (see [`Dirty`]).
pub(super) fn write_registry(
    tx: &redb::WriteTransaction,
    before: &Registry,
    after: &Registry,
) -> Result<(), RowError> {
    use ListKind::*;
    let mut lists = std::collections::BTreeSet::new();
    let published = is_published(&tx.open_table(META)?)?;
    let pair = |w: Rows, o: Rows| writing(tx, (w, o), published);
    let mut t = pair(ZORGAANBIEDERS, OVERLAY.zorgaanbieders)?;
    if sync_map(&mut t, &before.zorgaanbieders, &after.zorgaanbieders)? {
        lists.insert(Zorgaanbiederslijst);
    }
    let mut t = pair(OAUTHCLIENTS, OVERLAY.oauthclients)?;
    if sync_map(&mut t, &before.oauthclients, &after.oauthclients)? {
        lists.insert(OAuthclientlist);
    }
    let mut t = pair(GEGEVENSDIENSTEN, OVERLAY.gegevensdiensten)?;
    if sync_map(&mut t, &before.gegevensdiensten, &after.gegevensdiensten)? {
        lists.insert(Gegevensdienstnamenlijst);
    }
    let mut t = pair(LIVEGANGEN, OVERLAY.livegangen)?;
    if sync_map(&mut t, &before.livegangen, &after.livegangen)? {
        // A livegang is not a list, but it moves offerings and clients: be conservative.
        lists.insert(Zorgaanbiederslijst);
        lists.insert(OAuthclientlist);
    }
    if write_hosts(tx, &before.whitelist, &after.whitelist, published)? {
        lists.insert(Whitelist);
    }
    mark_written(tx, lists)
}

/// Make the working Whitelist `after` where it holds `before`, keeping the published
/// state of every host added or removed in the overlay. Returns whether any was.
pub(super) fn write_hosts(
    tx: &redb::WriteTransaction,
    before: &std::collections::BTreeSet<String>,
    after: &std::collections::BTreeSet<String>,
    published: bool,
) -> Result<bool, RowError> {
    let mut t = tx.open_table(WHITELIST)?;
    let mut o = published
        .then(|| tx.open_table(OVERLAY.whitelist))
        .transpose()?;
    let mut changed = false;
    for h in before.difference(after) {
        t.remove(h.as_str())?;
        if let Some(o) = o.as_mut() {
            keep_published(o, h, HOST_PUBLISHED, NOT_PUBLISHED)?;
        }
        changed = true;
    }
    for h in after.difference(before) {
        t.insert(h.as_str(), ())?;
        if let Some(o) = o.as_mut() {
            keep_published(o, h, NOT_PUBLISHED, HOST_PUBLISHED)?;
        }
        changed = true;
    }
    Ok(changed)
}

/// Count a write to the working registry and mark the lists whose tables it changed as
/// dirty.
pub(super) fn mark_written(
    tx: &redb::WriteTransaction,
    lists: std::collections::BTreeSet<ListKind>,
) -> Result<(), RowError> {
    let mut meta = tx.open_table(META)?;
    let generation = generation(&meta)? + 1;
    meta.insert(META_GENERATION, encode(&generation)?.as_slice())?;
    if let Some(mut dirty) = read_json::<Dirty>(&meta, META_DIRTY)? {
        for l in lists {
            dirty.insert(l, generation);
        }
        meta.insert(META_DIRTY, encode(&dirty)?.as_slice())?;
    }
    Ok(())
}

/// Make the working tables hold `after` as a whole (an import; see [`Store::replace`]):
/// each table's stored rows are compared in one ordered pass with `after`'s rows encoded,
/// and only the rows that differ are written (encoded again then, rather than held).
/// Returns whether anything changed.
pub(super) fn write_whole(tx: &redb::WriteTransaction, after: &Registry) -> Result<bool, RowError> {
    use ListKind::*;
    let published = is_published(&tx.open_table(META)?)?;
    fn rows<T: Serialize>(
        tx: &redb::WriteTransaction,
        (working, overlay): (Rows, Rows),
        rows: &BTreeMap<String, T>,
        published: bool,
    ) -> Result<bool, RowError> {
        let mut stale = Vec::new();
        let mut differ = Vec::new();
        {
            let w = tx.open_table(working)?;
            let encoded = rows.iter().map(|(k, v)| Ok((k.as_str(), encode(v)?)));
            merge(&w, encoded, &mut stale, |k, _| differ.push(k))?;
        }
        let mut t = writing(tx, (working, overlay), published)?;
        for k in &stale {
            write_row(&mut t, k, None)?;
        }
        for k in &differ {
            if let Some(v) = rows.get(*k) {
                write_row(&mut t, k, Some(&encode(v)?))?;
            }
        }
        Ok(!stale.is_empty() || !differ.is_empty())
    }
    let mut lists = std::collections::BTreeSet::new();
    let (z, c) = (&after.zorgaanbieders, &after.oauthclients);
    if rows(tx, (ZORGAANBIEDERS, OVERLAY.zorgaanbieders), z, published)? {
        lists.insert(Zorgaanbiederslijst);
    }
    if rows(tx, (OAUTHCLIENTS, OVERLAY.oauthclients), c, published)? {
        lists.insert(OAuthclientlist);
    }
    let (g, l) = (&after.gegevensdiensten, &after.livegangen);
    if rows(
        tx,
        (GEGEVENSDIENSTEN, OVERLAY.gegevensdiensten),
        g,
        published,
    )? {
        lists.insert(Gegevensdienstnamenlijst);
    }
    if rows(tx, (LIVEGANGEN, OVERLAY.livegangen), l, published)? {
        // As in `write_registry`: a livegang moves offerings and clients.
        lists.insert(Zorgaanbiederslijst);
        lists.insert(OAuthclientlist);
    }
    let mut held = std::collections::BTreeSet::new();
    for row in tx.open_table(WHITELIST)?.iter()? {
        held.insert(row?.0.value().to_string());
    }
    if write_hosts(tx, &held, &after.whitelist, published)? {
        lists.insert(Whitelist);
    }
    let changed = !lists.is_empty();
    if changed {
        mark_written(tx, lists)?;
    }
    Ok(changed)
}

pub(super) fn clear_journal(tx: &redb::WriteTransaction) -> Result<(), RowError> {
    let mut j = tx.open_table(JOURNAL)?;
    j.retain(|_, _| false)?;
    Ok(())
}

/// Who makes a change, and why.
#[derive(Clone, Debug)]
pub struct Who {
    pub operator: String,
    pub reason: Option<String>,
}

/// Longest operator name and reason recorded.
pub const MAX_OPERATOR: usize = 100;

pub const MAX_REASON: usize = 1000;

impl Who {
    /// Operator and reason are recorded line by line: refuse what could forge a line.
    pub fn check(&self) -> Result<(), String> {
        check_recorded(&self.operator, self.reason.as_deref())
    }
}

pub fn check_recorded(operator: &str, reason: Option<&str>) -> Result<(), String> {
    if operator.trim().is_empty() {
        return Err("the operator name is empty (--operator NAME)".into());
    }
    rules::recorded_text("--operator", operator, MAX_OPERATOR)?;
    if let Some(r) = reason {
        rules::recorded_text("--reason", r, MAX_REASON)?;
    }
    Ok(())
}

/// A working table of records open for writing, with its overlay (`None` before anything
/// is published).
pub(super) type Writing<'t> = (
    redb::Table<'t, &'static str, &'static [u8]>,
    Option<redb::Table<'t, &'static str, &'static [u8]>>,
);

/// A working table open for writing, with its overlay if anything is published.
pub(super) fn writing<'t>(
    tx: &'t redb::WriteTransaction,
    (working, overlay): (Rows, Rows),
    published: bool,
) -> Result<Writing<'t>, redb::TableError> {
    Ok((
        tx.open_table(working)?,
        published.then(|| tx.open_table(overlay)).transpose()?,
    ))
}

/// Write the rows of `after` that differ from `before` into a working table, keeping
/// their published bytes in its overlay.
pub(super) fn sync_map<T: Serialize + PartialEq>(
    t: &mut Writing,
    before: &BTreeMap<String, T>,
    after: &BTreeMap<String, T>,
) -> Result<bool, RowError> {
    let mut changed = false;
    for k in before.keys() {
        if !after.contains_key(k) {
            write_row(t, k, None)?;
            changed = true;
        }
    }
    for (k, v) in after {
        if before.get(k) != Some(v) {
            write_row(t, k, Some(&encode(v)?))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Write one working row (`None`: remove it), keeping its published bytes in the overlay.
pub(super) fn write_row(
    (t, overlay): &mut Writing,
    k: &str,
    new: Option<&[u8]>,
) -> Result<(), redb::StorageError> {
    let old = match new {
        Some(v) => t.insert(k, v)?,
        None => t.remove(k)?,
    }
    .map(|v| v.value().to_vec());
    if let Some(o) = overlay.as_mut() {
        keep_published(
            o,
            k,
            old.as_deref().unwrap_or(NOT_PUBLISHED),
            new.unwrap_or(NOT_PUBLISHED),
        )?;
    }
    Ok(())
}

impl Store {
    /// The stored release catalogue, read in the caller's transaction.
    pub(super) fn read_catalogue(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Catalogue, StoreError> {
        let v = meta
            .get(META_CATALOGUE)
            .map_err(|x| self.e()(x.into()))?
            .ok_or_else(|| StoreError::Corrupt("release catalogue missing".into()))?;
        from_json("catalogue", v.value())
    }

    /// A consistent snapshot of the working registry and catalogue.
    pub fn snapshot(&self) -> Result<(Registry, Catalogue), StoreError> {
        let (reg, catalogue, _) = self.snapshot_at()?;
        Ok((reg, catalogue))
    }

    /// `snapshot`, with the working registry's write generation (see [`Store::replace`]).
    pub fn snapshot_at(&self) -> Result<(Registry, Catalogue, u64), StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let reg = read_registry(&tx, WORKING).map_err(&e)?;
        let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
        let generation = generation(&meta).map_err(e)?;
        Ok((reg, self.read_catalogue(&meta)?, generation))
    }

    pub fn registry(&self) -> Result<Registry, StoreError> {
        Ok(self.snapshot()?.0)
    }

    /// Apply `edit` to the registry inside one write transaction: the edit sees the latest
    /// state (concurrent edits serialise, none is lost), the complete result must pass every
    /// rule, and only then are the changed rows written. Returns the edit's message.
    pub fn update<F>(&self, who: &Who, edit: F) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        self.update_scoped(Some(who), &Scope::Whole, &BTreeMap::new(), edit)
    }

    /// `update` on the rows `scope` names (see [`Scope`]): `edit` sees a registry that
    /// holds only those rows (those that exist) and the small tables; rows it adds or
    /// removes there are added or removed in the store, all others stay as they are.
    pub fn update_rows<F>(&self, who: &Who, scope: &Scope, edit: F) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        self.update_scoped(Some(who), scope, &BTreeMap::new(), edit)
    }

    /// The rows `scope` names, as they are now (for `show`).
    pub fn rows(&self, scope: &Scope) -> Result<Registry, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        match scope {
            Scope::Whole => read_registry(&tx, WORKING).map_err(&e),
            Scope::Rows { .. } => {
                read_rows(|d| tx.open_table(d), || tx.open_table(WHITELIST), scope, &e)
            }
        }
    }

    /// `update` for a change that is published by its own logged publication (an expired
    /// gecontroleerde livegang): not recorded as a pending edit.
    pub fn update_unjournalled<F>(&self, edit: F) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        self.update_scoped(None, &Scope::Whole, &BTreeMap::new(), edit)
    }

    /// Make the working registry `reg` (an import), raising Volgnummer floors in the same
    /// transaction, if nothing was written to it since generation `since` (see
    /// [`Store::snapshot_at`]); otherwise refused, with nothing written. `reg` must pass
    /// every rule. Its rows are compared, table by table, with the rows as stored: neither
    /// the registry before nor a copy of it is held (at 100k, an import held three
    /// registries and peaked above 1 GiB). Returns whether anything was written.
    pub fn replace(
        &self,
        who: &Who,
        floors: &BTreeMap<ListKind, u64>,
        since: u64,
        reg: &Registry,
        msg: &str,
    ) -> Result<bool, StoreError> {
        let e = self.e();
        who.check().map_err(StoreError::Refused)?;
        let tx = self.write_tx()?;
        let (now, catalogue) = {
            let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let now = generation(&meta).map_err(&e)?;
            (now, self.read_catalogue(&meta)?)
        };
        if now != since {
            return Err(StoreError::Refused(
                "the registry was edited while the import was being checked; nothing was imported; run the import again".into(),
            ));
        }
        rules::ensure_valid(reg, &catalogue)?;
        let changed = write_whole(&tx, reg).map_err(e)?;
        if !changed && floors.is_empty() {
            return Ok(false);
        }
        self.record_edit(&tx, Some(who), floors, msg)?;
        self.commit(tx)?;
        Ok(true)
    }

    pub(super) fn update_scoped<F>(
        &self,
        who: Option<&Who>,
        scope: &Scope,
        floors: &BTreeMap<ListKind, u64>,
        edit: F,
    ) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        let e = self.e();
        if let Some(who) = who {
            who.check().map_err(StoreError::Refused)?;
        }
        // Holding the write transaction while reading makes read-modify-write atomic:
        // writers are serialised, so what is read below is the latest committed state.
        let tx = self.write_tx()?;
        let (before, catalogue) = match scope {
            Scope::Whole => self.snapshot()?,
            Scope::Rows { .. } => {
                let before =
                    read_rows(|d| tx.open_table(d), || tx.open_table(WHITELIST), scope, &e)?;
                let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
                (before, self.read_catalogue(&meta)?)
            }
        };
        let mut after = before.clone();
        let msg = edit(&mut after).map_err(StoreError::Refused)?;
        scope.contains(&after)?;
        after.canonicalize();
        rules::ensure_valid(&after, &catalogue)?;
        let changed = before != after;
        // An import of unchanged content may still raise a Volgnummer floor.
        if !changed && floors.is_empty() {
            return Ok(msg);
        }
        if changed {
            write_registry(&tx, &before, &after).map_err(e)?;
        }
        self.record_edit(&tx, who, floors, &msg)?;
        self.commit(tx)?;
        Ok(msg)
    }

    /// The bookkeeping of an edit, in its transaction: Volgnummer floors raised, and the
    /// edit journalled when someone made it.
    pub(super) fn record_edit(
        &self,
        tx: &redb::WriteTransaction,
        who: Option<&Who>,
        floors: &BTreeMap<ListKind, u64>,
        msg: &str,
    ) -> Result<(), StoreError> {
        let e = self.e();
        if !floors.is_empty() {
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let mut cur: BTreeMap<ListKind, u64> =
                match meta.get("floors").map_err(|x| e(x.into()))? {
                    Some(v) => from_json("floors", v.value())?,
                    None => BTreeMap::new(),
                };
            for (l, v) in floors {
                let f = cur.entry(*l).or_insert(0);
                *f = (*f).max(*v);
            }
            meta.insert("floors", to_json(&cur)?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        if let Some(who) = who {
            let mut j = tx.open_table(JOURNAL).map_err(|x| e(x.into()))?;
            let next = j
                .last()
                .map_err(|x| e(x.into()))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1);
            let change = Change {
                time: crate::registry::model::tijdstempel(time::OffsetDateTime::now_utc()),
                operator: who.operator.clone(),
                reason: who.reason.clone(),
                summary: msg.to_string(),
            };
            j.insert(next, to_json(&change)?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        Ok(())
    }

    /// Make the working registry what is published and empty the change journal
    /// (discard); returns how many edits went. Both are read while this holds the write
    /// transaction, so no publication can commit in between.
    pub fn discard(&self) -> Result<usize, StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        let (before, published, edits) = {
            let read = self.read_tx()?;
            let edits = read
                .open_table(JOURNAL)
                .map_err(|x| e(x.into()))?
                .iter()
                .map_err(|x| e(x.into()))?
                .count();
            let before = read_registry(&read, WORKING).map_err(&e)?;
            (before, read_published(&read).map_err(&e)?, edits)
        };
        write_registry(&tx, &before, &published).map_err(&e)?;
        clear_journal(&tx).map_err(&e)?;
        // Floors raised by discarded imports go too.
        let floors = self.published()?.map(|p| p.floors).unwrap_or_default();
        tx.open_table(META)
            .map_err(|x| e(x.into()))?
            .insert("floors", to_json(&floors)?.as_slice())
            .map_err(|x| e(x.into()))?;
        self.commit(tx)?;
        Ok(edits)
    }

    /// The pending change set's edits, oldest first.
    pub fn journal(&self) -> Result<Vec<Change>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(JOURNAL).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|x| e(x.into()))? {
            let (_, v) = row.map_err(|x| e(x.into()))?;
            out.push(from_json("journal", v.value())?);
        }
        Ok(out)
    }

    pub(super) fn read_map<T: for<'a> Deserialize<'a>>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(table).map_err(|x| e(x.into()))?;
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            out.insert(k.value().to_string(), from_json(table.name(), v.value())?);
        }
        Ok(out)
    }

    /// Only the livegang records: cheap enough for a once-a-second expiry check.
    pub fn livegangen(
        &self,
    ) -> Result<BTreeMap<String, crate::registry::model::Livegang>, StoreError> {
        self.read_map(LIVEGANGEN)
    }

    /// Replace the release catalogue (before the first publication; afterwards a catalogue
    /// takes effect with the publication that uses it). The lifecycle rules are checked
    /// against the stored catalogue here, whoever calls.
    pub fn set_catalogue(
        &self,
        _guard: &PublicationGuard,
        catalogue: &Catalogue,
    ) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            self.read_catalogue(&meta)?
                .check_transition(catalogue)
                .map_err(StoreError::Refused)?;
            meta.insert(META_CATALOGUE, to_json(catalogue)?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        self.commit(tx)?;
        Ok(())
    }

    /// The catalogue alone (not the whole registry, as `snapshot` reads).
    pub fn catalogue(&self) -> Result<Catalogue, StoreError> {
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| self.e()(x.into()))?;
        self.read_catalogue(&meta)
    }
}
