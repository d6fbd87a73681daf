//! The operator's operations. One typed [`Operation`] per command, plain serde data, each
//! in its own file with its `apply` (mini-redis style: the CLI parses arguments into an
//! operation, the admin socket carries the operation as JSON, and both run the same
//! `apply`). clap stays in `cli`; nothing here knows about argv.

pub mod admin;
pub mod archive;
pub mod audit;
pub mod changeset;
pub mod clients;
pub mod entity;
pub mod export;
pub mod export_static;
pub mod gegevensdienst;
pub mod history;
pub mod import;
pub mod key;
pub mod livegang;
pub mod oauthclient;
pub mod publish;
pub mod release;
pub mod whitelist;
pub mod zorgaanbieder;

use crate::publish::Publisher;
use crate::registry::store::{Store, Who};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::path::Path;

/// Everything an operation can do, as data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    Status,
    Clients(clients::Clients),
    Dump,
    Diff,
    Discard,
    Publish(publish::Publish),
    Import(import::Import),
    Export(export::Export),
    ExportStatic(export_static::ExportStatic),
    Zorgaanbieder(zorgaanbieder::ZorgaanbiederOp),
    Oauthclient(oauthclient::OAuthclientOp),
    Whitelist(whitelist::WhitelistOp),
    Gegevensdienst(gegevensdienst::GegevensdienstOp),
    Release(release::ReleaseOp),
    Livegang(livegang::LivegangOp),
    History(history::HistoryOp),
    Key(key::KeyOp),
}

impl Operation {
    /// Run the operation; what it prints.
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        match self {
            Operation::Status => changeset::status(ctx),
            Operation::Clients(op) => op.apply(ctx),
            Operation::Dump => changeset::dump(ctx),
            Operation::Diff => changeset::diff(ctx),
            Operation::Discard => changeset::discard(ctx),
            Operation::Publish(op) => op.apply(ctx),
            Operation::Import(op) => op.apply(ctx),
            Operation::Export(op) => op.apply(ctx),
            Operation::ExportStatic(op) => op.apply(ctx),
            Operation::Zorgaanbieder(op) => op.apply(ctx),
            Operation::Oauthclient(op) => op.apply(ctx),
            Operation::Whitelist(op) => op.apply(ctx),
            Operation::Gegevensdienst(op) => op.apply(ctx),
            Operation::Release(op) => op.apply(ctx),
            Operation::Livegang(op) => op.apply(ctx),
            Operation::History(op) => op.apply(ctx),
            Operation::Key(op) => op.apply(ctx),
        }
    }

    /// Operations that commit a publication (a lost connection is then explained).
    pub fn publishes(&self) -> bool {
        matches!(self, Operation::Publish(_))
            || matches!(self, Operation::Release(r) if r.publishes())
            || matches!(self, Operation::Key(k) if k.changes())
    }

    /// Operations that change nothing in the registry: safe to run again here when the
    /// server that was asked went away before answering.
    pub fn reads_only(&self) -> bool {
        use gegevensdienst::GegevensdienstOp as G;
        use livegang::LivegangOp as L;
        use oauthclient::OAuthclientOp as O;
        use whitelist::WhitelistOp as W;
        use zorgaanbieder::ZorgaanbiederOp as Z;
        match self {
            Operation::Status
            | Operation::Clients(_)
            | Operation::Dump
            | Operation::Diff
            | Operation::Export(_)
            | Operation::ExportStatic(_)
            | Operation::History(_) => true,
            Operation::Zorgaanbieder(o) => matches!(o, Z::Show { .. } | Z::List),
            Operation::Oauthclient(o) => matches!(o, O::Show { .. } | O::List),
            Operation::Whitelist(o) => matches!(o, W::Show { .. } | W::List),
            Operation::Gegevensdienst(o) => matches!(o, G::Show { .. } | G::List),
            Operation::Release(o) => matches!(o, release::ReleaseOp::List),
            Operation::Key(o) => !o.changes(),
            Operation::Livegang(o) => matches!(o, L::List | L::Show { .. }),
            Operation::Discard | Operation::Publish(_) | Operation::Import(_) => false,
        }
    }

    /// Make relative paths absolute, before the operation runs in another process.
    pub fn absolutize(&mut self, cwd: &Path) {
        let abs = |p: &mut std::path::PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        match self {
            Operation::Import(a) => a.files.iter_mut().for_each(abs),
            Operation::Export(a) => abs(&mut a.out),
            Operation::ExportStatic(a) => abs(&mut a.out),
            Operation::History(history::HistoryOp::Export { out, .. }) => abs(out),
            _ => {}
        }
    }
}

/// What an operation runs against: the data directory, the store, the publisher (made on
/// first use in the CLI, where most operations need no signing key) and who asks.
pub struct Ctx<'a> {
    pub data: &'a Path,
    pub store: &'a std::sync::Arc<Store>,
    pub who: Who,
    publisher: Publishers<'a>,
}

enum Publishers<'a> {
    Ready(&'a Publisher),
    Lazy(OnceCell<Publisher>),
}

impl<'a> Ctx<'a> {
    /// In a server: its publisher, which also swaps the served set.
    pub fn serving(
        data: &'a Path,
        store: &'a std::sync::Arc<Store>,
        publisher: &'a Publisher,
        who: Who,
    ) -> Ctx<'a> {
        Ctx {
            data,
            store,
            who,
            publisher: Publishers::Ready(publisher),
        }
    }

    /// In the CLI without a server: a publisher is made (the key loaded) when needed.
    pub fn local(data: &'a Path, store: &'a std::sync::Arc<Store>, who: Who) -> Ctx<'a> {
        Ctx {
            data,
            store,
            who,
            publisher: Publishers::Lazy(OnceCell::new()),
        }
    }

    pub fn publisher(&self) -> Result<&Publisher> {
        match &self.publisher {
            Publishers::Ready(p) => Ok(p),
            Publishers::Lazy(cell) => {
                if let Some(p) = cell.get() {
                    return Ok(p);
                }
                Ok(cell.get_or_init(|| Publisher::new(self.store.clone(), self.data, None)))
            }
        }
    }
}

/// Pretty JSON of a record for `show` and `dump`.
pub fn json(v: &impl Serialize) -> Result<String> {
    Ok(crate::terminal::json(serde_json::to_string_pretty(v)?))
}

pub fn not_found(kind: &str, key: &str) -> String {
    format!("{kind} '{}' does not exist", crate::clip::clip(key))
}
