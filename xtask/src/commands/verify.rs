//! `lab verify STAGE`: check a stage the learner applied by hand and print the checklist — ✓ for each item that
//! holds, ✗ with its hints for each that does not ([`lab::lifecycle::verify`]). Exit 0 only when every item holds.

use lab::lifecycle::verify::{Checklist, ItemState, VerifyOptions, verify_stage};
use lab::output::{paint, plural, to_json, use_colour};
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::VerifyFlags;

/// Verifies the stage and prints the checklist.
pub(crate) async fn run(settings: &Settings, flags: &VerifyFlags) -> CommandResult {
    let options = VerifyOptions { url: flags.url.clone() };
    let checklist = verify_stage(settings, &flags.stage, &options).await?;
    match settings.format {
        Format::Json => println!("{}", to_json(&checklist)),
        Format::Human => print!("{}", render(&checklist, use_colour())),
    }
    Ok(if checklist.holds {
        CommandStatus::Ok
    } else {
        CommandStatus::NotReady
    })
}

/// The checklist as a learner reads it: one line per item, its hints under it, and what to do next.
fn render(checklist: &Checklist, colour: bool) -> String {
    let mut text = format!("lab verify {}\n", checklist.stage);
    for item in &checklist.items {
        let mark = match item.state {
            ItemState::Holds => paint("✓", "32", colour),
            ItemState::Fails => paint("✗", "31", colour),
            ItemState::NotRun => paint("-", "2", colour),
        };
        text.push_str(&format!("  {mark} {}\n", item.item));
        if let Some(found) = &item.found {
            text.push_str(&format!("      {}\n", paint(found, "2", colour)));
        }
        for hint in &item.hints {
            text.push_str(&format!("      {} {hint}\n", paint("hint:", "33", colour)));
        }
    }
    let count = |state: ItemState| checklist.items.iter().filter(|item| item.state == state).count() as u64;
    let (holds, fails, not_run) = (
        count(ItemState::Holds),
        count(ItemState::Fails),
        count(ItemState::NotRun),
    );
    if checklist.holds {
        text.push_str(&format!(
            "\nall {} hold: stage \"{}\" is done\n",
            plural(holds, "item"),
            checklist.stage
        ));
    } else {
        let skipped = if not_run > 0 {
            format!(", {not_run} not run")
        } else {
            String::new()
        };
        text.push_str(&format!(
            "\n{holds} of {} hold, {fails} {}{skipped}: fix what the hints say, then run `cargo xtask lab verify {}` again\n",
            plural(holds + fails + not_run, "item"),
            if fails == 1 { "fails" } else { "fail" },
            checklist.stage
        ));
    }
    text
}
