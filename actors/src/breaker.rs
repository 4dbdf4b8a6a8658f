//! A circuit breaker: after `threshold` failures in a row, calls are
//! refused for `open_for`; then exactly one goes through (half-open) and
//! its outcome closes or reopens the breaker. A probe that never reports
//! (its caller was dropped mid-call) is given up after [`PROBE_LOST_AFTER`]
//! (or `open_for`, if longer), and the next call probes instead. Used for the Ollama endpoints and the blob
//! store.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a probe may stay out without an answer.
pub const PROBE_LOST_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe went at `since`.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
    failures: AtomicU64,
    opened: AtomicU64,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
            failures: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// Whether a call may go: closed, or open with its time up (then this
    /// call is the one probe). Otherwise how long until one may.
    pub fn allow(&self) -> Result<(), Duration> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Result<(), Duration> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *st {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                if now >= until {
                    *st = State::HalfOpen { since: now };
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            // A probe lost without an answer: this call probes.
            State::HalfOpen { since }
                if now.duration_since(since) >= self.open_for.max(PROBE_LOST_AFTER) =>
            {
                *st = State::HalfOpen { since: now };
                Ok(())
            }
            // The probe is out: the others wait for its answer.
            State::HalfOpen { .. } => Err(self.open_for.min(Duration::from_secs(1))),
        }
    }

    /// Records a call's outcome; true when this failure opened the breaker.
    pub fn record(&self, ok: bool) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        let (next, opened) = match (*st, ok) {
            (_, true) => (State::Closed { failures: 0 }, false),
            (State::Closed { failures }, false) if failures + 1 < self.threshold => (
                State::Closed {
                    failures: failures + 1,
                },
                false,
            ),
            (State::Open { until }, false) => (State::Open { until }, false),
            (_, false) => (
                State::Open {
                    until: Instant::now() + self.open_for,
                },
                true,
            ),
        };
        *st = next;
        if opened {
            self.opened.fetch_add(1, Relaxed);
        }
        opened
    }

    /// `closed`, `open` or `half_open`.
    pub fn state(&self) -> &'static str {
        match *self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Closed { .. } => "closed",
            State::Open { until } if Instant::now() < until => "open",
            State::Open { .. } | State::HalfOpen { .. } => "half_open",
        }
    }

    /// Failed calls, and times the breaker opened, since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.failures.load(Relaxed), self.opened.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let b = Breaker::new(2, Duration::from_millis(30));
        assert!(b.allow().is_ok());
        assert!(!b.record(false));
        assert_eq!(b.state(), "closed");
        assert!(b.record(false), "the second failure in a row opens it");
        assert_eq!(b.state(), "open");
        assert!(b.allow().is_err());
        let later = Instant::now() + Duration::from_millis(40);
        assert!(b.allow_at(later).is_ok(), "one probe when the time is up");
        assert!(b.allow_at(later).is_err(), "and only one");
        // A probe that never answers is given up after open_for.
        let much_later = later + PROBE_LOST_AFTER;
        assert!(b.allow_at(much_later).is_ok(), "a new probe");
        b.record(true);
        assert_eq!(b.state(), "closed");
        assert_eq!(b.counts(), (2, 1));
    }
}
