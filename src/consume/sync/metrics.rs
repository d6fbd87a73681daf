//! `sync --interval … --metrics-listen ADDR`: the consumer's own Prometheus metrics at
//! `http://ADDR/metrics` (prometheus-client): the last successful sync, the Volgnummer held
//! per list, how stale that is, refusals by reason, bytes fetched.

use super::{Failure, Synced};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListLabel {
    list: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    last_success: Gauge,
    staleness: Gauge,
    volgnummer: Family<ListLabel, Gauge>,
    refusals: Family<ReasonLabel, Counter>,
    unavailable: Counter,
    fetched: Counter,
    last: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = <Registry>::with_prefix("stelselnode_sync");
        let last_success = Gauge::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful sync",
            last_success.clone(),
        );
        let staleness = Gauge::default();
        registry.register(
            "staleness_seconds",
            "Seconds since the last successful sync",
            staleness.clone(),
        );
        let volgnummer = Family::<ListLabel, Gauge>::default();
        registry.register("volgnummer", "Volgnummer held, by list", volgnummer.clone());
        let refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "refusals",
            "Updates refused, by reason (rollback, equivocation, expired, key, hash, oversize, redirect, tls, invalid)",
            refusals.clone(),
        );
        let unavailable = Counter::default();
        registry.register(
            "unavailable",
            "Syncs that found the server unavailable",
            unavailable.clone(),
        );
        let fetched = Counter::default();
        registry.register("fetched_bytes", "Body bytes fetched", fetched.clone());
        Metrics {
            registry,
            last_success,
            staleness,
            volgnummer,
            refusals,
            unavailable,
            fetched,
            last: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// What one sync did; the Volgnummers are read back from the directory's state.
    pub fn record(&self, out: &std::path::Path, r: &Result<Synced, Failure>, fetched: u64) {
        self.fetched.inc_by(fetched);
        match r {
            Ok(_) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                self.last.store(now, Ordering::Relaxed);
                self.last_success.set(now);
            }
            Err(Failure::Refused { reason, .. }) => {
                self.refusals
                    .get_or_create(&ReasonLabel {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Err(Failure::Unavailable { .. }) => {
                self.unavailable.inc();
            }
            Err(Failure::Local(_)) => {}
        }
        if let Ok(Some(s)) = super::state::load(out) {
            for l in crate::registry::model::ListKind::ALL {
                if let Some(h) = s.lists.get(l.key()) {
                    self.volgnummer
                        .get_or_create(&ListLabel { list: l.key() })
                        .set(i64::try_from(h.volgnummer).unwrap_or(i64::MAX));
                }
            }
        }
    }

    pub fn encode(&self) -> String {
        let last = self.last.load(Ordering::Relaxed);
        if last > 0 {
            self.staleness
                .set(time::OffsetDateTime::now_utc().unix_timestamp() - last);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# EOF\n".into();
        }
        out
    }
}

/// Serve `GET /metrics` on `listener` from a thread of its own.
pub fn serve(
    listener: std::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    listener.set_nonblocking(false)?;
    std::thread::Builder::new()
        .name("sync-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut line = String::new();
                let mut r = BufReader::new(match s.try_clone() {
                    Ok(c) => c,
                    Err(_) => continue,
                });
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                // Read (and ignore) the rest of the request head.
                let mut h = String::new();
                while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let (status, ct, body) = if line.starts_with("GET /metrics ") {
                    (
                        "200 OK",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        metrics.encode(),
                    )
                } else {
                    ("404 Not Found", "text/plain", "GET /metrics only\n".to_string())
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(())
}
