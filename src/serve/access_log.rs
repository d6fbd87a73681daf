//! The access log, off the request path: a serving thread hands a compact record to a
//! bounded queue and goes on; one thread formats the records and writes them in batches
//! (flushed whenever the queue runs dry, so within tens of milliseconds, and on
//! shutdown). A full queue drops the record and counts it: logging never makes a client
//! wait.
//!
//! The line is the one `tracing`'s formatter wrote before (timestamp, `INFO`, target
//! `stelselnode::access`, the same fields in the same order), one line per request;
//! whether it is written at all still follows `RUST_LOG` for that target.

use super::tls::ClientIdentity;
use crate::registry::model::ListKind;
use prometheus_client::metrics::counter::Counter;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Records queued at most; beyond, they are dropped and counted (a few MB at most).
pub const QUEUE: usize = 16_384;

/// One request, as the access log line shows it.
pub struct Record {
    pub at: SystemTime,
    pub peer: SocketAddr,
    pub client: Option<Arc<ClientIdentity>>,
    pub request: Request,
    pub list: Option<ListKind>,
    pub release: Option<http::HeaderValue>,
    pub volgnummer: Option<u64>,
    pub status: u16,
    pub bytes: u64,
    /// Microseconds from the request's arrival to its answer.
    pub micros: u64,
}

/// The request a line is about.
pub enum Request {
    /// Read and answered: its method and target (only the path is written).
    Read {
        method: http::Method,
        uri: http::Uri,
    },
    /// Refused by hyper before it was read, and why (no method or path then).
    Rejected(String),
}

// Nearly every message is a line: boxing it would cost an allocation per request to save
// slot space for the rare others.
#[allow(clippy::large_enum_variant)]
enum Message {
    Line(Record),
    /// Write everything queued before, flush, and answer.
    Flush(SyncSender<()>),
    /// Write everything queued before, flush, and end.
    Stop,
}

/// The sending side, shared by every serving thread.
pub struct AccessLog {
    tx: SyncSender<Message>,
    dropped: Counter,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The writer sleeps this long when the queue is empty instead of waiting on it, so a
/// serving thread's send never has to wake it (a futex call per request).
const NAP: Duration = Duration::from_millis(20);

impl AccessLog {
    /// Start the writer thread, writing to `out` (stderr when serving); records dropped
    /// are counted in `dropped` (the metric `stelselnode_access_log_dropped_total`).
    pub fn start(
        out: Box<dyn Write + Send>,
        queue: usize,
        dropped: Counter,
    ) -> std::io::Result<Arc<AccessLog>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(queue);
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(Arc::new(AccessLog {
            tx,
            dropped,
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// Whether the access log is wanted (`RUST_LOG` for `stelselnode::access`).
    pub fn enabled() -> bool {
        tracing::enabled!(target: "stelselnode::access", tracing::Level::INFO)
    }

    /// Queue one record; dropped (and counted) when the queue is full or the log closed.
    pub fn log(&self, r: Record) {
        if self.tx.try_send(Message::Line(r)).is_err() {
            self.dropped.inc();
        }
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Wait until everything queued so far is written and flushed.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Write what is queued, flush, and stop the writer (at shutdown); later records are
    /// dropped.
    pub fn close(&self) {
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = self.tx.send(Message::Stop);
            let _ = w.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: drains the queue, writes in batches, flushes whenever the queue is
/// empty (so at least every `NAP`), then naps.
fn write_lines(rx: Receiver<Message>, out: Box<dyn Write + Send>) {
    // Batches of whole lines (as nginx's `buffer=64k`). Each goes out in one `write_all`
    // under stderr's lock, which the other log lines take too, so none lands inside one.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    let mut line = String::with_capacity(512);
    let mut clock = Clock::default();
    loop {
        match rx.try_recv() {
            Ok(Message::Line(r)) => {
                line.clear();
                format_line(&r, &mut clock, &mut line);
                // A log that cannot be written is not a reason to stop serving.
                let _ = out.write_all(line.as_bytes());
            }
            Ok(Message::Flush(done)) => {
                let _ = out.flush();
                let _ = done.send(());
            }
            Ok(Message::Stop) | Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let _ = out.flush();
                std::thread::sleep(NAP);
            }
        }
    }
    let _ = out.flush();
}

/// The date and time to the second, made once a second (the writer's cache).
#[derive(Default)]
pub struct Clock {
    second: i64,
    text: String,
}

impl Clock {
    /// `YYYY-MM-DDTHH:MM:SS` of `at` (UTC), and its microseconds.
    fn stamp(&mut self, at: SystemTime) -> (&str, u32) {
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let second = i64::try_from(since.as_secs()).unwrap_or(0);
        if self.text.is_empty() || second != self.second {
            use std::fmt::Write as _;
            let t = time::OffsetDateTime::from_unix_timestamp(second)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            self.text.clear();
            let _ = write!(
                self.text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            self.second = second;
        }
        (&self.text, since.subsec_micros())
    }
}

/// `v` quoted as `Debug` quotes it; without copying char by char when nothing in it needs
/// escaping (the usual path, list name, release).
fn quoted(s: &mut String, v: &str) {
    use std::fmt::Write as _;
    if v.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        s.push('"');
        s.push_str(v);
        s.push('"');
    } else {
        let _ = write!(s, "{v:?}");
    }
}

/// The line, as `tracing`'s default formatter writes it: strings quoted and escaped
/// (`Debug`), so a peer's bytes never start a line of their own.
pub fn format_line(r: &Record, clock: &mut Clock, s: &mut String) {
    use std::fmt::Write as _;
    let (date, micros) = clock.stamp(r.at);
    s.push_str(date);
    let _ = write!(
        s,
        ".{micros:06}Z  INFO stelselnode::access: client={}",
        r.peer
    );
    let (org, serial) = r
        .client
        .as_deref()
        .map(|c| (c.organisation.as_str(), c.serial.as_str()))
        .unwrap_or(("-", "-"));
    let (method, path) = match &r.request {
        Request::Read { method, uri } => (method.as_str(), uri.path()),
        Request::Rejected(_) => ("-", "-"),
    };
    let release = r
        .release
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    s.push_str(" cert_o=");
    quoted(s, org);
    s.push_str(" cert_serial=");
    quoted(s, serial);
    s.push_str(" method=");
    s.push_str(method);
    s.push_str(" path=");
    quoted(s, path);
    s.push_str(" list=");
    quoted(s, r.list.map(|l| l.key()).unwrap_or("-"));
    s.push_str(" release=");
    quoted(s, release);
    match r.volgnummer {
        Some(v) => {
            let _ = write!(s, " volgnummer=\"{v}\"");
        }
        None => s.push_str(" volgnummer=\"-\""),
    }
    let _ = write!(
        s,
        " status={} bytes={} ms={}.{:03}",
        r.status,
        r.bytes,
        r.micros / 1000,
        r.micros % 1000
    );
    if let Request::Rejected(e) = &r.request {
        let _ = write!(s, " rejected={}", crate::terminal::escape(e));
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str) -> Record {
        Record {
            at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_648_662_791_815),
            peer: "127.0.0.1:55892".parse().unwrap(),
            client: None,
            request: Request::Read {
                method: http::Method::GET,
                uri: path.parse().unwrap(),
            },
            list: Some(ListKind::Whitelist),
            release: Some(http::HeaderValue::from_static("1.1.2")),
            volgnummer: Some(1),
            status: 200,
            bytes: 1271,
            micros: 141,
        }
    }

    #[test]
    fn the_line_is_the_one_tracing_wrote() {
        let mut s = String::new();
        format_line(
            &record("/MedMij_Whitelist.xml?release=1.1.2"),
            &mut Clock::default(),
            &mut s,
        );
        assert_eq!(
            s,
            "2026-12-07T13:04:22.791815Z  INFO stelselnode::access: client=127.0.0.1:55892 \
             cert_o=\"-\" cert_serial=\"-\" method=GET path=\"/MedMij_Whitelist.xml\" \
             list=\"whitelist\" release=\"1.1.2\" volgnummer=\"1\" status=200 bytes=1271 \
             ms=0.141\n"
        );
    }

    #[test]
    fn the_clock_turns_over_each_second() {
        let mut c = Clock::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_648_662_999_999);
        assert_eq!(c.stamp(t), ("2026-12-07T13:04:22", 999_999));
        let t = t + Duration::from_micros(1);
        assert_eq!(c.stamp(t), ("2026-12-07T13:04:23", 0));
    }

    #[test]
    fn peer_bytes_stay_on_one_line() {
        let mut r = record("/x");
        r.client = Some(Arc::new(ClientIdentity {
            organisation: "Evil\nFAKE 127.0.0.9\u{1b}[2J".into(),
            serial: "01".into(),
            subject: "O=Evil".into(),
        }));
        r.request = Request::Rejected("bad\nthing".into());
        let mut s = String::new();
        format_line(&r, &mut Clock::default(), &mut s);
        assert_eq!(s.matches('\n').count(), 1, "{s}");
        assert!(!s.contains('\u{1b}'), "{s}");
    }

    /// A sink that takes `hold` before every write: the test blocks the writer with it.
    struct Held(Arc<Mutex<Vec<u8>>>, Arc<Mutex<()>>);
    impl Write for Held {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _g = self.1.lock().unwrap();
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log writing to a buffer the test reads.
    fn started(queue: usize) -> (Arc<Mutex<Vec<u8>>>, Arc<AccessLog>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Box::new(Held(out.clone(), Default::default()));
        let log = AccessLog::start(sink, queue, Counter::default()).unwrap();
        (out, log)
    }

    #[test]
    fn every_record_is_one_line_and_close_flushes_them() {
        let (out, log) = started(64);
        for i in 0..50 {
            log.log(record(&format!("/p{i}")));
        }
        log.close();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 50);
        assert_eq!(log.dropped(), 0);
        log.log(record("/after"));
        assert_eq!(
            log.dropped(),
            1,
            "a record after close is dropped and counted"
        );
    }

    #[test]
    fn a_sink_that_cannot_keep_up_drops_and_counts_instead_of_blocking() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let hold = Arc::new(Mutex::new(()));
        let log = AccessLog::start(
            Box::new(Held(out.clone(), hold.clone())),
            8,
            Counter::default(),
        )
        .unwrap();
        let stuck = hold.lock().unwrap();
        // The writer blocks in its first `write`; the queue fills behind it.
        let started = std::time::Instant::now();
        for i in 0..2_000 {
            log.log(record(&format!("/p{i}")));
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "logging blocked"
        );
        assert!(log.dropped() > 0, "nothing dropped");
        drop(stuck);
        log.flush();
        let lines = String::from_utf8(out.lock().unwrap().clone())
            .unwrap()
            .lines()
            .count() as u64;
        assert_eq!(lines + log.dropped(), 2_000);
    }

    #[test]
    fn records_are_flushed_within_a_second_without_close() {
        let (out, log) = started(64);
        log.log(record("/one"));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while out.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not flushed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
