//! Workflow updates end to end: `UpdateWorkflowExecution` (admit, wait for the stage
//! asked for, admit again when the run continued as new or its owner stopped) and
//! `PollWorkflowExecutionUpdate` (find, wait).

use std::time::Duration;

use temporalio_protos::protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage as Stage;
use temporalio_protos::protos::temporal::api::update::v1::{Outcome, Request};
use tokio::time::Instant;

use super::HistoryApi;
use crate::core::error::RunError;
use crate::engine::errors::UpdateError;
use crate::engine::update::{self, Found, UpdateTarget};
use crate::error::Result;
use crate::shard::updates::{Abort, Progress};

/// How often a waiting caller checks whether the run closed under its update.
pub const UPDATE_RECHECK: Duration = Duration::from_secs(1);
/// Most admissions of one update call (each after its run continued as new or its
/// owner stopped).
pub const ADMISSIONS_MAX: usize = 8;

/// UpdateWorkflowExecution, answered by `deadline`.
#[derive(Debug, Clone)]
pub struct UpdateWorkflow {
    pub target: UpdateTarget,
    pub request: Request,
    /// ACCEPTED or COMPLETED.
    pub wait_stage: Stage,
    pub deadline: Instant,
}

/// PollWorkflowExecutionUpdate, answered by `deadline`.
#[derive(Debug, Clone)]
pub struct PollUpdate {
    pub target: UpdateTarget,
    /// UNSPECIFIED: answer at once with the stage reached.
    pub wait_stage: Stage,
    pub deadline: Instant,
}

/// Where an update stands when the call answers.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateAnswer {
    pub run_id: String,
    pub stage: Stage,
    pub outcome: Option<Outcome>,
}

enum Waited {
    Answer(Box<UpdateAnswer>),
    Aborted(Abort),
}

impl HistoryApi<'_> {
    pub async fn update_workflow(&self, req: UpdateWorkflow) -> Result<UpdateAnswer> {
        let engine = self.engine;
        let mut target = req.target.clone();
        for _ in 0..ADMISSIONS_MAX {
            let admit = self.retry(|| update::admit(engine, &target, req.request.clone()));
            let found = tokio::time::timeout_at(req.deadline, admit).await.map_err(|_| UpdateError::DeadlineExceeded)??;
            match self.wait(found, req.wait_stage, req.deadline).await? {
                Waited::Answer(answer) => return Ok(*answer),
                // Admitted again on the run that continues this one (Temporal moves
                // updates across continue-as-new); a call pinned to a run cannot follow.
                Waited::Aborted(Abort::ContinuedAs(_)) if req.target.run_id.is_empty() => target.run_id.clear(),
                Waited::Aborted(Abort::OwnerStopped) => tracing::debug!(?target, "an update's owner stopped; admitting it again"),
                Waited::Aborted(_) => return Err(RunError::Completed.into()),
            }
        }
        Err(UpdateError::OwnerStopped.into())
    }

    pub async fn poll_update(&self, req: PollUpdate) -> Result<UpdateAnswer> {
        let engine = self.engine;
        for _ in 0..ADMISSIONS_MAX {
            let find = self.retry(|| update::find(engine, &req.target));
            let found = tokio::time::timeout_at(req.deadline, find).await.map_err(|_| UpdateError::DeadlineExceeded)??;
            match self.wait(found, req.wait_stage, req.deadline).await? {
                Waited::Answer(answer) => return Ok(*answer),
                Waited::Aborted(Abort::OwnerStopped) => continue,
                Waited::Aborted(_) => return Err(UpdateError::NotFound(req.target.update_id.clone()).into()),
            }
        }
        Err(UpdateError::OwnerStopped.into())
    }

    /// Waits until the update reaches `stage` (at once for UNSPECIFIED), re-checking
    /// now and then whether its run closed; `DeadlineExceeded` at the deadline.
    async fn wait(&self, found: Found, stage: Stage, deadline: Instant) -> Result<Waited> {
        let Found { run, mut watch } = found;
        let reached =
            move |p: &Progress| matches!((stage, p), (Stage::Unspecified | Stage::Admitted, _) | (Stage::Accepted, Progress::Accepted));
        loop {
            let progress = tokio::select! {
                progress = watch.until(reached) => progress,
                _ = tokio::time::sleep(UPDATE_RECHECK) => {
                    if let Ok(Err(e)) = tokio::time::timeout_at(deadline, update::recheck(self.engine, &run)).await {
                        tracing::debug!(?run, error = %e, "re-checking a waiting update's run failed");
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => return Err(UpdateError::DeadlineExceeded.into()),
            };
            let answer = |stage, outcome| Waited::Answer(Box::new(UpdateAnswer { run_id: run.run_id.clone(), stage, outcome }));
            return Ok(match progress {
                Progress::Admitted => answer(Stage::Admitted, None),
                Progress::Accepted => answer(Stage::Accepted, None),
                Progress::Completed(outcome) => answer(Stage::Completed, Some(*outcome)),
                Progress::Aborted(abort) => Waited::Aborted(abort),
            });
        }
    }
}
