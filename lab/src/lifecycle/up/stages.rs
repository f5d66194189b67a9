//! `lab up`'s walk through the stages, once the lab is up: where to resume, and each stage applied (unless the
//! cluster holds it already), asserted (unless `--no-assert`) and recorded as the active stage once proven.

use super::{Assertions, Ended, StepOutcome, Steps, UpOptions, summarize};
use crate::Settings;
use crate::cluster::Cluster;
use crate::definition::plan::StagePlan;
use crate::definition::stages::DEFAULT_RESET_STAGE;
use crate::lifecycle::apply::{apply_stage, cluster_matches_stage};
use crate::lifecycle::assert::assert_stage;
use crate::lifecycle::stage::record_stage;
use crate::report::{StageReport, Verdict};
use crate::traffic::checks::progress::TerminalProgress;

/// Where to resume: the index among `plans` of the `recorded` stage, if it is on the way and the cluster still holds
/// exactly it.
pub(super) async fn resume_index(
    cluster: &Cluster,
    plans: &[StagePlan],
    recorded: Option<&(String, Verdict)>,
) -> anyhow::Result<Option<usize>> {
    let Some(index) = recorded.and_then(|(name, _)| plans.iter().position(|plan| &plan.name == name)) else {
        return Ok(None);
    };
    Ok(cluster_matches_stage(cluster, &plans[index]).await?.then_some(index))
}

/// Where the walk left the lab.
pub(super) struct Walked {
    /// The stage the lab is at.
    pub(super) active: String,
    /// What is known of it (see [`super::UpReport::verdict`]).
    pub(super) verdict: Verdict,
    /// The traffic checks of the stages asserted in this run, in order.
    pub(super) checks: Vec<StageReport>,
}

/// What the walk works with: the run's settings, connection, options, ingress URL and progress notes.
pub(super) struct Walk<'a> {
    pub(super) settings: &'a Settings,
    pub(super) cluster: &'a Cluster,
    pub(super) options: &'a UpOptions,
    pub(super) ingress_url: &'a str,
    pub(super) note: &'a dyn Fn(&str),
}

impl Walk<'_> {
    /// Walks `plans` in order, one step each, stopping after the first whose verdict is neither pass nor not
    /// asserted (the next stage builds on it, and the report says what went wrong). A stage is recorded as active
    /// only once its assertions passed, or with `--no-assert` as not asserted; a resumed stage (at `resume`)
    /// recorded as not asserted is asserted now, without applying it again, when assertions run.
    pub(super) async fn stages(
        &self,
        steps: &mut Steps<'_>,
        plans: &[StagePlan],
        resume: Option<usize>,
        recorded: Option<(String, Verdict)>,
    ) -> anyhow::Result<Walked> {
        let recorded_verdict = recorded.as_ref().map(|(_, verdict)| *verdict);
        let mut walked = Walked {
            active: recorded
                .map(|(name, _)| name)
                .unwrap_or_else(|| DEFAULT_RESET_STAGE.to_string()),
            verdict: recorded_verdict.unwrap_or(Verdict::NotAsserted),
            checks: Vec::new(),
        };
        for (index, plan) in plans.iter().enumerate() {
            let place = if resume.is_some_and(|resumed| index < resumed) {
                Place::Behind
            } else if resume == Some(index) {
                Place::Resumed {
                    asserted_before: recorded_verdict == Some(Verdict::Pass),
                }
            } else {
                Place::Ahead
            };
            let reached = steps
                .run(&format!("stage {}", plan.name), self.stage(plan, place, &mut walked))
                .await?;
            let proven = reached.is_none_or(|verdict| matches!(verdict, Verdict::Pass | Verdict::NotAsserted));
            if !proven {
                break;
            }
        }
        Ok(walked)
    }

    /// One stage's step: hands on the verdict this run reached, when it applied or asserted the stage.
    async fn stage(
        &self,
        plan: &StagePlan,
        place: Place,
        walked: &mut Walked,
    ) -> anyhow::Result<Ended<Option<Verdict>>> {
        let skip = self.options.assertions == Assertions::Skip;
        match place {
            Place::Behind => {
                return Ok(Ended::new(
                    StepOutcome::AlreadyDone,
                    "the lab is past it (not asserted in this run)",
                )
                .with(None));
            }
            Place::Resumed { asserted_before } if asserted_before || skip => {
                let (verdict, detail) = if asserted_before {
                    (Verdict::Pass, "applied and asserted before (pass)")
                } else {
                    (Verdict::NotAsserted, "applied before; assertions skipped (--no-assert)")
                };
                walked.verdict = verdict;
                return Ok(Ended::new(StepOutcome::AlreadyDone, detail).with(None));
            }
            Place::Resumed { .. } | Place::Ahead => {}
        }
        // Apply it, unless the cluster holds exactly it already (a resumed stage that was never asserted).
        let applied = if let Place::Resumed { .. } = place {
            Ended::new(StepOutcome::AlreadyDone, "applied before")
        } else {
            let applied = apply_stage(self.settings, self.cluster, plan, self.options.rollout_timeout).await?;
            summarize(&applied.changes, "")
        };
        walked.active = plan.name.clone();
        let (verdict, detail) = match self.options.assertions {
            Assertions::Run => {
                let check = assert_stage(
                    self.cluster,
                    plan,
                    self.ingress_url,
                    self.options.serve_timeout,
                    self.options.probe,
                    self.note,
                    TerminalProgress::on_terminal(),
                )
                .await?;
                let requests: u64 = check.assertions.iter().map(|assertion| assertion.requests).sum();
                let verdict = check.verdict;
                walked.checks.push(check);
                let detail = format!(
                    "{}; assertions: {} ({requests} requests)",
                    applied.detail,
                    verdict.as_str()
                );
                (verdict, detail)
            }
            Assertions::Skip => (
                Verdict::NotAsserted,
                format!("{}; assertions skipped (--no-assert)", applied.detail),
            ),
        };
        record_stage(self.settings, &plan.name, verdict)?;
        walked.verdict = verdict;
        Ok(Ended::new(applied.outcome, detail).with(Some(verdict)))
    }
}

/// Where a stage lies relative to the stage the run resumed at.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Before it: the lab is past this stage.
    Behind,
    /// It: the cluster holds exactly this stage; `asserted_before` when it was recorded as passing.
    Resumed { asserted_before: bool },
    /// After it (or no stage resumed): applied in this run.
    Ahead,
}
