//! The emulator's clock: real time plus a test-controlled offset, or frozen.
//!
//! Every time-dependent behaviour of both emulators (authorization-code lifetime, token
//! staleness, the Expire Access propagation delay, the comment rate limit, token dates)
//! reads this clock, so a test moves time forward instead of sleeping.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock shared by an emulator and the test that drives it.
///
/// Cloning gives another handle to the same clock. By default it follows real time; tests
/// [`advance`](Self::advance) it, [`set`](Self::set) it, or [`freeze`](Self::freeze) it.
#[derive(Clone, Debug, Default)]
pub struct EmulatorClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug, Default)]
struct ClockState {
    /// Milliseconds added to real time while running.
    offset_ms: i128,
    /// Fixed time (milliseconds since the epoch) while frozen.
    frozen_at_ms: Option<i128>,
}

fn real_ms() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}

fn to_system_time(ms: i128) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs() as u64)
    }
}

fn from_system_time(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}

impl EmulatorClock {
    /// A clock that follows real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock frozen at `at`.
    pub fn frozen_at(at: SystemTime) -> Self {
        let clock = Self::default();
        clock.lock().frozen_at_ms = Some(from_system_time(at));
        clock
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        // The state is two integers: a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> i128 {
        let state = self.lock();
        state
            .frozen_at_ms
            .unwrap_or_else(|| real_ms() + state.offset_ms)
    }

    /// The emulator's current time.
    pub fn now(&self) -> SystemTime {
        to_system_time(self.now_ms())
    }

    /// The emulator's current time in whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.now_ms().div_euclid(1000) as i64
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        let by = by.as_millis() as i128;
        match state.frozen_at_ms.as_mut() {
            Some(frozen) => *frozen += by,
            None => state.offset_ms += by,
        }
    }

    /// Sets the clock to `at` (it keeps running from there unless frozen).
    pub fn set(&self, at: SystemTime) {
        let target = from_system_time(at);
        let mut state = self.lock();
        match state.frozen_at_ms.as_mut() {
            Some(frozen) => *frozen = target,
            None => state.offset_ms = target - real_ms(),
        }
    }

    /// Stops the clock at its current time; only [`advance`](Self::advance) and
    /// [`set`](Self::set) move it until [`resume`](Self::resume).
    pub fn freeze(&self) {
        let now = self.now_ms();
        self.lock().frozen_at_ms = Some(now);
    }

    /// Lets a frozen clock run again from where it stands.
    pub fn resume(&self) {
        let mut state = self.lock();
        if let Some(frozen) = state.frozen_at_ms.take() {
            state.offset_ms = frozen - real_ms();
        }
    }

    /// Whether the clock is frozen.
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen_at_ms.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_told() {
        let clock = EmulatorClock::frozen_at(UNIX_EPOCH + Duration::from_secs(1_000));
        assert_eq!(clock.unix_seconds(), 1_000);
        clock.advance(Duration::from_secs(61));
        assert_eq!(clock.unix_seconds(), 1_061);
        clock.set(UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(clock.unix_seconds(), 5);
    }

    #[test]
    fn running_clock_keeps_its_offset() {
        let clock = EmulatorClock::new();
        let before = clock.unix_seconds();
        clock.advance(Duration::from_secs(86_400));
        assert!(clock.unix_seconds() >= before + 86_400);
        clock.freeze();
        assert!(clock.is_frozen());
        let frozen = clock.unix_seconds();
        clock.resume();
        assert!(clock.unix_seconds() >= frozen);
    }
}
