//! Reading the simulator's `/_sim/stats`.

use serde_json::Value;

/// Calls the provider answered for `operation` (`create`, `get`, `delete`, `extend`,
/// `retrieve_sessions`), whatever the status.
pub fn provider_calls(stats: &Value, operation: &str) -> u64 {
    stats["apiRequests"][operation]
        .as_object()
        .map_or(0, |by_status| {
            by_status.values().filter_map(Value::as_u64).sum()
        })
}
