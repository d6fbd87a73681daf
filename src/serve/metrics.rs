//! `GET /metrics` on a separate loopback listener: Prometheus/OpenMetrics text made by the
//! prometheus-client crate. Requests by list × release × status (the 304 share is the
//! status="304" series), bytes sent, publications and their duration, the Volgnummer per
//! list, seconds since the last publication, seconds until the signing and TLS
//! certificates expire, distinct clients per release in the current hour, connections
//! open per serving thread.

use super::set::PublishedSet;
use crate::registry::model::ListKind;
use http::HeaderValue;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// The labels of what is counted per request are made without allocating: lists are
// `&'static str`, releases the `medmij-release` value the published set made once.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub list: &'static str,
    pub release: Label,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabel {
    pub list: &'static str,
}

/// A release label: the answer's `medmij-release` header value (shared bytes, made once
/// per published set), "-" for an answer without one.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(HeaderValue);

impl Label {
    fn of(release: Option<&HeaderValue>) -> Label {
        Label(release.cloned().unwrap_or(HeaderValue::from_static("-")))
    }

    fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("?")
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReleaseLabel {
    pub release: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabel {
    pub fingerprint: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyStepLabel {
    pub fingerprint: String,
    pub step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabel {
    pub certificate: String,
}

/// Distinct clients per release within one hour: a fixed-size estimate per release (the
/// releases are those of the published set), whatever the number of clients.
#[derive(Default)]
struct Distinct {
    hour: i64,
    clients: HashMap<Label, super::distinct::Estimate>,
    hasher: std::collections::hash_map::RandomState,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes: Family<ListLabel, Counter>,
    publications: Counter,
    publication_seconds: Histogram,
    volgnummer: Family<ListLabel, Gauge>,
    since_publication: Gauge,
    expiry: Family<CertificateLabel, Gauge>,
    clients: Family<ReleaseLabel, Gauge>,
    connections: Family<WorkerLabel, Gauge>,
    send_timeouts: Counter,
    access_log_dropped: Counter,
    signing_key: Family<KeyLabel, Gauge>,
    signing_key_expiry: Family<KeyLabel, Gauge>,
    signing_key_next_step: Family<KeyStepLabel, Gauge>,
    signing_key_warning: Gauge,
    /// The keyring as last read (see `signing_keys`), and whether it warns of expiry.
    keys: Mutex<(Vec<crate::sign::keyring::KeyStatus>, bool)>,
    /// Each serving thread's name and count of open connections (see `serve::workers`).
    open: Mutex<Vec<(String, Arc<AtomicUsize>)>>,
    last_publication: AtomicI64,
    distinct: Mutex<Distinct>,
    tls: Option<Arc<super::tls::Reloadable>>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Metrics {
    pub fn new(tls: Option<Arc<super::tls::Reloadable>>) -> Metrics {
        let mut registry = <Registry>::with_prefix("stelselnode");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by list, release and HTTP status",
            requests.clone(),
        );
        let bytes = Family::<ListLabel, Counter>::default();
        registry.register("response_bytes", "Body bytes sent, by list", bytes.clone());
        let publications = Counter::default();
        registry.register(
            "publications",
            "Publications committed",
            publications.clone(),
        );
        let publication_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "publication_duration_seconds",
            "Duration of publications, snapshot to commit",
            publication_seconds.clone(),
        );
        let volgnummer = Family::<ListLabel, Gauge>::default();
        registry.register(
            "volgnummer",
            "Volgnummer served, by list",
            volgnummer.clone(),
        );
        let since_publication = Gauge::default();
        registry.register(
            "seconds_since_last_publication",
            "Seconds since the newest Tijdstempel of the served lists",
            since_publication.clone(),
        );
        let expiry = Family::<CertificateLabel, Gauge>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until the certificate expires (signing, tls)",
            expiry.clone(),
        );
        let clients = Family::<ReleaseLabel, Gauge>::default();
        registry.register(
            "clients",
            "Distinct clients (certificate serial, else address) per release this hour, estimated in fixed memory (HyperLogLog, about 1.6 % error)",
            clients.clone(),
        );
        let connections = Family::<WorkerLabel, Gauge>::default();
        registry.register(
            "connections_open",
            "Connections open, by the thread serving them",
            connections.clone(),
        );
        let send_timeouts = Counter::default();
        registry.register(
            "send_timeouts",
            "Connections closed because the client read nothing for the send timeout",
            send_timeouts.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the log's writer could not keep up",
            access_log_dropped.clone(),
        );
        let signing_key = Family::<KeyLabel, Gauge>::default();
        registry.register(
            "signing_key",
            "The signing keys, by fingerprint and state (next, active, outgoing, retired): 1",
            signing_key.clone(),
        );
        let signing_key_expiry = Family::<KeyLabel, Gauge>::default();
        registry.register(
            "signing_key_expiry_seconds",
            "Seconds until each signing key's certificate expires",
            signing_key_expiry.clone(),
        );
        let signing_key_next_step = Family::<KeyStepLabel, Gauge>::default();
        registry.register(
            "signing_key_next_step_seconds",
            "Seconds until a key's next rollover step (activate, retire) is allowed; 0 or less: allowed now",
            signing_key_next_step.clone(),
        );
        let signing_key_warning = Gauge::default();
        registry.register(
            "signing_key_expiry_warning",
            "1 when the active signing certificate expires within 60 days: announce the next key",
            signing_key_warning.clone(),
        );
        Metrics {
            signing_key,
            signing_key_expiry,
            signing_key_next_step,
            signing_key_warning,
            keys: Mutex::default(),
            registry,
            send_timeouts,
            access_log_dropped,
            requests,
            bytes,
            publications,
            publication_seconds,
            volgnummer,
            since_publication,
            expiry,
            clients,
            connections,
            open: Mutex::new(Vec::new()),
            last_publication: AtomicI64::new(0),
            distinct: Mutex::new(Distinct::default()),
            tls,
        }
    }

    /// One answered request, by `client` (its certificate or address, made once per
    /// connection).
    pub fn request(
        &self,
        list: Option<ListKind>,
        release: Option<&HeaderValue>,
        status: u16,
        bytes: u64,
        client: &Arc<str>,
    ) {
        let list = list.map(|l| l.key()).unwrap_or("-");
        let release = Label::of(release);
        self.requests
            .get_or_create(&RequestLabels {
                list,
                release: release.clone(),
                status,
            })
            .inc();
        self.bytes.get_or_create(&ListLabel { list }).inc_by(bytes);
        if release.as_str() != "-" && status < 400 {
            let hour = now() / 3600;
            let mut d = self.distinct.lock().unwrap_or_else(|p| p.into_inner());
            if d.hour != hour {
                d.hour = hour;
                d.clients.clear();
            }
            let d = &mut *d;
            d.clients
                .entry(release)
                .or_default()
                .add(&d.hasher, &**client);
        }
    }

    /// Report these counts of open connections, one per serving thread, from now on.
    pub fn count_connections(&self, open: Vec<(String, Arc<AtomicUsize>)>) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = open;
    }

    /// One connection closed by the send timeout (`serve::send_timeout`).
    pub fn send_timeout(&self) {
        self.send_timeouts.inc();
    }

    /// The counter the access log counts its dropped lines in.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
    }

    /// The keyring as it is now (read by the publisher after every publication and when
    /// heads are signed again).
    pub fn signing_keys(&self, keys: Vec<crate::sign::keyring::KeyStatus>, warning: bool) {
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = (keys, warning);
    }

    fn encode_keys(&self, t: i64) {
        let (keys, warning) = &*self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // A key changes state: its old series must go.
        self.signing_key.clear();
        self.signing_key_expiry.clear();
        self.signing_key_next_step.clear();
        for k in keys {
            let label = KeyLabel {
                fingerprint: k.fingerprint.clone(),
                state: k.state.as_str(),
            };
            self.signing_key.get_or_create(&label).set(1);
            self.signing_key_expiry
                .get_or_create(&label)
                .set(k.not_after.unix_timestamp() - t);
            if let Some((step, at)) = k.next_step {
                self.signing_key_next_step
                    .get_or_create(&KeyStepLabel {
                        fingerprint: k.fingerprint.clone(),
                        step,
                    })
                    .set(at.unix_timestamp() - t);
            }
        }
        self.signing_key_warning.set(i64::from(*warning));
    }

    /// One committed publication that took `seconds`.
    pub fn publication(&self, seconds: f64) {
        self.publications.inc();
        self.publication_seconds.observe(seconds);
        self.last_publication.store(now(), Ordering::Relaxed);
    }

    /// The text exposition, with the gauges read from the served set now.
    pub fn encode(&self, set: Option<&PublishedSet>) -> String {
        let t = now();
        if let Some(s) = set {
            let mut newest = 0;
            for (l, v) in &s.index.lists {
                self.volgnummer
                    .get_or_create(&ListLabel { list: l.key() })
                    .set(i64::try_from(v.volgnummer).unwrap_or(i64::MAX));
                if let Ok(ts) = time::OffsetDateTime::parse(
                    &v.tijdstempel,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    newest = newest.max(ts.unix_timestamp());
                }
            }
            newest = newest.max(self.last_publication.load(Ordering::Relaxed));
            self.since_publication.set(t - newest);
            let signing = crate::sign::cert_der_from_pem(&String::from_utf8_lossy(&s.certificate))
                .ok()
                .and_then(|der| {
                    x509_parser::parse_x509_certificate(&der)
                        .ok()
                        .map(|(_, c)| c.validity().not_after.timestamp())
                });
            if let Some(na) = signing {
                self.expiry
                    .get_or_create(&CertificateLabel {
                        certificate: "signing".into(),
                    })
                    .set(na - t);
            }
        }
        self.encode_keys(t);
        if let Some(na) = self.tls.as_ref().and_then(|t| t.certificate_not_after()) {
            self.expiry
                .get_or_create(&CertificateLabel {
                    certificate: "tls".into(),
                })
                .set(na - t);
        }
        {
            let d = self.distinct.lock().unwrap_or_else(|p| p.into_inner());
            for (release, c) in &d.clients {
                self.clients
                    .get_or_create(&ReleaseLabel {
                        release: release.as_str().to_string(),
                    })
                    .set(i64::try_from(c.count()).unwrap_or(i64::MAX));
            }
        }
        for (worker, n) in self.open.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            self.connections
                .get_or_create(&WorkerLabel {
                    worker: worker.clone(),
                })
                .set(i64::try_from(n.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# EOF\n".into();
        }
        out
    }
}

impl super::send_timeout::OnTimeout for Metrics {
    fn send_timed_out(&self) {
        self.send_timeout();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_list_release_and_status_and_clients_once_an_hour() {
        let m = Metrics::new(None);
        let (a, b): (Arc<str>, Arc<str>) = ("10.0.0.1".into(), "10.0.0.2".into());
        let (r2, r1) = (
            HeaderValue::from_static("1.1.2"),
            HeaderValue::from_static("1.1.1"),
        );
        for _ in 0..3 {
            m.request(Some(ListKind::Whitelist), Some(&r2), 200, 10, &a);
        }
        m.request(Some(ListKind::Whitelist), Some(&r2), 304, 0, &b);
        m.request(Some(ListKind::Whitelist), Some(&r1), 304, 0, &b);
        m.request(None, None, 404, 5, &a);
        m.access_log_dropped().inc_by(7);
        let text = m.encode(None);
        for line in [
            r#"stelselnode_requests_total{list="whitelist",release="1.1.2",status="200"} 3"#,
            r#"stelselnode_requests_total{list="whitelist",release="1.1.2",status="304"} 1"#,
            r#"stelselnode_requests_total{list="whitelist",release="1.1.1",status="304"} 1"#,
            r#"stelselnode_requests_total{list="-",release="-",status="404"} 1"#,
            r#"stelselnode_response_bytes_total{list="whitelist"} 30"#,
            r#"stelselnode_response_bytes_total{list="-"} 5"#,
            r#"stelselnode_clients{release="1.1.2"} 2"#,
            r#"stelselnode_clients{release="1.1.1"} 1"#,
            "stelselnode_access_log_dropped_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(!text.contains(r#"stelselnode_clients{release="-"}"#));
    }

    #[test]
    fn open_connections_are_read_per_thread_when_scraped() {
        let m = Metrics::new(None);
        assert!(!m.encode(None).contains("connections_open{"));
        let open: Vec<Arc<AtomicUsize>> = vec![Arc::new(2.into()), Arc::new(0.into())];
        let names = ["serve-0", "serve-1"].map(String::from);
        m.count_connections(names.into_iter().zip(open.iter().cloned()).collect());
        let text = m.encode(None);
        assert!(
            text.contains(r#"stelselnode_connections_open{worker="serve-0"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"stelselnode_connections_open{worker="serve-1"} 0"#),
            "{text}"
        );
        open[0].store(1, Ordering::Relaxed);
        assert!(m
            .encode(None)
            .contains(r#"stelselnode_connections_open{worker="serve-0"} 1"#));
    }
}
