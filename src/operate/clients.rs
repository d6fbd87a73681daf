//! `status --clients [--json]`: per client, the releases it used in the last 24 hours and
//! 30 days and the Volgnummer it last received per list; clients that have not fetched a
//! list within 900 s, or that still hold an older Volgnummer, are flagged. What an operator
//! checks before withdrawing a release: who still uses it.

use super::Ctx;
use crate::registry::model::ListKind;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// MedMij nodes fetch every list at least every 900 s.
pub const FETCH_INTERVAL: i64 = 900;
const DAY: i64 = 86_400;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Clients {
    pub json: bool,
}

#[derive(Serialize, Debug)]
struct ListState {
    volgnummer: u64,
    current_volgnummer: Option<u64>,
    release: String,
    at: String,
    /// Not fetched within 900 s.
    late: bool,
    /// Holds an older Volgnummer than is served.
    outdated: bool,
}

#[derive(Serialize, Debug)]
struct ClientReport {
    client: String,
    last_seen: String,
    releases_24h: Vec<String>,
    releases_30d: Vec<String>,
    lists: BTreeMap<String, ListState>,
    flags: Vec<String>,
}

/// How a release was used by anyone, kept even when its clients were not.
#[derive(Serialize, Debug)]
struct ReleaseReport {
    first_used: String,
    last_used: String,
    /// By a client known by its certificate; `None`: never.
    last_used_identified: Option<String>,
    requests: u64,
}

#[derive(Serialize, Debug)]
struct Report {
    at: String,
    /// Per release, the clients that used it in the last 30 days.
    releases: BTreeMap<String, Vec<String>>,
    /// Per release, its use in all (never evicted).
    release_use: BTreeMap<String, ReleaseReport>,
    clients: Vec<ClientReport>,
}

fn stamp(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(crate::registry::model::tijdstempel)
        .unwrap_or_else(|_| t.to_string())
}

impl Clients {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let current: BTreeMap<ListKind, u64> = ctx
            .store
            .published()?
            .map(|p| p.lists.iter().map(|(l, v)| (*l, v.volgnummer)).collect())
            .unwrap_or_default();
        let mut clients: Vec<(String, crate::serve::client_records::ClientUse)> =
            crate::serve::client_records::load(ctx.store)?
                .into_iter()
                .collect();
        clients.sort_by_key(|(k, c)| (std::cmp::Reverse(c.last_seen()), k.clone()));
        let mut releases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut reports = Vec::new();
        for (id, c) in clients {
            let within = |secs: i64| -> Vec<String> {
                c.releases
                    .iter()
                    .filter(|(_, t)| now - **t <= secs)
                    .map(|(r, _)| r.clone())
                    .collect()
            };
            let releases_30d = within(30 * DAY);
            for r in &releases_30d {
                releases.entry(r.clone()).or_default().push(id.clone());
            }
            let mut flags = Vec::new();
            let mut lists = BTreeMap::new();
            for l in ListKind::ALL {
                let Some(f) = c.lists.get(&l) else {
                    flags.push(format!("never fetched {}", l.key()));
                    continue;
                };
                let cur = current.get(&l).copied();
                let late = now - f.at > FETCH_INTERVAL;
                let outdated = cur.is_some_and(|v| f.volgnummer < v);
                if late {
                    flags.push(format!("{} not fetched within {FETCH_INTERVAL} s", l.key()));
                }
                if outdated {
                    flags.push(format!("{} at Volgnummer {}", l.key(), f.volgnummer));
                }
                lists.insert(
                    l.key().to_string(),
                    ListState {
                        volgnummer: f.volgnummer,
                        current_volgnummer: cur,
                        release: f.release.clone(),
                        at: stamp(f.at),
                        late,
                        outdated,
                    },
                );
            }
            reports.push(ClientReport {
                client: id,
                last_seen: stamp(c.last_seen()),
                releases_24h: within(DAY),
                releases_30d,
                lists,
                flags,
            });
        }
        let release_use = crate::serve::client_records::load_releases(ctx.store)?
            .into_iter()
            .map(|(r, u)| {
                let report = ReleaseReport {
                    first_used: stamp(u.first_used),
                    last_used: stamp(u.last_used),
                    last_used_identified: (u.last_used_identified > 0)
                        .then(|| stamp(u.last_used_identified)),
                    requests: u.requests,
                };
                (r, report)
            })
            .collect();
        let report = Report {
            at: stamp(now),
            releases,
            release_use,
            clients: reports,
        };
        if self.json {
            return Ok(format!(
                "{}\n",
                crate::terminal::json(serde_json::to_string_pretty(&report)?)
            ));
        }
        let mut out = String::new();
        writeln!(
            out,
            "clients as of {} ({} known)",
            report.at,
            report.clients.len()
        )?;
        let mut ids: Vec<&String> = report.releases.keys().collect();
        ids.extend(report.release_use.keys());
        ids.sort();
        ids.dedup();
        for r in ids {
            let n = report.releases.get(r).map(Vec::len).unwrap_or(0);
            write!(out, "release {r}: {n} client(s) in the last 30 days")?;
            if let Some(u) = report.release_use.get(r) {
                write!(
                    out,
                    "; {} request(s) in all, last {}, last with a certificate {}",
                    u.requests,
                    u.last_used,
                    u.last_used_identified.as_deref().unwrap_or("never")
                )?;
            }
            writeln!(out)?;
        }
        for c in &report.clients {
            writeln!(
                out,
                "{}  last seen {}  releases 24h [{}]  30d [{}]",
                // A certificate's organisation is the client's to choose.
                crate::terminal::escape(&c.client),
                c.last_seen,
                c.releases_24h.join(", "),
                c.releases_30d.join(", ")
            )?;
            for (l, s) in &c.lists {
                writeln!(
                    out,
                    "    {l:<26} Volgnummer {:>6} (release {}) at {}{}{}",
                    s.volgnummer,
                    s.release,
                    s.at,
                    if s.late { "  LATE" } else { "" },
                    if s.outdated { "  OUTDATED" } else { "" }
                )?;
            }
            if !c.flags.is_empty() {
                writeln!(out, "    flagged: {}", c.flags.join("; "))?;
            }
        }
        Ok(out)
    }
}
