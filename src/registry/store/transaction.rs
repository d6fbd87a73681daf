//! Transactions and fault handling: every transaction begins here, and an I/O error
//! (a full disk) poisons the database until it is closed and opened again, which the next
//! operation does.

use super::*;

impl Store {
    /// Map an error inside a transaction to a [`StoreError`]; a disk fault (an I/O error,
    /// a full disk) marks the database for re-opening and is reported until a write
    /// succeeds again. A row that cannot be decoded is not a disk fault.
    pub(crate) fn e(&self) -> impl Fn(RowError) -> StoreError + '_ {
        move |x| {
            let err = db_err(&self.path)(x);
            if err.is_disk_fault() {
                let msg = err.to_string();
                if !self
                    .poisoned
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::error!("{msg}; it is re-opened before the next operation, the last published set keeps being served");
                }
                self.set_fault(Some(msg));
            }
            err
        }
    }

    pub(super) fn set_fault(&self, f: Option<String>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// The I/O error that keeps the registry unavailable, if any.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After an I/O error redb answers every write with "Previous I/O error … close and
    /// re-open the database": do exactly that, without restarting the process. Serving is
    /// not affected (the published set is in memory); if re-opening fails, the next
    /// operation tries again.
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(()); // another thread re-opened it meanwhile
        }
        *slot = None; // closes the file once no transaction holds it
        let mut last = String::new();
        for _ in 0..40 {
            match builder().open(&self.path) {
                Ok(db) => {
                    *slot = Some(db);
                    self.poisoned.store(false, Ordering::SeqCst);
                    // The fault stays reported until a write succeeds again.
                    tracing::info!("registry database re-opened after an I/O error");
                    return Ok(());
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    last = "still in use by a running transaction".into();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    last = e.to_string();
                    break;
                }
            }
        }
        let msg = format!("re-opening after an I/O error failed: {last}");
        self.set_fault(Some(msg.clone()));
        Err(StoreError::Db {
            path: self.path.display().to_string(),
            msg,
        })
    }

    /// Commit; a successful write ends a reported fault.
    pub(super) fn commit(&self, tx: redb::WriteTransaction) -> Result<(), StoreError> {
        tx.commit().map_err(|x| self.e()(x.into()))?;
        if self.fault().is_some() {
            tracing::info!("registry database writes succeed again");
            self.set_fault(None);
        }
        Ok(())
    }

    /// Begin a transaction on the open database, re-opening it first after an I/O error.
    pub(super) fn begin<T, E: Into<RowError>>(
        &self,
        begin: impl FnOnce(&Database) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        self.recover()?;
        let slot = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = slot.as_ref().ok_or_else(|| StoreError::Db {
            path: self.path.display().to_string(),
            msg: "the database is being re-opened".into(),
        })?;
        begin(db).map_err(|x| self.e()(x.into()))
    }

    pub(crate) fn read_tx(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.begin(|db| db.begin_read())
    }

    pub(super) fn write_tx(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.begin(|db| db.begin_write())
    }

    /// A document file that cannot be read or written: an I/O error like redb's (a full
    /// disk is reported by `/health` until a publication succeeds again).
    pub(crate) fn file_err(&self, sha: &str, x: &std::io::Error) -> StoreError {
        let msg = format!("document file {sha}: I/O error: {x}");
        if x.kind() != std::io::ErrorKind::InvalidData {
            tracing::error!("{msg}");
            self.set_fault(Some(msg.clone()));
        }
        StoreError::Db {
            path: self.path.display().to_string(),
            msg,
        }
    }

    /// Run `f` in a read transaction, for a table another module defines and owns
    /// (`publish::cache`, `serve::clients`): the store keeps them without knowing them.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, RowError>,
    ) -> Result<T, StoreError> {
        let tx = self.read_tx()?;
        f(&tx).map_err(self.e())
    }

    /// Every row of `table`, a table another module owns whose rows are JSON records, by
    /// key; empty before anything was written to it.
    pub fn records<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        self.read(|tx| {
            let Some(t) = open_or_empty(tx.open_table(table))? else {
                return Ok(BTreeMap::new());
            };
            let mut out = BTreeMap::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let record = serde_json::from_slice(v.value())
                    .map_err(|e| RowError::decode(table.name(), k.value(), &e))?;
                out.insert(k.value().to_string(), record);
            }
            Ok(out)
        })
    }

    /// Run `f` in a write transaction and commit what it wrote (see [`Store::read`]).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, RowError>,
    ) -> Result<T, StoreError> {
        let tx = self.write_tx()?;
        let out = f(&tx).map_err(self.e())?;
        self.commit(tx)?;
        Ok(out)
    }
}
