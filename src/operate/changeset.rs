//! The pending change set and the registry as a whole: `status`, `dump`, `diff`,
//! `discard`, and the views they share with `publish`, `import` and `history`.

use super::{json, Ctx};
use crate::registry::catalogue::Catalogue;
use crate::registry::model::{ListKind, Registry};
use crate::registry::publication::ListVersion;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One line of a Volgnummer table (`status`, `publish`, `history show`).
pub fn volgnummer_line(list: ListKind, v: &ListVersion, note: &str) -> String {
    format!(
        "  {:<26} Volgnummer {:>6}  {note}",
        list.to_string(),
        v.volgnummer
    )
}

/// The Volgnummer table of a publication: every list, changed or not.
pub fn volgnummer_table(
    lists: &BTreeMap<ListKind, ListVersion>,
    note: impl Fn(ListKind, &ListVersion) -> String,
) -> String {
    let mut out = String::new();
    for (l, v) in lists {
        out.push_str(&volgnummer_line(*l, v, &note(*l, v)));
        out.push('\n');
    }
    out
}

pub fn status(ctx: &Ctx) -> Result<String> {
    // Lists not written since the last publication are what was published: their tables
    // (100,000 rows for a ZAL) are counted, not read.
    let v = ctx.store.status_view()?;
    let [zorgaanbieders, oauthclients, whitelist, gegevensdiensten] = v.counts;
    let mut out = String::new();
    writeln!(
        out,
        "registry: {zorgaanbieders} Zorgaanbieders, {oauthclients} OAuth clients, {whitelist} Whitelist nodes, {gegevensdiensten} Gegevensdiensten",
    )?;
    match &v.published {
        None => writeln!(out, "published: nothing yet")?,
        Some(p) => {
            writeln!(out, "published: publication #{}", p.seq)?;
            let mut pending = std::collections::BTreeSet::new();
            for l in &v.compare {
                let hash = v.registry.list_content_sha256(*l)?;
                if p.lists.get(l).is_some_and(|x| x.content_sha256 != hash) {
                    pending.insert(*l);
                }
            }
            out.push_str(&volgnummer_table(&p.lists, |l, v| {
                let mark = if pending.contains(&l) {
                    "  (registry has unpublished changes)"
                } else {
                    ""
                };
                format!("{}{mark}", v.tijdstempel)
            }));
        }
    }
    writeln!(out, "releases (default {}):", v.catalogue.default)?;
    out.push_str(&releases(&v.catalogue));
    Ok(out)
}

/// The release catalogue, one block per release.
pub fn releases(cat: &Catalogue) -> String {
    let mut out = String::new();
    for r in &cat.releases {
        let default = if r.id == cat.default {
            "  (default)"
        } else {
            ""
        };
        let _ = write!(
            out,
            "{:<8} {:<11} interfaceversie {}",
            r.id,
            r.status.as_str(),
            r.interfaceversie
        );
        if let Some(s) = &r.sunset {
            let _ = write!(out, "  sunset {s}");
        }
        let _ = writeln!(out, "{default}");
        for l in ListKind::ALL {
            let _ = writeln!(out, "    {:<26} {}", l.to_string(), r.schema_version(l));
        }
    }
    out
}

pub fn dump(ctx: &Ctx) -> Result<String> {
    Ok(format!("{}\n", json(&ctx.store.registry()?)?))
}

pub fn diff(ctx: &Ctx) -> Result<String> {
    // Only the rows that differ (and the small tables): the rest adds nothing to a diff.
    let (published, reg) = ctx.store.pending_registries()?;
    let cat = ctx.store.catalogue()?;
    let mut out = entry_diff(&published, &reg, &cat, &ListKind::ALL);
    if out.is_empty() {
        out.push_str("no pending changes\n");
    }
    for c in ctx.store.journal()? {
        writeln!(out, "{}", c.describe())?;
    }
    Ok(out)
}

pub fn discard(ctx: &Ctx) -> Result<String> {
    let n = ctx.store.discard()?;
    Ok(format!(
        "discarded the pending change set ({n} edits); the registry is as published\n"
    ))
}

/// The entry-level differences of every rendition of `lists`; empty if none.
pub fn entry_diff(old: &Registry, new: &Registry, cat: &Catalogue, lists: &[ListKind]) -> String {
    cat.renditions()
        .iter()
        .filter(|r| lists.contains(&r.list))
        .map(|r| crate::registry::diff::describe(r, old, new))
        .collect()
}
