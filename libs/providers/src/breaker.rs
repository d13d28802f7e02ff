//! A circuit breaker per provider: pure state, time passed in, so every transition is
//! tested without waiting.
//!
//! - **Closed**: every call goes through. It opens after `consecutive_failures` transient
//!   failures in a row, or when, over the last `window`, at least `min_requests` calls were
//!   made and the share of failures reached `failure_ratio`.
//! - **Open** for `cool_down`: no call goes through.
//! - **Half-open**: exactly one call (the probe) goes through. Its success closes the
//!   circuit, its failure opens it for another cool-down. A probe that never reports (its
//!   caller was cancelled) is given up after one cool-down, and another is let through.
//!
//! Only transient failures count: a provider that refuses an address is working.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// The time, injectable: [`SystemClock`] in production, [`ManualClock`] in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// When a circuit opens and how long it stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Opens after this many transient failures in a row (`APP_{CHANNEL}_BREAKER_FAILURES`,
    /// default 5).
    pub consecutive_failures: u32,
    /// Opens when this share of the calls in the window failed
    /// (`APP_{CHANNEL}_BREAKER_FAILURE_RATIO`, default 0.5)…
    pub failure_ratio: f64,
    /// …over this sliding window (`APP_{CHANNEL}_BREAKER_WINDOW_MS`, default 60000)…
    pub window: Duration,
    /// …once it holds at least this many calls (`APP_{CHANNEL}_BREAKER_MIN_REQUESTS`,
    /// default 20).
    pub min_requests: u32,
    /// How long an open circuit stays open before one probe
    /// (`APP_{CHANNEL}_BREAKER_COOL_DOWN_MS`, default 30000).
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: Duration::from_secs(60),
            min_requests: 20,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The state of a circuit; the number is the `provider_circuit_state` gauge's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// What [`CircuitBreaker::try_pass`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The circuit is closed: call.
    Call,
    /// The circuit is half-open and this is its one probe: call, and report the outcome.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// `probe_since`: when the probe in flight was let through, if there is one.
    HalfOpen {
        probe_since: Option<Instant>,
    },
}

/// Calls and failures over the sliding window, in ten buckets (memory bounded whatever the
/// throughput).
#[derive(Debug, Default)]
struct Window {
    buckets: VecDeque<(Instant, u32, u32)>,
}

impl Window {
    fn record(&mut self, now: Instant, span: Duration, failed: bool) {
        self.trim(now, span);
        let bucket_span = span / 10;
        match self.buckets.back_mut() {
            Some((start, calls, failures)) if now.saturating_duration_since(*start) < bucket_span => {
                *calls += 1;
                *failures += u32::from(failed);
            }
            _ => self.buckets.push_back((now, 1, u32::from(failed))),
        }
    }

    fn trim(&mut self, now: Instant, span: Duration) {
        while self
            .buckets
            .front()
            .is_some_and(|(start, _, _)| now.saturating_duration_since(*start) >= span)
        {
            self.buckets.pop_front();
        }
    }

    fn totals(&self) -> (u32, u32) {
        self.buckets
            .iter()
            .fold((0, 0), |(c, f), (_, calls, failures)| (c + calls, f + failures))
    }
}

/// One provider's circuit. Not shared by itself: the chain keeps it behind a mutex.
#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: State,
    consecutive: u32,
    window: Window,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed,
            consecutive: 0,
            window: Window::default(),
        }
    }

    /// The state at `now` (an open circuit whose cool-down is over reads half-open).
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.state {
            State::Closed => CircuitState::Closed,
            State::Open { until } if now < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a call may go through at `now`; `Err(t)`: not before `t`. Letting a probe
    /// through moves an open circuit to half-open.
    pub fn try_pass(&mut self, now: Instant) -> Result<Pass, Instant> {
        let cool_down = self.settings.cool_down;
        match self.state {
            State::Closed => Ok(Pass::Call),
            State::Open { until } if now < until => Err(until),
            State::HalfOpen {
                probe_since: Some(since),
            } if now.saturating_duration_since(since) < cool_down => Err(since + cool_down),
            State::Open { .. } | State::HalfOpen { .. } => {
                self.state = State::HalfOpen { probe_since: Some(now) };
                Ok(Pass::Probe)
            }
        }
    }

    /// A call succeeded (or was refused for a reason that is not the provider's health).
    pub fn on_success(&mut self, now: Instant) {
        match self.state {
            State::HalfOpen { .. } => self.close(),
            State::Closed => {
                self.consecutive = 0;
                self.window.record(now, self.settings.window, false);
            }
            // A call that started before the circuit opened: the probe decides.
            State::Open { .. } => {}
        }
    }

    /// A call failed transiently.
    pub fn on_failure(&mut self, now: Instant) {
        match self.state {
            State::HalfOpen { .. } => self.open(now),
            State::Closed => {
                self.consecutive += 1;
                self.window.record(now, self.settings.window, true);
                let (calls, failures) = self.window.totals();
                let ratio_reached = calls >= self.settings.min_requests
                    && f64::from(failures) >= self.settings.failure_ratio * f64::from(calls);
                if self.consecutive >= self.settings.consecutive_failures || ratio_reached {
                    self.open(now);
                }
            }
            State::Open { .. } => {}
        }
    }

    /// A probe that was let through but not made (the rate limiter said wait): the next
    /// call may probe instead.
    pub fn release_probe(&mut self) {
        if let State::HalfOpen { probe_since: Some(_) } = self.state {
            self.state = State::HalfOpen { probe_since: None };
        }
    }

    /// When the circuit lets a call through next: `None` now, else the time.
    pub fn next_pass(&self, now: Instant) -> Option<Instant> {
        let cool_down = self.settings.cool_down;
        match self.state {
            State::Open { until } if now < until => Some(until),
            State::HalfOpen {
                probe_since: Some(since),
            } if now.saturating_duration_since(since) < cool_down => Some(since + cool_down),
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.settings.cool_down,
        };
        self.consecutive = 0;
        self.window = Window::default();
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.consecutive = 0;
        self.window = Window::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(30);

    fn breaker(consecutive_failures: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            consecutive_failures,
            failure_ratio: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            cool_down: COOL,
        })
    }

    fn open_at(now: Instant) -> CircuitBreaker {
        let mut b = breaker(3);
        for _ in 0..3 {
            b.on_failure(now);
        }
        b
    }

    #[test]
    fn a_closed_circuit_lets_calls_through_and_stays_closed_below_the_threshold() {
        let (mut b, now) = (breaker(3), Instant::now());
        b.on_failure(now);
        b.on_failure(now);
        b.on_success(now);
        b.on_failure(now);
        b.on_failure(now);

        assert_eq!(b.try_pass(now), Ok(Pass::Call));
        assert_eq!(b.state(now), CircuitState::Closed);
    }

    #[test]
    fn consecutive_failures_open_the_circuit_for_the_cool_down() {
        let now = Instant::now();
        let mut b = open_at(now);

        assert_eq!(b.state(now), CircuitState::Open);
        assert_eq!(b.try_pass(now + COOL / 2), Err(now + COOL));
        assert_eq!(b.next_pass(now), Some(now + COOL));
    }

    #[test]
    fn a_failure_ratio_over_the_window_opens_the_circuit() {
        let (mut b, now) = (breaker(100), Instant::now());
        // 5 failures among 10 calls, never 100 in a row: ratio 0.5 with the minimum count.
        for i in 0..9 {
            if i % 2 == 0 {
                b.on_failure(now);
            } else {
                b.on_success(now);
            }
        }
        assert_eq!(b.state(now), CircuitState::Closed, "9 calls are below the minimum");

        b.on_failure(now);

        assert_eq!(b.state(now), CircuitState::Open);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let (mut b, now) = (breaker(100), Instant::now());
        for _ in 0..9 {
            b.on_failure(now);
        }

        let later = now + Duration::from_secs(11);
        for _ in 0..9 {
            b.on_success(later);
        }
        b.on_failure(later);

        assert_eq!(b.state(later), CircuitState::Closed);
    }

    #[test]
    fn after_the_cool_down_exactly_one_probe_goes_through() {
        let now = Instant::now();
        let mut b = open_at(now);
        let after = now + COOL;

        assert_eq!(b.try_pass(after), Ok(Pass::Probe));
        assert_eq!(b.state(after), CircuitState::HalfOpen);
        assert_eq!(b.try_pass(after), Err(after + COOL));
        assert_eq!(b.try_pass(after + Duration::from_secs(1)), Err(after + COOL));
    }

    #[test]
    fn a_successful_probe_closes_the_circuit() {
        let now = Instant::now();
        let mut b = open_at(now);
        let after = now + COOL;
        b.try_pass(after).unwrap();

        b.on_success(after);

        assert_eq!(b.state(after), CircuitState::Closed);
        assert_eq!(b.try_pass(after), Ok(Pass::Call));
        // The count starts again: two failures do not reopen a circuit with a threshold of 3.
        b.on_failure(after);
        b.on_failure(after);
        assert_eq!(b.state(after), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_for_another_cool_down() {
        let now = Instant::now();
        let mut b = open_at(now);
        let after = now + COOL;
        b.try_pass(after).unwrap();

        b.on_failure(after);

        assert_eq!(b.state(after), CircuitState::Open);
        assert_eq!(b.try_pass(after + COOL / 2), Err(after + COOL));
        assert_eq!(b.try_pass(after + COOL), Ok(Pass::Probe));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_a_cool_down() {
        let now = Instant::now();
        let mut b = open_at(now);
        let after = now + COOL;
        b.try_pass(after).unwrap();

        assert_eq!(b.try_pass(after + COOL), Ok(Pass::Probe));
    }

    #[test]
    fn a_released_probe_lets_the_next_call_probe() {
        let now = Instant::now();
        let mut b = open_at(now);
        let after = now + COOL;
        b.try_pass(after).unwrap();

        b.release_probe();

        assert_eq!(b.next_pass(after), None);
        assert_eq!(b.try_pass(after), Ok(Pass::Probe));
    }

    #[test]
    fn late_answers_of_calls_made_before_the_circuit_opened_change_nothing() {
        let now = Instant::now();
        let mut b = open_at(now);

        b.on_success(now);
        b.on_failure(now + Duration::from_secs(1));

        assert_eq!(b.try_pass(now + COOL), Ok(Pass::Probe));
    }
}
