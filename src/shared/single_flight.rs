//! Single flight: identical work in flight at the same time runs once. The
//! first caller for a key leads; callers that arrive while it runs wait for
//! its result instead of doing their own. Two ways to run the work:
//!
//! - [`SingleFlight::run`]: in the leader's own task. If the leader is
//!   cancelled, a waiting caller takes over with its own work (Key Vault
//!   reads: the follower uses its own token and budget).
//! - [`SingleFlight::run_detached`]: as a task of its own, so a cancelled
//!   caller cancels nothing; everyone who joins waits for that task (token
//!   requests: the token still lands in the cache for the retry).
//!
//! The key decides who may share: callers put everything that makes a
//! result valid for them into it. Nothing is remembered once the flight
//! lands: caching is `shared::cache`, and this module must not cache.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::OnceCell;

/// In-flight work by key.
pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<Flight<V>>>>,
}

/// One flight: its result once landed, and for detached work the task
/// every caller awaits.
struct Flight<V> {
    cell: OnceCell<V>,
    task: OnceLock<Shared<BoxFuture<'static, V>>>,
}

/// Whether a caller did the work or shared another caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

// === impl SingleFlight ===

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &lock(&self.flights).len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `work` unless an identical flight is under way, and returns its
    /// result. If the caller doing the work is cancelled, a waiting caller
    /// takes over with its own `work`.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> (V, Role)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let flight = self.join(&key);
        let mut role = Role::Follower;
        let landing = Landing {
            flights: &self.flights,
            key: &key,
            flight,
        };
        let value = landing
            .flight
            .cell
            .get_or_init(|| {
                role = Role::Leader;
                work()
            })
            .await
            .clone();
        (value, role)
    }

    /// The flight for `key`, creating it if there is none.
    fn join(&self, key: &K) -> Arc<Flight<V>> {
        lock(&self.flights)
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Flight {
                    cell: OnceCell::new(),
                    task: OnceLock::new(),
                })
            })
            .clone()
    }

    /// Flights currently in the air (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `work` as its own task unless an identical flight is under way,
    /// and returns its result. The flight lasts until the task ends, however
    /// many callers leave meanwhile; `lost` makes the result when the task
    /// itself fails (a panic).
    pub async fn run_detached<Fut, L>(self: &Arc<Self>, key: K, work: Fut, lost: L) -> (V, Role)
    where
        Fut: Future<Output = V> + Send + 'static,
        L: FnOnce() -> V + Send + 'static,
    {
        let flight = self.join(&key);
        let mut role = Role::Follower;
        let task = flight
            .task
            .get_or_init(|| {
                role = Role::Leader;
                let done = Done {
                    flights: self.clone(),
                    key: key.clone(),
                    flight: flight.clone(),
                };
                let task = tokio::spawn(async move {
                    // Ends the flight once `work` is over, even by a panic.
                    let _done = done;
                    work.await
                });
                async move { task.await.unwrap_or_else(|_| lost()) }
                    .boxed()
                    .shared()
            })
            .clone();
        (task.await, role)
    }
}

/// Ends a detached flight when its task is over (if it is still the one
/// for its key).
struct Done<K: Hash + Eq, V> {
    flights: Arc<SingleFlight<K, V>>,
    key: K,
    flight: Arc<Flight<V>>,
}

impl<K: Hash + Eq, V> Drop for Done<K, V> {
    fn drop(&mut self) {
        let mut flights = lock(&self.flights.flights);
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

/// Removes the flight when a caller of [`SingleFlight::run`] leaves, once
/// it has landed (so a landed result is never served to callers that
/// arrive later) or when nobody else waits on it. A flight whose leader was
/// cancelled stays while followers wait: one of them takes over, and
/// newcomers join that attempt instead of starting another. (If the last
/// two callers leave at the same moment the empty flight may stay behind;
/// the next caller for the key simply runs in it.)
struct Landing<'a, K: Hash + Eq, V> {
    flights: &'a Mutex<HashMap<K, Arc<Flight<V>>>>,
    key: &'a K,
    flight: Arc<Flight<V>>,
}

impl<K: Hash + Eq, V> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        let ours = flights
            .get(self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight));
        // The map's reference and ours: nobody else is waiting.
        let alone = Arc::strong_count(&self.flight) <= 2;
        if ours && (self.flight.cell.initialized() || alone) {
            flights.remove(self.key);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a holder panicked; the map is still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_calls_share_one_run() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, runs) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        7
                    })
                    .await
            }));
        }
        let mut leaders = 0;
        for task in tasks {
            let (value, role) = task.await.unwrap();
            assert_eq!(value, 7);
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(flights.in_flight(), 0, "landed flights are removed");
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_do_not_share() {
        let flights = SingleFlight::<String, String>::default();
        let (a, b) = tokio::join!(
            flights.run("tenant-a/client-1".into(), || async { "a".to_owned() }),
            flights.run("tenant-b/client-1".into(), || async { "b".to_owned() }),
        );
        assert_eq!((a.0.as_str(), b.0.as_str()), ("a", "b"));
        assert_eq!((a.1, b.1), (Role::Leader, Role::Leader));
    }

    #[tokio::test(start_paused = true)]
    async fn later_calls_do_not_get_a_landed_result() {
        let flights = SingleFlight::<&str, u32>::default();
        assert_eq!(flights.run("k", || async { 1 }).await.0, 1);
        assert_eq!(flights.run("k", || async { 2 }).await.0, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_hands_over_to_a_follower() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", || async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let follower = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run("k", || async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        let (value, role) = follower.await.unwrap();
        assert_eq!((value, role), (2, Role::Leader));
    }

    #[tokio::test(start_paused = true)]
    async fn newcomers_join_the_follower_that_took_over() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let start = |delay_ms: u64| {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                flights
                    .run("k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        9
                    })
                    .await
            })
        };
        let leader = start(0);
        let follower = start(10);
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let newcomer = start(0);
        assert_eq!(follower.await.unwrap(), (9, Role::Leader));
        assert_eq!(newcomer.await.unwrap(), (9, Role::Follower));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the aborted run and one more"
        );
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn detached_work_outlives_its_callers_and_is_shared() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let work = |value: u32| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                value
            }
        };
        let leader = {
            let (flights, work) = (flights.clone(), work(1));
            tokio::spawn(async move { flights.run_detached("k", work, || 0).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Joins the task the cancelled leader started.
        let late = flights.run_detached("k", work(2), || 0).await;
        assert_eq!(late, (1, Role::Follower));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0, "the task ended the flight");
    }

    #[tokio::test(start_paused = true)]
    async fn a_detached_task_that_panics_gives_the_lost_value() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let (value, role) = flights
            .run_detached("k", async { panic!("boom") }, || 99)
            .await;
        assert_eq!((value, role), (99, Role::Leader));
    }
}
