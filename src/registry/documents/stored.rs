//! The store's published documents by storage key (`<rendition id>#<Volgnummer>`, `….sig`):
//! redb holds a reference to a content-addressed file, or (for a detached signature) the
//! bytes themselves; this resolves the one into the other.

use super::{Files, Mapped, Staged, Stream};
use crate::digest::sha256_hex;
use crate::registry::store::{Store, StoreError, DOCUMENTS};

/// A historic document's bytes for one answer (see [`Store::historic_body`]).
pub enum HistoricBody {
    /// The document itself (mapped, or a small one stored inline).
    Plain(bytes::Bytes),
    /// Its gzip file, named by `sha256`, the document's own SHA-256.
    Gzip { file: bytes::Bytes, sha256: String },
}

impl Store {
    /// Write a document a publication made to a temporary file, while its SHA-256 and gzip
    /// variant are computed (see [`Store::write_staged`]).
    pub fn stage_document(&self, pieces: &[&[u8]]) -> Result<Staged, StoreError> {
        self.files()
            .stage(pieces)
            .map_err(|x| self.file_err("(being written)", &x))
    }

    /// Name a document [`Store::stage_document`] wrote, write its gzip variant, and map
    /// both, before the publication commits. A publication that fails later leaves files
    /// no row refers to; the next commit removes them.
    pub fn write_staged(
        &self,
        sha256: &str,
        staged: Staged,
        gzip: &[u8],
    ) -> Result<Mapped, StoreError> {
        self.files()
            .put_staged(sha256, staged, gzip)
            .and_then(|()| self.files().map(sha256))
            .map_err(|x| self.file_err(sha256, &x))
    }

    /// A published document's bytes, by storage key (`None` if never published).
    pub fn document(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.resolve(key, |f, sha| f.read(sha), Some)
    }

    /// A published document as a stream with its length (`None` if never published);
    /// the stream fails at its end if the bytes do not match the SHA-256 they were
    /// published with. For exports of the whole history in bounded memory.
    pub fn document_reader(&self, key: &str) -> Result<Option<Stream>, StoreError> {
        self.resolve(
            key,
            |f, sha| f.reader(sha),
            |v| Some((v.len() as u64, Box::new(std::io::Cursor::new(v)))),
        )
    }

    /// A document of the published set as the server holds it: mapped from its files
    /// (`None` for one stored inline: a detached signature, a few kB).
    pub fn mapped(&self, key: &str) -> Result<Option<Mapped>, StoreError> {
        self.resolve(key, |f, sha| f.map(sha), |_| None)
    }

    /// A historic document as the server holds it for one request: a document kept in a
    /// file always as its gzip file, mapped (the server sends it as it is, or inflates it
    /// as it sends it), whether or not its plain file also exists, so the answer does not
    /// depend on what else the store keeps; one stored inline (a detached signature) as
    /// it is. Nothing is read or hashed here.
    pub fn historic_body(&self, key: &str) -> Result<Option<HistoricBody>, StoreError> {
        self.resolve(
            key,
            |f, sha| {
                f.map_gzip(sha).map(|file| HistoricBody::Gzip {
                    file,
                    sha256: sha.to_string(),
                })
            },
            |v| Some(HistoricBody::Plain(bytes::Bytes::from(v))),
        )
    }

    /// A published document's SHA-256, from its reference (not read and hashed).
    pub fn document_sha256(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .document_value(key)?
            .map(|v| match super::referenced(&v) {
                Some(sha) => sha.to_string(),
                None => sha256_hex(&v),
            }))
    }

    /// A stored document: from its files when its row is a reference, else the row itself.
    fn resolve<T>(
        &self,
        key: &str,
        from_file: impl FnOnce(&Files, &str) -> std::io::Result<T>,
        inline: impl FnOnce(Vec<u8>) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let Some(v) = self.document_value(key)? else {
            return Ok(None);
        };
        match super::referenced(&v).map(str::to_string) {
            Some(sha) => from_file(self.files(), &sha)
                .map(Some)
                .map_err(|x| self.file_err(&sha, &x)),
            None => Ok(inline(v)),
        }
    }

    fn document_value(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(DOCUMENTS).map_err(|x| e(x.into()))?;
        let v = t.get(key).map_err(|x| e(x.into()))?;
        Ok(v.map(|v| v.value().to_vec()))
    }
}
