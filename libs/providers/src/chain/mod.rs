//! A provider chain: an ordered list of providers that the worker sees as one
//! [`Provider`]. Each member has its circuit breaker and, optionally, its shared rate limit.
//!
//! A send goes to the first member whose circuit lets it through and whose rate limit has a
//! token within its bounded wait. A transient failure there moves the send to the next
//! member at once; only when every member failed or was skipped does the send fail, as a
//! transient failure with the earliest time any member may be tried again. A permanent
//! failure is returned at once: an address one provider refuses is bad everywhere.
//!
//! A member may take only some targets ([`ChainBuilder::member_for`]): a push chain sends a
//! device only to members of the provider it was registered with ([`Delivery::provider`]),
//! and, when that is not known, by the token's shape (a Web Push subscription only to
//! `webpush`, a OneSignal subscription id only to `onesignal`, any other token to `fcm`).
//! Members that do not take a target are passed over for it (their circuits untouched);
//! when none takes it, the target is refused (a recipient failure).

mod settings;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use async_trait::async_trait;
use notify_worker::provider::{Delivery, OutgoingMessage, Provider, ProviderFailure, ProviderReceipt};

pub use settings::{
    build_chain, build_email_chain, build_push_chain, ChainSettings, ChannelChainSettings, ChannelProvider,
    EmailChainSettings, EmailProviderSettings, PushChainSettings, PushProviderSettings,
};

/// Which targets a member takes (see [`ChainBuilder::member_for`]).
pub type Accepts = fn(&Delivery<'_>) -> bool;

/// Every target.
pub fn accepts_all(_: &Delivery<'_>) -> bool {
    true
}

/// Whether a member called `name` takes `delivery`: the device's provider when the delivery
/// names one, else what `by_shape` says of the token.
pub fn accepts_named(delivery: &Delivery<'_>, name: &str, by_shape: fn(&OutgoingMessage<'_>) -> bool) -> bool {
    match delivery.provider {
        Some(provider) => provider == name,
        None => by_shape(&delivery.message),
    }
}

use crate::{
    breaker::{BreakerSettings, CircuitBreaker, CircuitState, Clock, Pass, SystemClock},
    rate_limit::RateLimiter,
};

/// A circuit and the state last reported for it (metric and log), for one member.
struct Circuit {
    breaker: CircuitBreaker,
    reported: CircuitState,
}

struct Member {
    provider: Arc<dyn Provider>,
    circuit: Mutex<Circuit>,
    limiter: Option<RateLimiter>,
    accepts: Accepts,
}

/// Why a member did not deliver, and when it may be tried again (`None`: at once).
struct Miss {
    failure: ProviderFailure,
    next_try: Option<Instant>,
}

/// The end of one member's attempt.
enum Attempt {
    Delivered(ProviderReceipt),
    /// Transient, or skipped: try the next member.
    Next(Miss),
    /// Permanent for the message or the recipient: return it as it is.
    Stop(ProviderFailure),
}

/// Builds a [`ProviderChain`].
pub struct ChainBuilder {
    channel: &'static str,
    breaker: BreakerSettings,
    clock: Arc<dyn Clock>,
    members: Vec<(Arc<dyn Provider>, Option<RateLimiter>, Accepts)>,
}

impl ChainBuilder {
    /// The breaker settings of every member (default: [`BreakerSettings::default`]).
    pub fn breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = settings;
        self
    }

    /// The clock of the breakers (tests: a [`crate::breaker::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Appends a member that takes every target, with its rate limiter if it has one.
    pub fn member(self, provider: Arc<dyn Provider>, limiter: Option<RateLimiter>) -> Self {
        self.member_for(provider, limiter, accepts_all)
    }

    /// Appends a member that takes only the targets `accepts` says it can deliver to.
    pub fn member_for(mut self, provider: Arc<dyn Provider>, limiter: Option<RateLimiter>, accepts: Accepts) -> Self {
        self.members.push((provider, limiter, accepts));
        self
    }

    pub fn build(self) -> ProviderChain {
        let members = self
            .members
            .into_iter()
            .map(|(provider, limiter, accepts)| {
                metrics::gauge!("provider_circuit_state", "channel" => self.channel, "provider" => provider.name())
                    .set(CircuitState::Closed as u8 as f64);
                Member {
                    provider,
                    circuit: Mutex::new(Circuit {
                        breaker: CircuitBreaker::new(self.breaker.clone()),
                        reported: CircuitState::Closed,
                    }),
                    limiter,
                    accepts,
                }
            })
            .collect();
        ProviderChain {
            channel: self.channel,
            members,
            clock: self.clock,
        }
    }
}

/// Ordered providers of one channel, with failover; see the module documentation.
pub struct ProviderChain {
    channel: &'static str,
    members: Vec<Member>,
    clock: Arc<dyn Clock>,
}

impl ProviderChain {
    /// A chain for `channel` (`email`, `push`: the metric label).
    pub fn builder(channel: &'static str) -> ChainBuilder {
        ChainBuilder {
            channel,
            breaker: BreakerSettings::default(),
            clock: Arc::new(SystemClock),
            members: Vec::new(),
        }
    }

    /// The members' names, in order.
    pub fn providers(&self) -> Vec<&'static str> {
        self.members.iter().map(|m| m.provider.name()).collect()
    }

    /// Every member's circuit is open: nothing can be sent before
    /// [`Provider::unavailable_until`].
    pub fn all_open(&self) -> bool {
        self.unavailable_until().is_some()
    }

    /// The state of one member's circuit now.
    pub fn circuit_state(&self, provider: &str) -> Option<CircuitState> {
        let now = self.clock.now();
        self.members
            .iter()
            .find(|m| m.provider.name() == provider)
            .map(|m| lock(&m.circuit).breaker.state(now))
    }

    fn with_circuit<T>(&self, member: &Member, f: impl FnOnce(&mut CircuitBreaker, Instant) -> T) -> T {
        let now = self.clock.now();
        let mut circuit = lock(&member.circuit);
        let out = f(&mut circuit.breaker, now);
        let state = circuit.breaker.state(now);
        if state != circuit.reported {
            let provider = member.provider.name();
            tracing::warn!(
                channel = self.channel,
                provider,
                from = circuit.reported.as_str(),
                to = state.as_str(),
                "provider circuit changed state"
            );
            metrics::gauge!("provider_circuit_state", "channel" => self.channel, "provider" => provider)
                .set(state as u8 as f64);
            circuit.reported = state;
        }
        out
    }

    /// One member's attempt: its circuit, its rate limit, its provider.
    async fn attempt(&self, member: &Member, delivery: &Delivery<'_>) -> Attempt {
        let name = member.provider.name();
        let pass = match self.with_circuit(member, |b, now| b.try_pass(now)) {
            Ok(pass) => pass,
            Err(until) => {
                return Attempt::Next(Miss {
                    failure: ProviderFailure::transient(format!("{name}: circuit open")),
                    next_try: Some(until),
                })
            }
        };
        if let Some(limiter) = &member.limiter {
            if let Err(wait) = limiter.acquire().await {
                if pass == Pass::Probe {
                    self.with_circuit(member, |b, _| b.release_probe());
                }
                return Attempt::Next(Miss {
                    failure: ProviderFailure::transient(format!("{name}: rate limit, next token in {wait:?}"))
                        .with_retry_after(Some(wait)),
                    next_try: Some(self.clock.now() + wait),
                });
            }
        }
        match member.provider.deliver(delivery).await {
            Ok(receipt) => {
                self.with_circuit(member, |b, now| b.on_success(now));
                Attempt::Delivered(ProviderReceipt {
                    provider: Some(name),
                    ..receipt
                })
            }
            Err(failure) if failure.is_transient() => {
                self.with_circuit(member, |b, now| b.on_failure(now));
                if failure.alert {
                    tracing::error!(alert = true, channel = self.channel, provider = name, error = %failure.message, "provider refused our credentials or configuration: an operator must act");
                    metrics::counter!("provider_alerts_total", "channel" => self.channel, "provider" => name)
                        .increment(1);
                }
                let next_try = failure.retry_after.map(|d| self.clock.now() + d);
                Attempt::Next(Miss { failure, next_try })
            }
            Err(failure) => {
                // The provider answered: it is up, whatever it thinks of this message.
                self.with_circuit(member, |b, now| b.on_success(now));
                Attempt::Stop(failure)
            }
        }
    }
}

fn lock(circuit: &Mutex<Circuit>) -> std::sync::MutexGuard<'_, Circuit> {
    circuit.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Provider for ProviderChain {
    fn name(&self) -> &'static str {
        match self.members.as_slice() {
            [only] => only.provider.name(),
            _ => "chain",
        }
    }

    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<ProviderReceipt, ProviderFailure> {
        let mut misses = Vec::with_capacity(self.members.len());
        let takers: Vec<&Member> = self.members.iter().filter(|m| (m.accepts)(delivery)).collect();
        if takers.is_empty() {
            return Err(ProviderFailure::recipient(format!(
                "no {} provider of this chain ({}) delivers to this target",
                self.channel,
                self.providers().join(", ")
            )));
        }
        for member in takers {
            match self.attempt(member, delivery).await {
                Attempt::Delivered(receipt) => return Ok(receipt),
                Attempt::Stop(failure) => return Err(failure),
                Attempt::Next(miss) => misses.push(miss),
            }
        }
        Err(combine(misses, self.clock.now()))
    }

    fn unavailable_until(&self) -> Option<Instant> {
        let now = self.clock.now();
        self.members
            .iter()
            .map(|m| lock(&m.circuit).breaker.next_pass(now))
            .try_fold(None, |earliest: Option<Instant>, next| {
                next.map(|t| Some(earliest.map_or(t, |e| e.min(t))))
            })
            .flatten()
    }
}

/// One transient failure for the whole chain: a single member's as it is; several joined,
/// with a retry-after only if every member named a time (the earliest of them).
fn combine(mut misses: Vec<Miss>, now: Instant) -> ProviderFailure {
    if misses.len() == 1 {
        let Miss { failure, next_try } = misses.remove(0);
        let wait = next_try.map(|t| t.saturating_duration_since(now));
        return ProviderFailure {
            retry_after: failure.retry_after.or(wait),
            ..failure
        };
    }
    let earliest = misses
        .iter()
        .map(|m| m.next_try)
        .try_fold(None, |acc: Option<Instant>, t| {
            t.map(|t| Some(acc.map_or(t, |a| a.min(t))))
        })
        .flatten();
    let message = misses
        .iter()
        .map(|m| m.failure.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let all_alerts = !misses.is_empty() && misses.iter().all(|m| m.failure.alert);
    ProviderFailure {
        alert: all_alerts,
        ..ProviderFailure::transient(if message.is_empty() {
            "no provider configured".to_string()
        } else {
            message
        })
    }
    .with_retry_after(earliest.map(|t| t.saturating_duration_since(now)))
}
