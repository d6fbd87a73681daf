//! The threads that serve connections: one single-threaded tokio runtime per core. The
//! listener accepts on the main runtime and hands each connection to the worker with the
//! fewest open connections; the connection then stays on that thread, so a request is read,
//! answered and written without waking another thread. Under the work-stealing scheduler
//! those hand-offs cost about a tenth of the plain-HTTP 304 throughput (BENCHMARKS.md,
//! Serving, fifth session). The price: a connection busy with CPU work holds up the others
//! on its thread until it yields, so nothing heavy runs here (bodies are made at
//! publication; historic reads go to the main runtime's blocking pool).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

struct Worker {
    handle: Handle,
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Per-core runtimes; dropped, they stop (connections still on them are closed).
pub struct Workers {
    workers: Vec<Worker>,
}

/// A worker's count of open connections, given back when the connection's task ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn thread_name(i: usize) -> String {
    format!("serve-{i}")
}

impl Workers {
    /// Start `n` (at least one) worker threads.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let (stop, stopped) = oneshot::channel::<()>();
            let (started, handle) = std::sync::mpsc::channel();
            // The runtime is made, run and dropped on its own thread: dropped on an async
            // thread (here, if the spawn failed), a runtime panics.
            let thread = std::thread::Builder::new()
                .name(thread_name(i))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return;
                        }
                    };
                    let _ = started.send(Ok(rt.handle().clone()));
                    // Ends when `stop` is sent or dropped; blocking work is on the main
                    // runtime's pool (see `serve::run`), so nothing is left to wait for.
                    let _ = rt.block_on(stopped);
                    rt.shutdown_background();
                })?;
            let handle = handle
                .recv()
                .map_err(|_| std::io::Error::other("a serving thread ended at start"))??;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Workers { workers })
    }

    /// Run one connection's future on the least busy worker.
    pub fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(w) = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        w.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(w.open.clone());
        w.handle.spawn(async move {
            let _open = open;
            connection.await
        });
    }

    /// Each worker's thread name and count of open connections, shared (for the metrics).
    pub fn counters(&self) -> Vec<(String, Arc<AtomicUsize>)> {
        (0..)
            .map(thread_name)
            .zip(self.workers.iter().map(|w| w.open.clone()))
            .collect()
    }

    /// Open connections per worker, in worker order.
    pub fn open(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.stop.take();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn connections_go_to_the_least_busy_worker_and_are_counted_until_they_end() {
        let w = Workers::start(2).unwrap();
        let (tx1, rx1) = oneshot::channel::<()>();
        let (tx2, rx2) = oneshot::channel::<()>();
        let (tx3, rx3) = oneshot::channel::<()>();
        w.spawn(async move {
            let _ = rx1.await;
        });
        w.spawn(async move {
            let _ = rx2.await;
        });
        assert_eq!(w.open(), vec![1, 1], "one each, not both on the first");
        drop(tx1);
        wait_until("the first connection to end", || w.open() == vec![0, 1]);
        w.spawn(async move {
            let _ = rx3.await;
        });
        assert_eq!(w.open(), vec![1, 1], "the idle worker takes the next one");
        drop((tx2, tx3));
        wait_until("all connections to end", || w.open() == vec![0, 0]);
    }

    #[test]
    fn each_connection_runs_on_its_worker_thread_and_dropping_stops_them() {
        let w = Workers::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Both stay open until both are spawned, so the second goes to the other worker.
        let (go, wait) = tokio::sync::watch::channel(false);
        for _ in 0..2 {
            let tx = tx.clone();
            let mut wait = wait.clone();
            w.spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
                // A timer needs the worker's own runtime (enable_all).
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx.send(std::thread::current().name().map(str::to_string));
            });
        }
        go.send_replace(true);
        let mut names: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![Some("serve-0".to_string()), Some("serve-1".to_string())]
        );
        // A connection that never ends must not keep the drop (and the process) waiting.
        w.spawn(std::future::pending());
        let (dropped, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(w);
            let _ = dropped.send(());
        });
        done.recv_timeout(Duration::from_secs(5))
            .expect("dropping the workers stops them");
    }
}
