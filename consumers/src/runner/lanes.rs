//! Per-ordering-key lanes: events of one key run one after another, in offset order;
//! different keys run concurrently.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

use crate::runner::process::{Incoming, PartitionPause, Process};
use crate::runner::state::{PartitionStates, Tp};

/// (topic, partition, ordering key).
pub type LaneKey = (String, i32, String);

/// One fetched message on its way through a lane.
#[derive(Debug)]
pub struct Job {
    pub incoming: Incoming,
    pub generation: u64,
    /// Released when the job finishes: bounds the events in flight.
    pub permit: OwnedSemaphorePermit,
}

/// The running lanes. A lane exists while its task runs; its queue holds the jobs waiting
/// behind the one being processed.
#[derive(Debug)]
pub struct Lanes {
    queues: Mutex<HashMap<LaneKey, VecDeque<Job>>>,
    shared: Arc<PartitionStates>,
    process: Arc<dyn Process>,
}

impl Lanes {
    pub fn new(shared: Arc<PartitionStates>, process: Arc<dyn Process>) -> Arc<Lanes> {
        Arc::new(Lanes { queues: Mutex::new(HashMap::new()), shared, process })
    }

    /// Queues `job` behind earlier jobs of its key, or starts a lane for it.
    pub fn push(self: &Arc<Self>, key: LaneKey, job: Job) {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(q) = queues.get_mut(&key) {
            q.push_back(job);
            return;
        }
        queues.insert(key.clone(), VecDeque::new());
        drop(queues);
        let lanes = self.clone();
        tokio::spawn(async move { lanes.run(key, job).await });
    }

    async fn run(self: Arc<Self>, key: LaneKey, first: Job) {
        let tp: Tp = (key.0.clone(), key.1);
        let blocker = PartitionPause::new(self.shared.clone());
        let mut job = first;
        loop {
            let offset = job.incoming.meta.offset;
            self.process.process(&job.incoming, &blocker).await;
            self.shared.finish(&tp, job.generation, offset);
            drop(job.permit);
            let next = {
                let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match queues.get_mut(&key).and_then(VecDeque::pop_front) {
                    Some(j) => j,
                    None => {
                        queues.remove(&key);
                        return;
                    }
                }
            };
            job = next;
        }
    }
}
