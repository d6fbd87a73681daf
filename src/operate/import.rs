//! `import FILE... [--dry-run]`: complete lists replace that list's content in the
//! registry, as a change set, after showing what they change.

use super::changeset::entry_diff;
use super::Ctx;
use crate::consume::read::{self, Release2Mapping};
use crate::registry::catalogue::Catalogue;
use crate::registry::model::{Aanbiedertype, Registry};
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
        let (before, cat, generation) = ctx.store.snapshot_at()?;
        // The imported lists move into `after`; a release3 ZAL replaces every
        // Zorgaanbieder, so those are not copied first (at 100k, 400 MB).
        let replaced = lists.iter().any(|(_, l)| l.replaces_zorgaanbieders());
        let mut after = Registry {
            zorgaanbieders: match replaced {
                true => BTreeMap::new(),
                false => before.zorgaanbieders.clone(),
            },
            oauthclients: before.oauthclients.clone(),
            whitelist: before.whitelist.clone(),
            gegevensdiensten: before.gegevensdiensten.clone(),
            livegangen: before.livegangen.clone(),
        };
        for (_, l) in lists {
            read::apply(&mut after, l, &map);
        }
        after.canonicalize();
        crate::registry::rules::ensure_valid(&after, &cat).map_err(|v| anyhow!("{v}"))?;
        let d = entry_diff(&before, &after, &cat, &touched);
        if d.is_empty() {
            writeln!(out, "the import changes nothing")?;
        }
        out.push_str(&d);
        drop(before);
        if self.dry_run {
            writeln!(out, "dry run: nothing was written")?;
            return Ok(out);
        }
        let summary = descriptions.join("; ");
        // Written only if nothing was written since the snapshot above (an edit that
        // arrived meanwhile is not overwritten: the import is refused and can be run again).
        ctx.store.replace(
            &ctx.who,
            &floors,
            generation,
            &after,
            &format!("import {summary}"),
        )?;
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
