//! Entry-level differences between two registries as one rendition shows them: what a
//! consumer of that list and schema version would see added, removed or changed.

use crate::catalogue::Rendition;
use crate::import::{self, Release2Mapping};
use crate::model::{Aanbiedertype, Gegevensdienst, ListKind, Registry};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Every entry of the rendition, keyed by its identifying field, as readable lines.
pub fn entries(reg: &Registry, r: &Rendition) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    match r.list {
        ListKind::Zorgaanbiederslijst => {
            for z in reg.zorgaanbieders.values() {
                let mut lines = Vec::new();
                match &r.interfaceversie {
                    Some(iv) => {
                        let Some(i) = z.interfaceversie(iv) else {
                            continue;
                        };
                        for g in &i.gegevensdiensten {
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
                lines.sort();
                lines.dedup();
                out.insert(z.zorgaanbiedernaam.clone(), lines);
            }
        }
        ListKind::OAuthclientlist => {
            for c in reg.oauthclients.values() {
                let mut lines = vec![format!(
                    "OAuthclientOrganisatienaam {}",
                    c.oauthclient_organisatienaam
                )];
                if r.version != "release2" {
                    lines.extend(
                        c.gegevensdiensten
                            .iter()
                            .map(|g| format!("Gegevensdienst {g}")),
                    );
                }
                lines.sort();
                lines.dedup();
                out.insert(c.hostname.clone(), lines);
            }
        }
        ListKind::Whitelist => {
            for h in &reg.whitelist {
                out.insert(h.clone(), Vec::new());
            }
        }
        ListKind::Gegevensdienstnamenlijst => {
            for g in reg.gegevensdiensten.values() {
                out.insert(
                    g.gegevensdienst_id.clone(),
                    vec![format!("Weergavenaam {}", g.weergavenaam)],
                );
            }
        }
    }
    out
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
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// key, lines only in the old entry, lines only in the new entry
    pub changed: Vec<(String, Vec<String>, Vec<String>)>,
}

impl EntryDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Differences between two sets of entries. An entry counts as changed only when a line
/// (a field with its value) was removed or added, so every change names its fields; the
/// order of lines never matters.
pub fn diff(old: &BTreeMap<String, Vec<String>>, new: &BTreeMap<String, Vec<String>>) -> EntryDiff {
    let mut d = EntryDiff::default();
    for (k, v) in new {
        match old.get(k) {
            None => d.added.push(k.clone()),
            Some(o) => {
                let gone: Vec<String> = o.iter().filter(|l| !v.contains(l)).cloned().collect();
                let came: Vec<String> = v.iter().filter(|l| !o.contains(l)).cloned().collect();
                if !gone.is_empty() || !came.is_empty() {
                    d.changed.push((k.clone(), gone, came));
                }
            }
        }
    }
    d.removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    d
}

/// Human-readable diff of one rendition between two registries; empty when equal.
pub fn describe(r: &Rendition, old: &Registry, new: &Registry) -> String {
    let (o, n) = (entries(old, r), entries(new, r));
    let d = diff(&o, &n);
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
    for k in &d.added {
        let _ = writeln!(s, "  + {k}");
        for l in &n[k] {
            let _ = writeln!(s, "      {l}");
        }
    }
    for k in &d.removed {
        let _ = writeln!(s, "  - {k}");
    }
    for (k, gone, came) in &d.changed {
        let _ = writeln!(s, "  ~ {k}");
        for l in gone {
            let _ = writeln!(s, "      - {l}");
        }
        for l in came {
            let _ = writeln!(s, "      + {l}");
        }
    }
    s
}

/// Read a published document back into a registry holding just that list's content.
pub fn registry_of_document(bytes: &[u8], r: &Rendition) -> Result<Registry, import::ImportError> {
    let mut reg = Registry::default();
    let l = import::read_list(bytes)?;
    import::apply(
        &mut reg,
        l,
        &Release2Mapping {
            interfaceversie: r.interfaceversie.clone().unwrap_or_else(|| "0.0.0".into()),
            aanbiedertype: Aanbiedertype::ZA,
        },
    );
    reg.canonicalize();
    Ok(reg)
}
