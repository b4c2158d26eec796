//! Group commit for feeds that send one message at a time (MLLP): each connection hands its
//! plan to one writer task and waits for the answer; the writer takes everything waiting (up to
//! [`MAX_GROUP`]) and applies it in one commit, so many connections share one disk sync (the
//! records and their ledger entries commit together). A message is still answered only once
//! it is durably stored: nothing is acknowledged early.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Plan, Source, Stored};
use crate::{AdapterError, AdapterState};

/// The most inputs in one commit.
pub const MAX_GROUP: usize = 256;

/// One input waiting for the writer, and where its answer goes.
pub(crate) struct Job {
    plan: Plan,
    source: Source,
    answer: oneshot::Sender<Result<Stored, AdapterError>>,
}

/// The door to the writer.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("kind", &self.source.kind)
            .finish()
    }
}

/// A queue and the receiving end the writer drains.
pub(crate) fn queue() -> (Queue, mpsc::Receiver<Job>) {
    let (jobs, receiver) = mpsc::channel(MAX_GROUP * 4);
    (Queue { jobs }, receiver)
}

impl Queue {
    /// Stores one input in the next group commit and waits until it is stored (or refused).
    pub(crate) async fn apply(&self, plan: Plan, source: Source) -> Result<Stored, AdapterError> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Job {
                plan,
                source,
                answer,
            })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> AdapterError {
    AdapterError::Store(kinfold_store::StoreError::Corrupt(
        "the adapter is stopping".into(),
    ))
}

/// The writer: runs until every sender is gone (or the task is aborted).
pub(crate) async fn writer(state: Arc<AdapterState>, mut jobs: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
        let taken = std::mem::take(&mut group);
        let mut plans = Vec::with_capacity(taken.len());
        let mut sources = Vec::with_capacity(taken.len());
        let mut answers = Vec::with_capacity(taken.len());
        for job in taken {
            plans.push(job.plan);
            sources.push(job.source);
            answers.push(job.answer);
        }
        let started = std::time::Instant::now();
        let applied = state
            .apply_all(plans.into_iter().zip(sources.iter()).collect())
            .await;
        tracing::debug!(
            inputs = answers.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "group commit"
        );
        match applied {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            // The ledger or the database refused the whole commit: nothing was stored, and
            // each sender is told why, in the error's wire form.
            Err(err) => {
                let api = err.to_api_error();
                tracing::warn!(inputs = answers.len(), status = %api.status, "a group commit failed; nothing stored");
                for answer in answers {
                    let _ = answer.send(Err(AdapterError::Refused(api.clone())));
                }
            }
        }
    }
}
