//! One registry call per key at a time: callers that need the same missing entry while it
//! is being fetched wait for that fetch instead of making their own.
//!
//! A worker starts with every in-flight event needing the writer schema of one id its
//! codec has not seen: without this, each of them (hundreds) asked the registry, which
//! spent a core answering the same question while the worker waited.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use futures::future::{BoxFuture, FutureExt, Shared};

/// Fetches in progress, by key; each one's result goes to every caller that waited for it.
pub(crate) struct SingleFlight<K, V> {
    running: Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight { running: Mutex::new(HashMap::new()) }
    }
}

impl<K, V> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone, V: Clone + Send + Sync + 'static> SingleFlight<K, V> {
    /// The result of the fetch of `key` in progress, or of `fetch()` started now when none
    /// is. `known` is asked first, under the lock, and `keep` stores a fetch's result
    /// where `known` reads it, once, under the same lock and before the fetch is
    /// forgotten: a caller finds the result or the fetch, never neither. A finished fetch
    /// is forgotten, failed or not, so a failure is never served to a later caller.
    pub(crate) async fn run<F, Fut>(&self, key: K, known: impl FnOnce() -> Option<V>, fetch: F, keep: impl FnOnce(&V)) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(v) = known() {
                return v;
            }
            running.entry(key.clone()).or_insert_with(|| fetch().boxed().shared()).clone()
        };
        let v = flight.clone().await;
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The first caller back keeps the result; another fetch of `key` may have started
        // since this one ended (after a failure): leave it.
        if running.get(&key).is_some_and(|f| f.ptr_eq(&flight)) {
            keep(&v);
            running.remove(&key);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A future that is pending until `gate` is opened (a count read each poll).
    fn gated(gate: Arc<AtomicUsize>, calls: Arc<AtomicUsize>, v: u32) -> impl Future<Output = u32> + Send + 'static {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::poll_fn(move |cx| {
            if gate.load(Ordering::SeqCst) > 0 {
                std::task::Poll::Ready(v)
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
    }

    #[test]
    fn concurrent_callers_of_one_key_share_one_fetch_and_a_finished_fetch_is_forgotten() {
        let flights: SingleFlight<u32, u32> = SingleFlight::default();
        let (gate, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let kept = Mutex::new(Vec::new());
        let callers = (0..10).map(|i| {
            let (gate, calls) = (gate.clone(), calls.clone());
            flights.run(7, || None, move || gated(gate, calls, i), |v| kept.lock().unwrap().push(*v))
        });
        let mut all = futures::future::join_all(callers);
        // Every caller is waiting: one fetch started.
        assert!((&mut all).now_or_never().is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        gate.store(1, Ordering::SeqCst);
        assert_eq!(futures::executor::block_on(all), vec![0; 10], "every caller has the first caller's fetch");
        assert_eq!(*kept.lock().unwrap(), vec![0], "the result is kept once");
        // Finished: the next caller fetches anew (a failure is not kept either).
        assert_eq!(futures::executor::block_on(flights.run(7, || None, || gated(gate.clone(), calls.clone(), 42), |_| {})), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // What `known` finds is not fetched.
        assert_eq!(futures::executor::block_on(flights.run(7, || Some(5), || gated(gate.clone(), calls.clone(), 1), |_| {})), 5);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Other keys fetch on their own.
        let a = flights.run(1, || None, || gated(gate.clone(), calls.clone(), 1), |_| {});
        let b = flights.run(2, || None, || gated(gate.clone(), calls.clone(), 2), |_| {});
        assert_eq!(futures::executor::block_on(futures::future::join(a, b)), (1, 2));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
