//! `import FILE... [--dry-run]`: complete lists replace that list's content in the
//! registry, as a change set, after showing what they change.

use super::changeset::entry_diff;
use super::Ctx;
use crate::consume::read::{self, Release2Mapping};
use crate::registry::catalogue::Catalogue;
use crate::registry::model::Aanbiedertype;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Import {
    pub files: Vec<PathBuf>,
    /// Interfaceversie of a release2 Zorgaanbiederslijst's offerings (default: the default
    /// release's).
    pub interfaceversie: Option<String>,
    /// Aanbiedertype of Zorgaanbieders first seen in a release2 Zorgaanbiederslijst.
    pub aanbiedertype: Aanbiedertype,
    pub dry_run: bool,
    /// Largest file read, in bytes.
    pub max_size: u64,
}

impl Import {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let mut out = String::new();
        let cat = ctx.store.catalogue()?;
        let interfaceversie = match self.interfaceversie {
            Some(iv) => iv,
            None => default_interfaceversie(&cat)?,
        };
        crate::registry::rules::interfaceversie_id(&interfaceversie)
            .map_err(|e| anyhow!("--interfaceversie '{interfaceversie}' {e}"))?;
        let mut lists = Vec::new();
        for f in &self.files {
            let bytes = crate::xml::input::read_file(f, self.max_size)
                .map_err(|e| anyhow!("{e}; nothing was imported"))?;
            let l = read::read_list(&bytes)
                .map_err(|e| anyhow!("{}: {e}; nothing was imported", f.display()))?;
            lists.push((f.clone(), l));
        }
        let mut seen = BTreeMap::new();
        for (f, l) in &lists {
            if let Some(prev) = seen.insert(l.schema.list, f.clone()) {
                bail!(
                    "{} and {} are both a {}; import one per list; nothing was imported",
                    prev.display(),
                    f.display(),
                    l.schema.list
                );
            }
        }
        let map = Release2Mapping {
            interfaceversie,
            aanbiedertype: self.aanbiedertype,
        };
        let mut floors = BTreeMap::new();
        let mut descriptions = Vec::new();
        let mut touched = Vec::new();
        for (f, l) in &lists {
            floors.insert(l.schema.list, l.volgnummer);
            touched.push(l.schema.list);
            descriptions.push(format!("{}: {}", f.display(), l.describe()));
        }
        let (before, cat) = ctx.store.snapshot()?;
        let mut after = before.clone();
        for (_, l) in &lists {
            read::apply(&mut after, l.clone(), &map);
        }
        after.canonicalize();
        crate::registry::rules::ensure_valid(&after, &cat).map_err(|v| anyhow!("{v}"))?;
        let d = entry_diff(&before, &after, &cat, &touched);
        if d.is_empty() {
            writeln!(out, "the import changes nothing")?;
        }
        out.push_str(&d);
        // Peak memory: the preview's two registries go before the write makes its own two.
        drop((before, after));
        if self.dry_run {
            writeln!(out, "dry run: nothing was written")?;
            return Ok(out);
        }
        let summary = descriptions.join("; ");
        // Applied to the latest registry inside the write transaction, so an edit that
        // arrived after the diff above is not lost.
        let imported: Vec<_> = lists.into_iter().map(|(_, l)| l).collect();
        ctx.store
            .update_with_floors(&ctx.who, &floors, move |reg| {
                for l in imported {
                    read::apply(reg, l, &map);
                }
                Ok(format!("import {summary}"))
            })?;
        for d in descriptions {
            writeln!(out, "imported {d}")?;
        }
        writeln!(out, "run `stelselnode publish -m REASON` to publish")?;
        Ok(out)
    }
}

fn default_interfaceversie(cat: &Catalogue) -> Result<String> {
    cat.get(&cat.default)
        .map(|r| r.interfaceversie.clone())
        .ok_or_else(|| {
            anyhow!(
                "default release '{}' missing from the catalogue",
                cat.default
            )
        })
}
