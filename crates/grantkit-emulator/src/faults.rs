//! Fault injection: what can go wrong on the wire, where, and when.
//!
//! A test adds [`FaultRule`]s to an emulator; every request first asks the plan whether a
//! fault applies to its endpoint. Latency rules add up; the first matching non-latency rule
//! replaces the response.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One thing that can go wrong with a response.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long before answering (then answer normally, unless another fault applies).
    Latency(Duration),
    /// A 5xx status with an HTML body, as a load balancer or crashed backend sends it.
    /// The join.me API adds the Mashery proxy headers.
    ServerError {
        /// The status code, e.g. 500, 502 or 503.
        status: u16,
    },
    /// 503 Service Unavailable with `Retry-After`, as a server in maintenance or a load
    /// balancer shedding load sends it.
    ServiceUnavailable {
        /// Seconds sent in `Retry-After`.
        retry_after_s: u32,
    },
    /// The provider's own backend-failure answer: Joind.in 500 `["Database error"]`,
    /// join.me token endpoint `server_error` with an `error_ticket_id`, join.me API 500
    /// `{"Message": …}`.
    BackendError,
    /// 429 Too Many Requests with `Retry-After`.
    TooManyRequests {
        /// Seconds sent in `Retry-After`.
        retry_after_s: u32,
    },
    /// Mashery's 403 over-QPS answer (`ERR_403_DEVELOPER_OVER_QPS`) with `Retry-After`.
    MasheryOverQps {
        /// Seconds sent in `Retry-After`.
        retry_after_s: u32,
    },
    /// 200 with a JSON content type and a body that is not valid JSON.
    MalformedJson,
    /// 200 whose declared `Content-Length` is longer than what is sent before the
    /// connection closes.
    TruncatedBody,
    /// 200 with a 10 MiB JSON body.
    OversizedBody,
    /// The connection is reset without any response.
    ConnectionReset,
}

/// The kind of a [`Fault`], without its parameters (used in the request log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// [`Fault::Latency`].
    Latency,
    /// [`Fault::ServerError`].
    ServerError,
    /// [`Fault::ServiceUnavailable`].
    ServiceUnavailable,
    /// [`Fault::BackendError`].
    BackendError,
    /// [`Fault::TooManyRequests`].
    TooManyRequests,
    /// [`Fault::MasheryOverQps`].
    MasheryOverQps,
    /// [`Fault::MalformedJson`].
    MalformedJson,
    /// [`Fault::TruncatedBody`].
    TruncatedBody,
    /// [`Fault::OversizedBody`].
    OversizedBody,
    /// [`Fault::ConnectionReset`].
    ConnectionReset,
}

impl Fault {
    /// This fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Latency(_) => FaultKind::Latency,
            Fault::ServerError { .. } => FaultKind::ServerError,
            Fault::ServiceUnavailable { .. } => FaultKind::ServiceUnavailable,
            Fault::BackendError => FaultKind::BackendError,
            Fault::TooManyRequests { .. } => FaultKind::TooManyRequests,
            Fault::MasheryOverQps { .. } => FaultKind::MasheryOverQps,
            Fault::MalformedJson => FaultKind::MalformedJson,
            Fault::TruncatedBody => FaultKind::TruncatedBody,
            Fault::OversizedBody => FaultKind::OversizedBody,
            Fault::ConnectionReset => FaultKind::ConnectionReset,
        }
    }
}

/// When a [`FaultRule`] fires.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// On the next `n` matching requests, then the rule is removed.
    Next(u32),
    /// On every `n`-th matching request (the `n`-th, `2n`-th, …).
    EveryNth(u32),
    /// On each matching request with probability `p`, drawn from a generator seeded with
    /// `seed` so that a run can be repeated.
    Probability {
        /// Probability in `0.0..=1.0`.
        p: f64,
        /// Seed of the rule's own random generator.
        seed: u64,
    },
    /// On every matching request until removed.
    Always,
}

/// A fault, the endpoint it applies to, and when it fires.
///
/// `E` is the emulator's endpoint enum ([`JoindinEndpoint`](crate::JoindinEndpoint) or
/// [`JoinMeEndpoint`](crate::JoinMeEndpoint)).
///
/// ```
/// use grantkit_emulator::{Fault, FaultRule, JoinMeEndpoint};
/// let rule = FaultRule::on(JoinMeEndpoint::Token, Fault::ServerError { status: 503 }).times(2);
/// # let _ = rule;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule<E> {
    pub(crate) target: Option<E>,
    pub(crate) method: Option<http::Method>,
    pub(crate) fault: Fault,
    pub(crate) trigger: Trigger,
    pub(crate) after_processing: bool,
}

impl<E> FaultRule<E> {
    /// A rule for one endpoint, firing once (change with [`times`](Self::times) and friends).
    pub fn on(endpoint: E, fault: Fault) -> Self {
        Self {
            target: Some(endpoint),
            method: None,
            fault,
            trigger: Trigger::Next(1),
            after_processing: false,
        }
    }

    /// A rule for every endpoint, firing once.
    pub fn on_any(fault: Fault) -> Self {
        Self {
            target: None,
            method: None,
            fault,
            trigger: Trigger::Next(1),
            after_processing: false,
        }
    }

    /// Only for requests with this method (a rule for the `POST` that creates a comment
    /// leaves the `GET`s around it alone). Requests with other methods neither fire nor
    /// consume the rule.
    pub fn for_method(mut self, method: http::Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Fire on the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.trigger = Trigger::Next(n);
        self
    }

    /// Fire on every `n`-th matching request.
    pub fn every_nth(mut self, n: u32) -> Self {
        self.trigger = Trigger::EveryNth(n.max(1));
        self
    }

    /// Fire with probability `p` (clamped to `0.0..=1.0`) from a generator seeded with `seed`.
    pub fn with_probability(mut self, p: f64, seed: u64) -> Self {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.trigger = Trigger::Probability { p, seed };
        self
    }

    /// Fire on every matching request until the rule is removed.
    pub fn always(mut self) -> Self {
        self.trigger = Trigger::Always;
        self
    }

    /// The endpoint the rule applies to (`None`: every endpoint).
    pub fn target(&self) -> Option<&E> {
        self.target.as_ref()
    }

    /// The method the rule applies to (`None`: every method).
    pub fn method(&self) -> Option<&http::Method> {
        self.method.as_ref()
    }

    /// The fault.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    /// When it fires.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// Whether the request is processed before the fault replaces the response.
    pub fn is_after_processing(&self) -> bool {
        self.after_processing
    }

    /// Let the emulator process the request first (state changes such as an issued or
    /// rotated token are committed) and only then replace the response with the fault:
    /// the "server did it, the client never heard" case.
    pub fn after_processing(mut self) -> Self {
        self.after_processing = true;
        self
    }
}

/// Identifies an injected rule so that it can be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FaultId(pub(crate) u64);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault#{}", self.0)
    }
}

struct ActiveRule<E> {
    id: FaultId,
    rule: FaultRule<E>,
    seen: u64,
    remaining: u32,
    rng: Option<StdRng>,
}

impl<E: fmt::Debug> fmt::Debug for ActiveRule<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveRule")
            .field("id", &self.id)
            .field("rule", &self.rule)
            .field("seen", &self.seen)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// What the plan decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub(crate) latency: Duration,
    pub(crate) fault: Option<Fault>,
    pub(crate) after_processing: bool,
}

/// The active fault rules of one emulator.
#[derive(Debug)]
pub(crate) struct FaultPlan<E> {
    inner: Mutex<PlanState<E>>,
}

#[derive(Debug)]
struct PlanState<E> {
    next_id: u64,
    rules: Vec<ActiveRule<E>>,
}

impl<E: Copy + PartialEq + fmt::Debug> FaultPlan<E> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(PlanState {
                next_id: 1,
                rules: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PlanState<E>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add(&self, rule: FaultRule<E>) -> FaultId {
        let mut state = self.lock();
        let id = FaultId(state.next_id);
        state.next_id += 1;
        let (remaining, rng) = match &rule.trigger {
            Trigger::Next(n) => (*n, None),
            Trigger::Probability { seed, .. } => (0, Some(StdRng::seed_from_u64(*seed))),
            _ => (0, None),
        };
        if !matches!(rule.trigger, Trigger::Next(0)) {
            state.rules.push(ActiveRule {
                id,
                rule,
                seen: 0,
                remaining,
                rng,
            });
        }
        id
    }

    pub(crate) fn remove(&self, id: FaultId) -> bool {
        let mut state = self.lock();
        let before = state.rules.len();
        state.rules.retain(|r| r.id != id);
        state.rules.len() != before
    }

    pub(crate) fn clear(&self) {
        self.lock().rules.clear();
    }

    pub(crate) fn active(&self) -> Vec<(FaultId, FaultRule<E>)> {
        self.lock()
            .rules
            .iter()
            .map(|r| (r.id, r.rule.clone()))
            .collect()
    }

    /// Decides the faults for one `method` request to `endpoint`, consuming one-shot
    /// rules.
    pub(crate) fn decide(&self, endpoint: E, method: &http::Method) -> Decision {
        let mut state = self.lock();
        let mut decision = Decision::default();
        for active in state.rules.iter_mut() {
            if active.rule.target.is_some_and(|t| t != endpoint)
                || active.rule.method.as_ref().is_some_and(|m| m != method)
            {
                continue;
            }
            let is_latency = matches!(active.rule.fault, Fault::Latency(_));
            // A terminal fault is already chosen: later terminal rules are not consumed.
            if !is_latency && decision.fault.is_some() {
                continue;
            }
            active.seen += 1;
            let fires = match &active.rule.trigger {
                Trigger::Next(_) => {
                    active.remaining = active.remaining.saturating_sub(1);
                    true
                }
                Trigger::EveryNth(n) => active.seen % u64::from((*n).max(1)) == 0,
                Trigger::Probability { p, .. } => {
                    active.rng.as_mut().is_some_and(|rng| rng.random_bool(*p))
                }
                Trigger::Always => true,
            };
            if !fires {
                continue;
            }
            match &active.rule.fault {
                Fault::Latency(d) => decision.latency += *d,
                other => {
                    decision.fault = Some(other.clone());
                    decision.after_processing = active.rule.after_processing;
                }
            }
        }
        state
            .rules
            .retain(|r| !matches!(r.rule.trigger, Trigger::Next(_)) || r.remaining > 0);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: http::Method = http::Method::GET;

    #[test]
    fn a_rule_for_one_method_leaves_the_others_alone() {
        let plan = FaultPlan::new();
        plan.add(FaultRule::on(1u8, Fault::ConnectionReset).for_method(http::Method::POST));
        assert!(plan.decide(1, &GET).fault.is_none(), "not fired on a GET");
        assert_eq!(
            plan.decide(1, &http::Method::POST).fault,
            Some(Fault::ConnectionReset)
        );
        assert!(plan.active().is_empty(), "consumed by the POST only");
    }

    #[test]
    fn next_n_fires_n_times_on_its_endpoint_only() {
        let plan = FaultPlan::new();
        plan.add(FaultRule::on(1u8, Fault::MalformedJson).times(2));
        assert!(plan.decide(2, &GET).fault.is_none());
        assert_eq!(plan.decide(1, &GET).fault, Some(Fault::MalformedJson));
        assert_eq!(plan.decide(1, &GET).fault, Some(Fault::MalformedJson));
        assert!(plan.decide(1, &GET).fault.is_none());
        assert!(plan.active().is_empty());
    }

    #[test]
    fn latency_adds_up_and_first_terminal_wins() {
        let plan = FaultPlan::new();
        plan.add(FaultRule::on_any(Fault::Latency(Duration::from_millis(5))).always());
        plan.add(FaultRule::on(1u8, Fault::ConnectionReset));
        plan.add(FaultRule::on(1u8, Fault::OversizedBody));
        plan.add(FaultRule::on_any(Fault::Latency(Duration::from_millis(7))));
        let d = plan.decide(1, &GET);
        assert_eq!(d.latency, Duration::from_millis(12));
        assert_eq!(d.fault, Some(Fault::ConnectionReset));
        // The second terminal rule was not consumed.
        assert_eq!(plan.decide(1, &GET).fault, Some(Fault::OversizedBody));
    }

    #[test]
    fn seeded_probability_repeats() {
        let run = || {
            let plan = FaultPlan::new();
            plan.add(FaultRule::on_any(Fault::MalformedJson).with_probability(0.5, 42));
            (0..64)
                .map(|_| plan.decide(0u8, &GET).fault.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|f| *f) && a.iter().any(|f| !*f));
    }

    #[test]
    fn every_nth_and_removal() {
        let plan = FaultPlan::new();
        let id = plan.add(FaultRule::on_any(Fault::MalformedJson).every_nth(3));
        let fired: Vec<bool> = (0..6)
            .map(|_| plan.decide(0u8, &GET).fault.is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
        assert!(plan.remove(id));
        assert!(!plan.remove(id));
    }
}
