//! The control API both emulators share: addresses, clock, faults, counters, the request
//! log and shutdown. Generated per emulator by a macro so each keeps its own endpoint type.

/// Implements the shared control methods on an emulator type with fields
/// `server: ServerHandle` and `app: Arc<App>` (whose `shared()` gives counters and faults).
macro_rules! control_api {
    ($emulator:ty, $endpoint:ty) => {
        impl $emulator {
            /// The socket address the emulator listens on.
            pub fn addr(&self) -> std::net::SocketAddr {
                self.server.addr()
            }

            /// `http://127.0.0.1:<port>`: the emulator's base URL, without a trailing slash.
            pub fn base_url(&self) -> String {
                format!("http://{}", self.server.addr())
            }

            /// The emulator's clock; advance it instead of sleeping.
            pub fn clock(&self) -> &$crate::EmulatorClock {
                &self.app.shared().clock
            }

            /// Adds a fault rule and returns its id.
            pub fn inject(&self, rule: $crate::FaultRule<$endpoint>) -> $crate::FaultId {
                self.app.shared().faults.add(rule)
            }

            /// Removes a fault rule; `false` when it had already fired out or was removed.
            pub fn remove_fault(&self, id: $crate::FaultId) -> bool {
                self.app.shared().faults.remove(id)
            }

            /// Removes every fault rule.
            pub fn clear_faults(&self) {
                self.app.shared().faults.clear()
            }

            /// The fault rules still active, in the order they are evaluated.
            pub fn active_faults(&self) -> Vec<($crate::FaultId, $crate::FaultRule<$endpoint>)> {
                self.app.shared().faults.active()
            }

            /// A snapshot of the request counters.
            pub fn counters(&self) -> $crate::Counters<$endpoint> {
                self.app.shared().telemetry.counters()
            }

            /// Requests received by `endpoint` so far.
            pub fn count(&self, endpoint: $endpoint) -> u64 {
                self.app.shared().telemetry.counters().endpoint(endpoint)
            }

            /// The request log (method, path, status, fault; never query strings, headers or
            /// bodies), oldest first. Keeps the last 10,000 requests.
            pub fn requests(&self) -> Vec<$crate::RequestRecord<$endpoint>> {
                self.app.shared().telemetry.log()
            }

            /// Clears the counters and the request log.
            pub fn reset_counters(&self) {
                self.app.shared().telemetry.reset()
            }

            /// Stops the server: no new connections, open ones are closed, and the server
            /// thread is joined. Dropping the emulator does the same.
            pub fn shutdown(mut self) {
                self.server.shutdown();
            }
        }
    };
}

pub(crate) use control_api;
