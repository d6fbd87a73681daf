//! Entry-level differences between two registries as one rendition shows them: what a
//! consumer of that list and schema version would see added, removed or changed.
//!
//! Entries are compared as data first; readable lines are made only for entries that
//! differ, and only for the first [`SHOWN`] of them, so diffing two registries of 100,000
//! Zorgaanbieders costs little more than comparing them.

use crate::registry::catalogue::Rendition;
use crate::registry::model::{
    Gegevensdienst, Gegevensdienstnaam, ListKind, OAuthclient, Registry, SchemaVersion,
    Zorgaanbieder,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many added or changed entries a diff describes line by line (all are counted).
pub const SHOWN: usize = 100;

/// The lines of one Zorgaanbieder as the rendition shows it; `None` if it does not show it
/// (a release2 ZAL shows only Zorgaanbieders with offerings in its Interfaceversie).
fn zorgaanbieder_lines(z: &Zorgaanbieder, r: &Rendition) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    match &r.interfaceversie {
        Some(iv) => {
            for g in &z.interfaceversie(iv)?.gegevensdiensten {
                gegevensdienst_lines(&mut lines, "", g, false);
            }
        }
        None => {
            lines.push(format!("Aanbiedertype {}", z.aanbiedertype.as_str()));
            for i in &z.interfaceversies {
                let p = format!("{} ", i.interfaceversie_id);
                for g in &i.gegevensdiensten {
                    gegevensdienst_lines(&mut lines, &p, g, true);
                }
            }
        }
    }
    Some(sorted(lines))
}

fn oauthclient_lines(c: &OAuthclient, r: &Rendition) -> Option<Vec<String>> {
    let mut lines = vec![format!(
        "OAuthclientOrganisatienaam {}",
        c.oauthclient_organisatienaam
    )];
    if r.version != SchemaVersion::Release2 {
        lines.extend(
            c.gegevensdiensten
                .iter()
                .map(|g| format!("Gegevensdienst {g}")),
        );
    }
    Some(sorted(lines))
}

fn gegevensdienstnaam_lines(g: &Gegevensdienstnaam, _: &Rendition) -> Option<Vec<String>> {
    Some(vec![format!("Weergavenaam {}", g.weergavenaam)])
}

/// Lines compare as a set: their order never makes a change.
fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines.dedup();
    lines
}

/// Every entry of the rendition, keyed by its identifying field, as readable lines.
pub fn entries(reg: &Registry, r: &Rendition) -> BTreeMap<String, Vec<String>> {
    fn all<T>(
        m: &BTreeMap<String, T>,
        r: &Rendition,
        lines: fn(&T, &Rendition) -> Option<Vec<String>>,
    ) -> BTreeMap<String, Vec<String>> {
        m.iter()
            .filter_map(|(k, v)| Some((k.clone(), lines(v, r)?)))
            .collect()
    }
    match r.list {
        ListKind::Zorgaanbiederslijst => all(&reg.zorgaanbieders, r, zorgaanbieder_lines),
        ListKind::OAuthclientlist => all(&reg.oauthclients, r, oauthclient_lines),
        ListKind::Whitelist => reg
            .whitelist
            .iter()
            .map(|h| (h.clone(), Vec::new()))
            .collect(),
        ListKind::Gegevensdienstnamenlijst => {
            all(&reg.gegevensdiensten, r, gegevensdienstnaam_lines)
        }
    }
}

fn gegevensdienst_lines(
    lines: &mut Vec<String>,
    prefix: &str,
    g: &Gegevensdienst,
    abonneren: bool,
) {
    let p = format!("{prefix}Gegevensdienst {}", g.gegevensdienst_id);
    lines.push(format!(
        "{p} AuthorizationEndpointuri {}",
        g.authorization_endpointuri
    ));
    lines.push(format!("{p} TokenEndpointuri {}", g.token_endpointuri));
    if let (true, Some(a)) = (abonneren, &g.abonneren) {
        lines.push(format!(
            "{p} Abonneren MaximaleDuur {} SubscriptionEndpointuri {}",
            a.maximale_duur, a.subscription_endpointuri
        ));
    }
    for s in &g.systeemrollen {
        lines.push(format!(
            "{p} Systeemrol {} ResourceEndpointuri {}",
            s.systeemrolcode, s.resource_endpointuri
        ));
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct EntryDiff {
    /// Keys of every added entry.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Every changed entry: key, lines only in the old entry, lines only in the new entry
    /// (the lines for the first [`SHOWN`] only).
    pub changed: Vec<(String, Vec<String>, Vec<String>)>,
    /// The lines of the first [`SHOWN`] added entries.
    pub added_lines: Vec<(String, Vec<String>)>,
}

impl EntryDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Differences between two sets of entries. An entry counts as changed only when a line
/// (a field with its value) was removed or added, so every change names its fields.
pub fn diff(old: &BTreeMap<String, Vec<String>>, new: &BTreeMap<String, Vec<String>>) -> EntryDiff {
    let lines = |m: &BTreeMap<String, Vec<String>>, k: &String| m.get(k).cloned();
    let mut d = EntryDiff::default();
    merge(old, new, &mut d, |m, k| lines(m, k));
    d
}

/// Walk both maps in key order; compare the data of entries present in both and make lines
/// only where they differ.
fn merge<T: PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    d: &mut EntryDiff,
    lines: impl Fn(&BTreeMap<String, T>, &String) -> Option<Vec<String>>,
) {
    for (k, v) in new {
        match old.get(k) {
            Some(o) if o == v => {}
            Some(_) => {
                let (o, n) = (lines(old, k), lines(new, k));
                match (o, n) {
                    (None, None) => {}
                    (None, Some(n)) => added(d, k, n),
                    (Some(_), None) => d.removed.push(k.clone()),
                    (Some(o), Some(n)) => {
                        let gone: Vec<String> =
                            o.iter().filter(|l| !n.contains(l)).cloned().collect();
                        let came: Vec<String> =
                            n.iter().filter(|l| !o.contains(l)).cloned().collect();
                        if gone.is_empty() && came.is_empty() {
                            continue;
                        }
                        if d.changed.len() < SHOWN {
                            d.changed.push((k.clone(), gone, came));
                        } else {
                            d.changed.push((k.clone(), Vec::new(), Vec::new()));
                        }
                    }
                }
            }
            None => {
                if let Some(n) = lines(new, k) {
                    added(d, k, n);
                }
            }
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) && lines(old, k).is_some() {
            d.removed.push(k.clone());
        }
    }
    d.removed.sort();
    d.added.sort();
}

fn added(d: &mut EntryDiff, k: &str, lines: Vec<String>) {
    if d.added_lines.len() < SHOWN {
        d.added_lines.push((k.to_string(), lines));
    }
    d.added.push(k.to_string());
}

/// Entry-level differences of one rendition between two registries.
pub fn diff_registries(r: &Rendition, old: &Registry, new: &Registry) -> EntryDiff {
    fn keyed<T: PartialEq>(
        old: &BTreeMap<String, T>,
        new: &BTreeMap<String, T>,
        r: &Rendition,
        lines: fn(&T, &Rendition) -> Option<Vec<String>>,
    ) -> EntryDiff {
        let mut d = EntryDiff::default();
        merge(old, new, &mut d, |m, k| m.get(k).and_then(|v| lines(v, r)));
        d
    }
    match r.list {
        ListKind::Zorgaanbiederslijst => keyed(
            &old.zorgaanbieders,
            &new.zorgaanbieders,
            r,
            zorgaanbieder_lines,
        ),
        ListKind::OAuthclientlist => {
            keyed(&old.oauthclients, &new.oauthclients, r, oauthclient_lines)
        }
        ListKind::Gegevensdienstnamenlijst => keyed(
            &old.gegevensdiensten,
            &new.gegevensdiensten,
            r,
            gegevensdienstnaam_lines,
        ),
        ListKind::Whitelist => {
            let mut d = EntryDiff::default();
            for h in new.whitelist.difference(&old.whitelist) {
                added(&mut d, h, Vec::new());
            }
            d.removed = old.whitelist.difference(&new.whitelist).cloned().collect();
            d
        }
    }
}

/// Human-readable diff of one rendition between two registries; empty when equal. Lists
/// the first [`SHOWN`] added and changed entries in full and counts the rest.
pub fn describe(r: &Rendition, old: &Registry, new: &Registry) -> String {
    let d = diff_registries(r, old, new);
    let mut s = String::new();
    if d.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "{r}: {} added, {} removed, {} changed",
        d.added.len(),
        d.removed.len(),
        d.changed.len()
    );
    for (k, lines) in &d.added_lines {
        let _ = writeln!(s, "  + {k}");
        for l in lines {
            let _ = writeln!(s, "      {l}");
        }
    }
    if d.added.len() > d.added_lines.len() {
        let _ = writeln!(s, "  + … and {} more", d.added.len() - d.added_lines.len());
    }
    for k in d.removed.iter().take(SHOWN) {
        let _ = writeln!(s, "  - {k}");
    }
    if d.removed.len() > SHOWN {
        let _ = writeln!(s, "  - … and {} more", d.removed.len() - SHOWN);
    }
    for (k, gone, came) in d.changed.iter().take(SHOWN) {
        let _ = writeln!(s, "  ~ {k}");
        for l in gone {
            let _ = writeln!(s, "      - {l}");
        }
        for l in came {
            let _ = writeln!(s, "      + {l}");
        }
    }
    if d.changed.len() > SHOWN {
        let _ = writeln!(s, "  ~ … and {} more", d.changed.len() - SHOWN);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};

    #[test]
    fn order_is_no_change_and_every_change_names_a_field() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let mut reg = Registry::default();
        for i in 0..3 {
            let host = format!("pgo{i}.voorbeeld.nl");
            reg.oauthclients.insert(
                host.clone(),
                OAuthclient {
                    hostname: host,
                    oauthclient_organisatienaam: format!("PGO {i}"),
                    gegevensdiensten: vec!["1".into(), "4".into()],
                },
            );
        }
        let mut reordered = reg.clone();
        for c in reordered.oauthclients.values_mut() {
            c.gegevensdiensten.reverse();
        }
        for r in cat.renditions() {
            assert!(describe(&r, &reg, &reordered).is_empty(), "{r}");
        }
        let mut changed = reg.clone();
        if let Some(c) = changed.oauthclients.get_mut("pgo1.voorbeeld.nl") {
            c.gegevensdiensten.push("6".into());
        }
        let r3 = cat
            .renditions()
            .into_iter()
            .find(|r| r.list == ListKind::OAuthclientlist && r.version == SchemaVersion::Release3)
            .unwrap();
        let d = diff_registries(&r3, &reg, &changed);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].2, vec!["Gegevensdienst 6".to_string()]);
        // The same from the line maps the history uses.
        assert_eq!(
            diff(&entries(&reg, &r3), &entries(&changed, &r3)).changed,
            d.changed
        );
    }

    #[test]
    fn large_diffs_are_counted_in_full_and_shown_in_part() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| r.list == ListKind::Whitelist)
            .unwrap();
        let mut new = Registry::default();
        for i in 0..1000 {
            new.whitelist.insert(format!("n{i}.voorbeeld.nl"));
        }
        let text = describe(&r, &Registry::default(), &new);
        assert!(
            text.contains("1000 added") && text.contains("and 900 more"),
            "{text}"
        );
        assert!(text.lines().count() < 110);
    }
}
