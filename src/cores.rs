//! Work spread over every core: the one worker pool that rendering, validating and
//! compressing large lists share.

/// The number of cores to spread work over.
pub fn count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// `f(i, item)` for every item, on up to one thread per core, each taking the next item
/// when it is done with one (so an item that takes longer does not leave a core idle).
/// The results come back in item order; an item whose thread panicked is `None`.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<Option<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = count().min(items.len()).max(1);
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(i, item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in done.into_iter().flatten() {
        out[i] = Some(r);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_item_once_in_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out = super::map(&items, |i, x| (i as u32, x * 2));
        assert_eq!(
            out,
            items.iter().map(|x| Some((*x, x * 2))).collect::<Vec<_>>()
        );
        assert!(super::map(&[] as &[u32], |_, x| *x).is_empty());
    }
}
