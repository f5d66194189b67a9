//! The probe's reorder buffer: observations arrive in the order requests finish and leave in the order they were
//! launched.
//!
//! Why: with several requests in flight, a slower version's responses arrive later than the faster version's that
//! were launched after them, so the first responses to arrive under-represent the slower version. The sequential
//! share test's error bounds hold for observations in an order that does not depend on their outcome; launch order
//! is such an order (a request's outcome is drawn by the gateway after its launch, independently of the requests
//! before it), arrival order is not. So an early arrival waits here until every request launched before it has
//! been observed. Every launched request ends in an observation within its timeout (a timeout is an observation
//! too), so the head of the buffer never waits longer than one request timeout, and the probe launches at most
//! [`launch_window`] requests beyond it, so the buffer holds at most that many observations.

use std::collections::VecDeque;

use super::Observation;

/// How many requests past the first one not yet observed the probe may launch: four rounds of `concurrency`.
/// A request slower than four rounds of the others (a timeout, a stall) pauses launching until it is in, which
/// costs nothing a decision could use (the observer waits for it anyway) and bounds the buffer.
pub(super) fn launch_window(concurrency: usize) -> u64 {
    4 * concurrency.max(1) as u64
}

/// Observations keyed by launch sequence (0, 1, 2, …), released in that order without gaps.
#[derive(Debug, Default)]
pub(super) struct ReorderBuffer {
    /// The sequence number of the next observation to release.
    next: u64,
    /// Slot `i` holds the observation of request `next + i`, once it has arrived.
    waiting: VecDeque<Option<Observation>>,
}

impl ReorderBuffer {
    /// Takes the observation of the request launched `sequence`-th (0-based). Each sequence arrives once.
    pub(super) fn insert(&mut self, sequence: u64, observation: Observation) {
        debug_assert!(sequence >= self.next, "request {sequence} was already released");
        let index = (sequence - self.next) as usize;
        if self.waiting.len() <= index {
            self.waiting.resize_with(index + 1, || None);
        }
        debug_assert!(self.waiting[index].is_none(), "request {sequence} arrived twice");
        self.waiting[index] = Some(observation);
    }

    /// The next observation in launch order, once it and every one before it have arrived.
    pub(super) fn pop_next(&mut self) -> Option<Observation> {
        let observation = self.waiting.front_mut()?.take()?;
        self.waiting.pop_front();
        self.next += 1;
        Some(observation)
    }

    /// The sequence number of the first request whose observation has not been released.
    pub(super) fn next_sequence(&self) -> u64 {
        self.next
    }

    /// Observations that arrived and wait for an earlier one.
    pub(super) fn held(&self) -> usize {
        self.waiting.iter().filter(|slot| slot.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::traffic::probe::Outcome;

    fn answered(version: &str, latency_ms: u64) -> Observation {
        Observation {
            latency: Duration::from_millis(latency_ms),
            status: Some(200),
            outcome: Outcome::Answered {
                version: version.to_string(),
            },
        }
    }

    fn version(observation: &Observation) -> &str {
        match &observation.outcome {
            Outcome::Answered { version } => version,
            Outcome::Failed { .. } => "failed",
        }
    }

    #[test]
    fn early_arrivals_wait_for_the_requests_launched_before_them() {
        // Launched 0 (slow resnet101), 1 and 2 (fast resnet50); they arrive 1, 2, 0.
        let mut buffer = ReorderBuffer::default();
        buffer.insert(1, answered("resnet50", 10));
        buffer.insert(2, answered("resnet50", 10));
        assert!(buffer.pop_next().is_none(), "request 0 is still out");
        assert_eq!((buffer.next_sequence(), buffer.held()), (0, 2));
        buffer.insert(0, answered("resnet101", 20));
        let released: Vec<String> = std::iter::from_fn(|| buffer.pop_next())
            .map(|observation| version(&observation).to_string())
            .collect();
        assert_eq!(released, ["resnet101", "resnet50", "resnet50"]);
        assert_eq!((buffer.next_sequence(), buffer.held()), (3, 0));
    }

    #[test]
    fn a_gap_holds_only_what_comes_after_it() {
        let mut buffer = ReorderBuffer::default();
        buffer.insert(0, answered("a", 1));
        buffer.insert(2, answered("c", 1));
        assert_eq!(buffer.pop_next().as_ref().map(version), Some("a"));
        assert!(buffer.pop_next().is_none(), "request 1 is still out");
        buffer.insert(1, answered("b", 1));
        assert_eq!(buffer.pop_next().as_ref().map(version), Some("b"));
        assert_eq!(buffer.pop_next().as_ref().map(version), Some("c"));
        assert!(buffer.pop_next().is_none());
        buffer.insert(3, answered("d", 1));
        assert_eq!(buffer.pop_next().as_ref().map(version), Some("d"));
    }
}
