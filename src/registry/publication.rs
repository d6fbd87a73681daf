//! Publication records: what a publication made current (the published index, each list's
//! Volgnummer and Tijdstempel, the documents), the log entry it appends and the edits it
//! made public. The one vocabulary the store, the publisher, the server and the history
//! share; it depends on the domain model only.

use crate::registry::catalogue::{Catalogue, Rendition};
use crate::registry::model::ListKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state of one list as last published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersion {
    pub volgnummer: u64,
    pub tijdstempel: String,
    /// SHA-256 of the registry content the list shows; equal content keeps the Volgnummer.
    pub content_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRendition {
    pub rendition: Rendition,
    pub volgnummer: u64,
    pub sha256: String,
}

/// What the server serves: written in the same transaction as the documents it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedIndex {
    pub seq: u64,
    pub lists: BTreeMap<ListKind, ListVersion>,
    pub catalogue: Catalogue,
    pub renditions: Vec<PublishedRendition>,
    /// Volgnummer floors from imported lists, so a migrated list continues its numbering.
    #[serde(default)]
    pub floors: BTreeMap<ListKind, u64>,
}

/// One entry of the publication log (a hash chain: `prev_sha256` is the SHA-256 of the
/// previous entry's stored JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// The edits this publication made public, each with its operator and reason.
    #[serde(default)]
    pub changes: Vec<Change>,
    pub time: String,
    pub operator: String,
    pub reason: String,
    pub changed: Vec<ListKind>,
    pub lists: BTreeMap<ListKind, ListVersion>,
    pub documents: Vec<PublishedRendition>,
    pub prev_sha256: String,
}

/// One edit in the pending change set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub time: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub summary: String,
}

impl Change {
    /// One line for `diff` and `history show`.
    pub fn describe(&self) -> String {
        format!(
            "edit {} by {}: {}{}",
            self.time,
            self.operator,
            self.summary,
            self.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    }
}

pub fn rendition_id(r: &Rendition) -> String {
    match &r.interfaceversie {
        Some(iv) => format!("{}/{}@{}", r.list.key(), r.version, iv),
        None => format!("{}/{}", r.list.key(), r.version),
    }
}

pub fn document_key(r: &Rendition, volgnummer: u64) -> String {
    format!("{}#{}", rendition_id(r), volgnummer)
}
