//! `lab stage` and `lab reset`: resolve a stage (with the models' host directory `lab up` recorded), apply it under
//! the lab lock, assert it through the recorded ingress (`lab stage` without `--no-assert`), and record it as the
//! active stage with how it was verified. Progress goes to a [`StageProgress`]; the result comes back as a value.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cluster::Cluster;
use crate::definition::plan::StagePlan;
use crate::definition::stages::{LabDefinition, Stage};
use crate::lifecycle::apply::{AppliedStage, apply_stage};
use crate::lifecycle::assert::assert_stage;
use crate::lifecycle::ingress::{self, Ingress};
use crate::lifecycle::state::{self, LabLock};
use crate::lifecycle::up::Assertions;
use crate::report::{RunReport, Verdict};
use crate::traffic::checks::progress::{ProgressSink, TerminalProgress};
use crate::traffic::checks::{ProbeChoice, probe_decision};
use crate::{LabError, Settings};

/// `<state_dir>/active-stage-verdict`: `STAGE VERDICT`, how the recorded active stage was verified — `pass` (its
/// assertions passed) or `not_asserted` (recorded with `--no-assert` or by `lab reset`). The stage name is repeated
/// so a verdict left behind by an older state never vouches for another stage.
pub const ACTIVE_STAGE_VERDICT_FILE: &str = "active-stage-verdict";

/// Records `stage` as the active stage with how it was verified: only [`Verdict::Pass`] or
/// [`Verdict::NotAsserted`] are recorded; any other verdict forgets the active stage instead (a stage that failed
/// its assertions is not where the lab is, and a later `lab up` must apply and assert it again).
pub fn record_stage(settings: &Settings, stage: &str, verdict: Verdict) -> anyhow::Result<()> {
    match verdict {
        Verdict::Pass | Verdict::NotAsserted => {
            state::write_value(
                settings,
                ACTIVE_STAGE_VERDICT_FILE,
                &format!("{stage} {}", verdict.as_str()),
            )?;
            state::write_active_stage(settings, stage)
        }
        Verdict::Fail | Verdict::Inconclusive => forget_stage(settings),
    }
}

/// Forgets the active stage (before the cluster is changed, so an interrupted apply leaves no stale claim).
pub fn forget_stage(settings: &Settings) -> anyhow::Result<()> {
    state::forget(settings, state::ACTIVE_STAGE_FILE)?;
    state::forget(settings, ACTIVE_STAGE_VERDICT_FILE)
}

/// The recorded active stage and how it was verified; a stage recorded without a verdict (by an older canary-lab)
/// counts as [`Verdict::NotAsserted`].
pub fn recorded_stage(settings: &Settings) -> anyhow::Result<Option<(String, Verdict)>> {
    let Some(stage) = state::read_active_stage(settings)? else {
        return Ok(None);
    };
    let recorded = state::read_value(settings, ACTIVE_STAGE_VERDICT_FILE)?.unwrap_or_default();
    let verdict = match recorded.split_once(' ') {
        Some((name, "pass")) if name == stage => Verdict::Pass,
        _ => Verdict::NotAsserted,
    };
    Ok(Some((stage, verdict)))
}

/// `stage` of `lab` as this lab applies it: [`StagePlan::resolve`] with the models' host directory `lab up`
/// recorded (the `none` driver mounting `--models host:DIR` as is), if any.
pub fn resolve_stage(settings: &Settings, lab: &LabDefinition, stage: &Stage) -> anyhow::Result<StagePlan> {
    let host_dir = state::read_value(settings, state::MODELS_HOST_DIR_FILE)?;
    StagePlan::resolve(lab, stage, host_dir.as_deref().map(Path::new))
}

/// Receives what `lab stage` and `lab reset` do while they run (separate from the result they return).
pub trait StageProgress {
    /// What reaching the recorded ingress took (a port-forward reopened, a dead tunnel restarted).
    fn ingress_note(&self, text: &str);
    /// The stage is applied: what changed.
    fn applied(&self, applied: &AppliedStage);
    /// A line while the stage is asserted (e.g. what the wait for the gateway still waits for).
    fn note(&self, text: &str);
    /// Where the assertions report while they run: by default the status line on a terminal
    /// ([`TerminalProgress::on_terminal`]), as `lab stage` shows it; `lab tour` draws the live traffic view.
    fn check_progress(&self) -> Option<ProgressSink> {
        TerminalProgress::on_terminal()
    }
}

/// What `lab stage` did.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    /// What applying the stage changed.
    pub applied: AppliedStage,
    /// The assertions' run (through the recorded ingress URL, from the start of the apply); `None` with
    /// [`Assertions::Skip`].
    pub checks: Option<RunReport>,
}

/// The bounds of `lab stage`'s waits.
#[derive(Debug, Clone, Copy)]
pub struct StageTimeouts {
    /// How long each Deployment may take to roll out.
    pub rollout: Duration,
    /// How long the ingress gateway gets to serve the stage before its assertions.
    pub serve: Duration,
}

/// Runs `lab stage NAME`: under the lab lock, opens the recorded ingress (unless the assertions are skipped, so an
/// ingress that cannot be reached fails before anything is applied), applies the stage, asserts it through the
/// ingress and records it as the active stage only once it passed (a failed or inconclusive stage leaves none
/// recorded; a skipped one is recorded as not asserted).
pub async fn run_stage(
    settings: &Settings,
    name: &str,
    timeouts: StageTimeouts,
    assertions: Assertions,
    probe: ProbeChoice,
    progress: &dyn StageProgress,
) -> anyhow::Result<StageOutcome> {
    let StageTimeouts {
        rollout: rollout_timeout,
        serve: serve_timeout,
    } = timeouts;
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(name)?;
    if assertions == Assertions::Run {
        // `--probe status` on a stage whose routes do not allow it is refused before anything is done (the routes
        // and assertions do not depend on where the models are mounted).
        probe_decision(&StagePlan::resolve(&lab, stage, None)?, probe)?;
    }
    let _lock = LabLock::acquire(settings, "lab stage")?;
    let ingress = match assertions {
        Assertions::Run => Some(
            open_recorded_ingress(
                settings,
                "no ingress URL is recorded, so the stage cannot be asserted",
                "run `cargo xtask lab up` first, or pass --no-assert",
                &|text| progress.ingress_note(text),
            )
            .await?,
        ),
        Assertions::Skip => None,
    };
    let plan = resolve_stage(settings, &lab, stage)?;
    let (cluster, started, applied) = connect_and_apply(settings, &plan, rollout_timeout, progress).await?;
    let Some(ingress) = ingress else {
        record_stage(settings, &plan.name, Verdict::NotAsserted)?;
        return Ok(StageOutcome { applied, checks: None });
    };
    // The wait for the gateway to serve the stage says what it waits for, as `lab up`'s steps do.
    let check = assert_stage(
        &cluster,
        &plan,
        &ingress.url,
        serve_timeout,
        probe,
        &|text| progress.note(text),
        progress.check_progress(),
    )
    .await?;
    record_stage(settings, &plan.name, check.verdict)?;
    Ok(StageOutcome {
        applied,
        checks: Some(RunReport::new(ingress.url.clone(), started, vec![check])),
    })
}

/// Runs `lab reset NAME`: under the lab lock, applies the stage (unchanged objects are not written, running pods
/// are kept) and records it as not asserted, so a later `lab up` asserts it.
pub async fn reset_stage(
    settings: &Settings,
    name: &str,
    rollout_timeout: Duration,
    progress: &dyn StageProgress,
) -> anyhow::Result<AppliedStage> {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(name)?;
    let _lock = LabLock::acquire(settings, "lab reset")?;
    let plan = resolve_stage(settings, &lab, stage)?;
    let (_, _, applied) = connect_and_apply(settings, &plan, rollout_timeout, progress).await?;
    record_stage(settings, &plan.name, Verdict::NotAsserted)?;
    Ok(applied)
}

/// What `lab stage` and `lab reset` share: connect, apply the stage `plan` resolves and tell `progress` what
/// changed. Returns the connection and when the apply started.
async fn connect_and_apply(
    settings: &Settings,
    plan: &StagePlan,
    rollout_timeout: Duration,
    progress: &dyn StageProgress,
) -> anyhow::Result<(Cluster, SystemTime, AppliedStage)> {
    let cluster = Cluster::connect(settings).await?;
    let started = SystemTime::now();
    let applied = apply_stage(settings, &cluster, plan, rollout_timeout).await?;
    progress.applied(&applied);
    Ok((cluster, started, applied))
}

/// The ingress a read-only command sends its traffic through: `url` when given (nothing to hold open), else the
/// recorded one (held open for as long as the returned [`Ingress`] lives), its notes logged; without either, a
/// not-ready error saying `missing` and how to pass `--url`.
pub async fn given_or_recorded_ingress(
    settings: &Settings,
    url: Option<&str>,
    missing: &str,
) -> anyhow::Result<(String, Option<Ingress>)> {
    if let Some(url) = url {
        return Ok((url.to_string(), None));
    }
    let ingress = open_recorded_ingress(
        settings,
        missing,
        "pass the ingress with `--url http://HOST:PORT`, or run `cargo xtask lab up` first",
        &|note| tracing::info!("{note}"),
    )
    .await?;
    Ok((ingress.url.clone(), Some(ingress)))
}

/// The recorded ingress, usable for as long as the returned value lives (a port-forward is reopened, a dead
/// tunnel restarted); what it had to do goes to `note`. Without one recorded, a not-ready error with `missing` and
/// its `help`.
pub async fn open_recorded_ingress(
    settings: &Settings,
    missing: &str,
    help: &str,
    note: &dyn Fn(&str),
) -> anyhow::Result<Ingress> {
    let ingress = ingress::reopen_recorded(settings, ingress::REOPEN_DEADLINE)
        .await?
        .ok_or_else(|| LabError::not_ready(missing, help))?;
    if let Some(text) = &ingress.note {
        note(text);
    }
    Ok(ingress)
}
