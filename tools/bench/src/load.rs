//! The open-loop load generator.
//!
//! Request `i` is due at `t0 + i / rate`, whether or not earlier requests have been answered
//! (a closed loop would slow down with the server and hide its queueing: *coordinated
//! omission*). Latency is measured from the request's *due* time, so time spent waiting
//! behind a slow server — or behind a late generator — is counted. At most `max_in_flight`
//! requests are open at once; a request due while that many are open is not sent and counts
//! as a `dropped` error, so the schedule never stretches.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::{sync::Semaphore, time::Instant};

use crate::plan::Step;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// A histogram of microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// Records `d` (saturating at the histogram's top).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    /// From durations in milliseconds (e.g. timestamps read back from the database).
    pub fn of_millis(values: impl IntoIterator<Item = f64>) -> Self {
        let mut h = histogram();
        for v in values {
            record(&mut h, Duration::from_secs_f64(v.max(0.0) / 1000.0));
        }
        Self::of(&h)
    }
}

/// What one open-loop run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub offered_rate: u32,
    pub secs: f64,
    /// Requests due.
    pub scheduled: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Failures by kind (`dropped`, `timeout`, `http 503`, …), dropped included.
    pub errors: BTreeMap<String, u64>,
    /// Successes per second from the first due time to the last answer.
    pub accepted_per_s: f64,
    /// From the first due time to the last answer.
    pub elapsed_s: f64,
    /// Due time → answer, successes only.
    pub latency: Latency,
    /// Largest delay between a request's due time and its start (generator lateness).
    pub max_start_lag_ms: f64,
}

impl LoadResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    last_done: Option<Instant>,
    max_start_lag: Duration,
}

/// Runs `step` open-loop: `request(i)` is called at its due time (in a task of its own) and
/// answers `Ok` or an error kind. Returns when every sent request has finished; `request`
/// must bound its own duration (a client timeout).
pub async fn open_loop<F, Fut>(step: Step, max_in_flight: usize, request: F) -> LoadResult
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let total = step.total();
    let rate = f64::from(step.rate.max(1));
    let in_flight = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let hist = Arc::new(Mutex::new(histogram()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let t0 = Instant::now() + Duration::from_millis(20);
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let lag = Instant::now().saturating_duration_since(due);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let mut t = tally.lock().unwrap_or_else(PoisonError::into_inner);
            *t.errors.entry("dropped".into()).or_default() += 1;
            continue;
        };
        let fut = request(i);
        let (hist, tally) = (hist.clone(), tally.clone());
        tokio::spawn(async move {
            let outcome = fut.await;
            let done = Instant::now();
            let mut t = tally.lock().unwrap_or_else(PoisonError::into_inner);
            t.max_start_lag = t.max_start_lag.max(lag);
            t.last_done = Some(t.last_done.map_or(done, |l| l.max(done)));
            match outcome {
                Ok(()) => {
                    t.ok += 1;
                    drop(t);
                    record(&mut hist.lock().unwrap_or_else(PoisonError::into_inner), done - due);
                }
                Err(kind) => *t.errors.entry(kind).or_default() += 1,
            }
            drop(permit);
        });
    }
    // Every permit back = every request finished.
    let all = u32::try_from(max_in_flight.max(1)).unwrap_or(u32::MAX);
    let _ = in_flight.acquire_many(all).await;
    let t = tally.lock().unwrap_or_else(PoisonError::into_inner);
    let end = t.last_done.unwrap_or_else(Instant::now).max(t0);
    let elapsed = (end - t0).as_secs_f64().max(1e-3);
    let h = hist.lock().unwrap_or_else(PoisonError::into_inner);
    LoadResult {
        offered_rate: step.rate,
        secs: step.secs,
        scheduled: total,
        ok: t.ok,
        errors: t.errors.clone(),
        accepted_per_s: t.ok as f64 / elapsed,
        elapsed_s: elapsed,
        latency: Latency::of(&h),
        max_start_lag_ms: t.max_start_lag.as_secs_f64() * 1000.0,
    }
}

/// The error kind of a failed HTTP request, for [`LoadResult::errors`].
pub fn http_error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_due_request_is_counted_once() {
        let result = open_loop(Step::new(200, 0.25), 8, |i| async move {
            if i % 10 == 0 {
                Err("odd".into())
            } else {
                Ok(())
            }
        })
        .await;

        assert_eq!(result.scheduled, 50);
        assert_eq!(result.ok, 45);
        assert_eq!(result.errors.get("odd"), Some(&5));
        assert_eq!(result.latency.count, 45);
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_bound_are_dropped_not_delayed() {
        let result = open_loop(Step::new(100, 0.1), 1, |_| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        })
        .await;

        assert_eq!(result.ok, 1);
        assert_eq!(result.errors.get("dropped"), Some(&9));
    }

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let l = Latency::of_millis((1..=100).map(f64::from));
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
    }
}
