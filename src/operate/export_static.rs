//! `export-static DIR`: the current documents of every release, with signatures, gzip
//! variants, the certificate and a generated nginx configuration, for static edges (see
//! `serve::edge`).

use super::Ctx;
use crate::serve::set::PublishedSet;
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ExportStatic {
    pub out: PathBuf,
}

impl ExportStatic {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        crate::serve::edge::check_root(&self.out)?;
        let cert = crate::sign::keyring::signers(ctx.store, ctx.data)?
            .active
            .cert_pem;
        // No publication may commit (and remove files of the set being read) meanwhile.
        let _guard = ctx.store.lock_publications();
        let set = PublishedSet::load(ctx.store, cert)?
            .ok_or_else(|| anyhow!("nothing has been published yet"))?;
        // Heads expire (see `distribute::head`): an export made here is signed now; keep
        // edges current with `serve --export-static`, which signs and exports again.
        let publisher = ctx.publisher()?;
        set.sign_heads(
            &publisher.key()?,
            time::OffsetDateTime::now_utc(),
            publisher.heads.lifetime,
        );
        crate::serve::edge::export(&set, &self.out, ctx.store)
    }
}
