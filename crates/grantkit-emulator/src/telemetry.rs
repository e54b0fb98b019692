//! Counters and the request log.
//!
//! The log records method, path (never the query string), status and any injected fault:
//! nothing that can hold a token, password, client secret or code.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::faults::FaultKind;

/// The most log entries kept; older ones are dropped first.
const LOG_CAPACITY: usize = 10_000;
/// Paths longer than this are cut in the log.
const MAX_LOGGED_PATH: usize = 256;

/// One request as the emulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord<E> {
    /// Sequence number, from 1, in arrival order.
    pub seq: u64,
    /// The endpoint the request was classified as.
    pub endpoint: E,
    /// HTTP method.
    pub method: String,
    /// Request path without the query string (cut at 256 bytes).
    pub path: String,
    /// Response status; `None` when the connection was reset without a response.
    pub status: Option<u16>,
    /// The fault that replaced or delayed the response, if any.
    pub fault: Option<FaultKind>,
    /// Emulator-clock time of arrival.
    pub at: SystemTime,
}

/// A snapshot of an emulator's request counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters<E: Eq + Hash> {
    /// All requests received (including those answered by a fault).
    pub total: u64,
    /// Requests per endpoint.
    pub by_endpoint: HashMap<E, u64>,
    /// Responses per status code (resets are not counted here).
    pub by_status: HashMap<u16, u64>,
    /// Requests answered (or dropped) by an injected fault, per kind.
    pub by_fault: HashMap<FaultKind, u64>,
}

impl<E: Eq + Hash + Copy> Counters<E> {
    /// Requests received by `endpoint`.
    pub fn endpoint(&self, endpoint: E) -> u64 {
        self.by_endpoint.get(&endpoint).copied().unwrap_or(0)
    }

    /// Responses sent with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct State<E: Eq + Hash> {
    next_seq: u64,
    counters: Counters<E>,
    log: VecDeque<RequestRecord<E>>,
}

/// Counters and log of one emulator.
#[derive(Debug)]
pub(crate) struct Telemetry<E: Eq + Hash> {
    inner: Mutex<State<E>>,
}

/// Cuts `path` to at most [`MAX_LOGGED_PATH`] bytes on a character boundary.
fn loggable_path(path: &str) -> String {
    if path.len() <= MAX_LOGGED_PATH {
        return path.to_owned();
    }
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

impl<E: Eq + Hash + Copy> Telemetry<E> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(State {
                next_seq: 1,
                counters: Counters {
                    total: 0,
                    by_endpoint: HashMap::new(),
                    by_status: HashMap::new(),
                    by_fault: HashMap::new(),
                },
                log: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<E>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an arriving request and returns its sequence number.
    pub(crate) fn arrived(&self, endpoint: E) -> u64 {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.counters.total += 1;
        *state.counters.by_endpoint.entry(endpoint).or_insert(0) += 1;
        seq
    }

    /// Records how a request was answered.
    pub(crate) fn answered(&self, mut record: RequestRecord<E>) {
        record.path = loggable_path(&record.path);
        let (status, fault) = (record.status, record.fault);
        let mut state = self.lock();
        if let Some(status) = status {
            *state.counters.by_status.entry(status).or_insert(0) += 1;
        }
        if let Some(fault) = fault {
            *state.counters.by_fault.entry(fault).or_insert(0) += 1;
        }
        if state.log.len() == LOG_CAPACITY {
            state.log.pop_front();
        }
        state.log.push_back(record);
    }

    pub(crate) fn counters(&self) -> Counters<E> {
        self.lock().counters.clone()
    }

    pub(crate) fn log(&self) -> Vec<RequestRecord<E>> {
        let mut log: Vec<_> = self.lock().log.iter().cloned().collect();
        log.sort_by_key(|r| r.seq);
        log
    }

    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        state.counters.total = 0;
        state.counters.by_endpoint.clear();
        state.counters.by_status.clear();
        state.counters.by_fault.clear();
        state.log.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_on_a_char_boundary() {
        let path = "é".repeat(300);
        let cut = loggable_path(&path);
        assert!(cut.len() <= MAX_LOGGED_PATH + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
