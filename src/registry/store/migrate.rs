//! One-time migrations of data directories written by earlier versions.

use super::*;

impl Store {
    /// Move documents stored whole in redb (data directories written before documents
    /// became files) into files, once: each is hashed, compressed and written, and its
    /// row becomes a reference, in one transaction; then the redb file is compacted.
    /// One document is in memory at a time.
    ///
    /// A registry without the dirty-list record (written before it existed) gets one that
    /// marks every list, so its next publication reads everything.
    pub(super) fn migrate(&self) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        let renamed = {
            let old = tx
                .list_tables()
                .map_err(|x| e(x.into()))?
                .any(|t| t.name() == OLD_META.name());
            if old {
                let rows: Vec<(String, Vec<u8>)> = {
                    let t = tx.open_table(OLD_META).map_err(|x| e(x.into()))?;
                    let mut rows = Vec::new();
                    for row in t.iter().map_err(|x| e(x.into()))? {
                        let (k, v) = row.map_err(|x| e(x.into()))?;
                        rows.push((k.value().to_string(), v.value().to_vec()));
                    }
                    rows
                };
                let mut t = tx.open_table(META).map_err(|x| e(x.into()))?;
                for (k, v) in &rows {
                    t.insert(k.as_str(), v.as_slice())
                        .map_err(|x| e(x.into()))?;
                }
                drop(t);
                tx.delete_table(OLD_META).map_err(|x| e(x.into()))?;
            }
            old
        };
        let (done, has_dirty) = {
            let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let has = |k: &str| -> Result<bool, StoreError> {
                Ok(meta.get(k).map_err(|x| e(x.into()))?.is_some())
            };
            (has(META_LAYOUT)?, has(META_DIRTY)?)
        };
        if done && has_dirty {
            return match renamed {
                true => self.commit(tx),
                false => Ok(()), // dropped without commit: nothing written
            };
        }
        if !has_dirty {
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let generation = generation(&meta).map_err(&e)?;
            let all: Dirty = ListKind::ALL.iter().map(|l| (*l, generation)).collect();
            meta.insert(META_DIRTY, to_json(&all)?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        if done {
            return self.commit(tx);
        }
        let keys: Vec<String> = {
            let t = tx.open_table(DOCUMENTS).map_err(|x| e(x.into()))?;
            let mut keys = Vec::new();
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, _) = row.map_err(|x| e(x.into()))?;
                if !k.value().ends_with(".sig") {
                    keys.push(k.value().to_string());
                }
            }
            keys
        };
        let mut moved = 0;
        {
            let mut t = tx.open_table(DOCUMENTS).map_err(|x| e(x.into()))?;
            for k in &keys {
                let bytes = match t.get(k.as_str()).map_err(|x| e(x.into()))? {
                    Some(v) if documents::referenced(v.value()).is_none() => v.value().to_vec(),
                    _ => continue,
                };
                let sha = sha256_hex(&bytes);
                let gz = documents::gzip(&bytes).map_err(|x| self.file_err(&sha, &x))?;
                self.files
                    .put(&sha, &bytes, &gz)
                    .map_err(|x| self.file_err(&sha, &x))?;
                t.insert(k.as_str(), documents::reference(&sha).as_slice())
                    .map_err(|x| e(x.into()))?;
                moved += 1;
            }
            tx.open_table(META)
                .map_err(|x| e(x.into()))?
                .insert(META_LAYOUT, b"1".as_slice())
                .map_err(|x| e(x.into()))?;
        }
        self.commit(tx)?;
        if moved == 0 {
            return Ok(());
        }
        let current: Vec<String> = self
            .published()?
            .map(|p| p.renditions.into_iter().map(|r| r.sha256).collect())
            .unwrap_or_default();
        self.prune_files(&current);
        // Give the space the documents took back to the file system.
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = slot.as_mut() {
            db.compact().map_err(|x| e(x.into()))?;
        }
        tracing::info!(
            "moved {moved} published document(s) out of {} into {}/ (one-time migration)",
            self.path.display(),
            self.files.dir().display()
        );
        Ok(())
    }

    /// Turn a whole published copy of the registry (data directories written before the
    /// overlay) into overlay rows, once: the copy's rows are compared, as stored, with the
    /// working tables, the copy's tables go and the file is compacted. A registry made
    /// before the overlay existed gets its (empty) tables here too.
    pub(super) fn migrate_published(&self) -> Result<(), StoreError> {
        let e = self.e();
        type Stored = Vec<(String, Vec<u8>)>;
        let (old, published) = {
            let tx = self.read_tx()?;
            let names: Vec<String> = tx
                .list_tables()
                .map_err(|x| e(x.into()))?
                .map(|t| t.name().to_string())
                .collect();
            let has = |t: Rows| names.iter().any(|n| n == t.name());
            let old = has(OLD_PUBLISHED.zorgaanbieders);
            if !old && has(OVERLAY.whitelist) {
                return Ok(());
            }
            let stored = |t: Rows| -> Result<Stored, RowError> {
                let mut out = Vec::new();
                for row in tx.open_table(t)?.iter()? {
                    let (k, v) = row?;
                    out.push((k.value().to_string(), v.value().to_vec()));
                }
                Ok(out)
            };
            let read = || -> Result<_, RowError> {
                if !old || !is_published(&tx.open_table(META)?)? {
                    return Ok(None);
                }
                let mut hosts = std::collections::BTreeSet::new();
                for row in tx.open_table(OLD_PUBLISHED.whitelist)?.iter()? {
                    hosts.insert(row?.0.value().to_string());
                }
                let tables = [
                    (
                        ZORGAANBIEDERS,
                        OVERLAY.zorgaanbieders,
                        OLD_PUBLISHED.zorgaanbieders,
                    ),
                    (
                        OAUTHCLIENTS,
                        OVERLAY.oauthclients,
                        OLD_PUBLISHED.oauthclients,
                    ),
                    (
                        GEGEVENSDIENSTEN,
                        OVERLAY.gegevensdiensten,
                        OLD_PUBLISHED.gegevensdiensten,
                    ),
                    (LIVEGANGEN, OVERLAY.livegangen, OLD_PUBLISHED.livegangen),
                ];
                let mut rows = Vec::new();
                for (working, overlay, copy) in tables {
                    rows.push((working, overlay, stored(copy)?));
                }
                Ok(Some((rows, hosts)))
            };
            (old, read().map_err(&e)?)
        };
        let copied = published.is_some();
        let tx = self.write_tx()?;
        let go = || -> Result<(), RowError> {
            for t in OVERLAY.all() {
                tx.open_table(t)?;
            }
            if let Some((tables, hosts)) = published {
                for (working, overlay, rows) in tables {
                    overlay_all(&tx, (working, overlay), rows.into_iter().map(Ok))?;
                }
                publish_hosts(&tx, &hosts, Compare::All)?;
            }
            if old {
                for t in [
                    OLD_PUBLISHED.zorgaanbieders,
                    OLD_PUBLISHED.oauthclients,
                    OLD_PUBLISHED.gegevensdiensten,
                    OLD_PUBLISHED.livegangen,
                ] {
                    tx.delete_table(t)?;
                }
                tx.delete_table(OLD_PUBLISHED.whitelist)?;
            }
            Ok(())
        };
        go().map_err(e)?;
        self.commit(tx)?;
        if copied {
            // Give the space the copy took back to the file system (the conversion is
            // committed: a compaction that fails only leaves the file larger).
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            if let Some(Err(x)) = slot.as_mut().map(|db| db.compact()) {
                tracing::warn!("compacting the registry after converting it: {x}");
            }
        }
        Ok(())
    }
}
