//! The QoS profiles the simulator offers: served by the QoS Profiles API (`profile_api`) and
//! enforced by the QoD API (unknown and non-ACTIVE profiles refused, durations checked).
//!
//! The table starts as the built-in set below and can be changed at run time through
//! `/_sim/profiles` (a provider adding, retiring or deprecating a profile); a reset restores it.
//! The built-in set exercises every profile rule of the QoD API: the four CAMARA sample names,
//! Nokia's `DOWNLINK_*_UPLINK_*` names, a short-lived profile (`QOS_E`, so duration limits and
//! extension capping are easy to reach) and two profiles that exist but may not be used (422
//! `QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE`). Their figures are in assorted units, so a
//! client reading them exercises its unit conversions.
//!
//! Each profile is kept in its wire form, which the QoS Profiles API answers verbatim; the
//! session limits are read from it with the operator's own conversions ([`crate::qod::profiles`]).

use std::sync::Arc;

use crate::qod::profiles::{self as qod_profiles, ProfileStatus, RateUnit, TimeUnit, wire};

/// The longest duration the QoD API can express (`format: int32`).
const INT32_MAX: u32 = i32::MAX.unsigned_abs();

/// One profile: its wire form and the session durations it allows (seconds, inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QosProfile {
    pub wire: wire::QosProfile,
    pub min_duration: u32,
    pub max_duration: u32,
}

impl QosProfile {
    pub fn name(&self) -> &str {
        &self.wire.name
    }

    pub fn status(&self) -> &ProfileStatus {
        &self.wire.status
    }

    /// Checks a profile given at run time, so every answer of the QoS Profiles API stays valid
    /// against the spec, and reads its session limits (1 s and the int32 maximum when absent).
    pub fn from_wire(profile: wire::QosProfile) -> Result<Self, String> {
        if !qod_profiles::valid_profile_name(&profile.name) {
            return Err(format!(
                "name: `{}` does not match ^[a-zA-Z0-9_.-]+$ (3 to 256 characters)",
                profile.name
            ));
        }
        if let ProfileStatus::Other(word) = &profile.status {
            return Err(format!(
                "status: `{word}` is not ACTIVE, INACTIVE or DEPRECATED"
            ));
        }
        for (field, rate) in [
            ("targetMinUpstreamRate", &profile.target_min_upstream_rate),
            ("maxUpstreamRate", &profile.max_upstream_rate),
            ("maxUpstreamBurstRate", &profile.max_upstream_burst_rate),
            (
                "targetMinDownstreamRate",
                &profile.target_min_downstream_rate,
            ),
            ("maxDownstreamRate", &profile.max_downstream_rate),
            ("maxDownstreamBurstRate", &profile.max_downstream_burst_rate),
        ] {
            if let Some(rate) = rate {
                check_figure(
                    field,
                    rate.value,
                    0..=1024,
                    rate.unit.as_ref().map(|u| u.bits_per_second().is_some()),
                )?;
            }
        }
        for (field, span) in [
            ("minDuration", &profile.min_duration),
            ("maxDuration", &profile.max_duration),
            ("packetDelayBudget", &profile.packet_delay_budget),
            ("jitter", &profile.jitter),
        ] {
            if let Some(span) = span {
                let known = span.unit.as_ref().map(|u| !matches!(u, TimeUnit::Other(_)));
                check_figure(field, span.value, 1..=i64::from(i32::MAX), known)?;
            }
        }
        check_figure("priority", profile.priority, 1..=100, None)?;
        check_figure(
            "packetErrorLossRate",
            profile.packet_error_loss_rate,
            1..=10,
            None,
        )?;
        check_word(
            "l4sQueueType",
            profile.l4s_queue_type.as_deref(),
            L4S_QUEUE_TYPES,
        )?;
        check_word(
            "serviceClass",
            profile.service_class.as_deref(),
            SERVICE_CLASSES,
        )?;
        let read = qod_profiles::QosProfile::from_wire(profile.clone());
        let seconds = |s: u64| u32::try_from(s).unwrap_or(INT32_MAX).min(INT32_MAX);
        let min_duration = read.min_duration_seconds.map_or(1, seconds).max(1);
        let max_duration = read.max_duration_seconds.map_or(INT32_MAX, seconds);
        if min_duration > max_duration {
            return Err(format!(
                "minDuration ({min_duration} s) exceeds maxDuration ({max_duration} s)"
            ));
        }
        Ok(Self {
            wire: profile,
            min_duration,
            max_duration,
        })
    }
}

const L4S_QUEUE_TYPES: &[&str] = &["non-l4s-queue", "l4s-queue", "mixed-queue"];
const SERVICE_CLASSES: &[&str] = &[
    "microsoft_voice",
    "microsoft_audio_video",
    "real_time_interactive",
    "multimedia_streaming",
    "broadcast_video",
    "low_latency_data",
    "high_throughput_data",
    "low_priority_data",
    "standard",
];

/// A number within `range` and, where the figure has one, a unit the spec lists.
fn check_figure(
    field: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    known_unit: Option<bool>,
) -> Result<(), String> {
    if let Some(value) = value
        && !range.contains(&value)
    {
        return Err(format!(
            "{field}: {value} is outside {}..={}",
            range.start(),
            range.end()
        ));
    }
    if known_unit == Some(false) {
        return Err(format!("{field}.unit: not a unit the spec lists"));
    }
    Ok(())
}

fn check_word(field: &str, word: Option<&str>, allowed: &[&str]) -> Result<(), String> {
    match word {
        Some(word) if !allowed.contains(&word) => Err(format!(
            "{field}: `{word}` is not one of {}",
            allowed.join(", ")
        )),
        _ => Ok(()),
    }
}

/// The profiles on offer, in the order they were added.
#[derive(Clone, Debug)]
pub struct Table {
    profiles: Vec<Arc<QosProfile>>,
}

impl Table {
    /// The built-in set.
    pub fn builtin() -> Self {
        Self {
            // Every built-in passes the checks (a test says so), so none is dropped here.
            profiles: OFFERS
                .iter()
                .filter_map(|offer| QosProfile::from_wire(offer.wire()).ok())
                .map(Arc::new)
                .collect(),
        }
    }

    pub fn all(&self) -> &[Arc<QosProfile>] {
        &self.profiles
    }

    /// The profile called `name` (case-sensitive, as profile names are on the wire).
    pub fn find(&self, name: &str) -> Option<Arc<QosProfile>> {
        self.profiles.iter().find(|p| p.name() == name).cloned()
    }

    /// The names of the profiles that can be used for new sessions, for error messages.
    pub fn usable_names(&self) -> Vec<&str> {
        self.profiles
            .iter()
            .filter(|p| *p.status() == ProfileStatus::Active)
            .map(|p| p.name())
            .collect()
    }

    /// Adds `profile`, or replaces the one of its name in place; true when it replaced one.
    /// Sessions already created keep the profile they were created with.
    pub fn put(&mut self, profile: QosProfile) -> bool {
        let profile = Arc::new(profile);
        match self
            .profiles
            .iter_mut()
            .find(|p| p.name() == profile.name())
        {
            Some(slot) => {
                *slot = profile;
                true
            }
            None => {
                self.profiles.push(profile);
                false
            }
        }
    }

    /// Removes the profile called `name`; false when there is none.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.profiles.len();
        self.profiles.retain(|p| p.name() != name);
        self.profiles.len() != before
    }
}

/// A built-in profile, compactly: rates as (value, unit), durations as (value, unit).
struct Offer {
    name: &'static str,
    status: ProfileStatus,
    description: &'static str,
    max_duration: (i64, TimeUnit),
    /// The target minimum rates are a fifth of these.
    max_down: (i64, RateUnit),
    max_up: (i64, RateUnit),
    latency_ms: i64,
    jitter_ms: i64,
    priority: i64,
}

impl Offer {
    fn wire(&self) -> wire::QosProfile {
        let rate = |(value, unit): &(i64, RateUnit)| Some(wire::Rate::new(*value, unit.clone()));
        let target =
            |(value, unit): &(i64, RateUnit)| Some(wire::Rate::new(value / 5, unit.clone()));
        let span = |value, unit| Some(wire::Duration::new(value, unit));
        let (max_value, max_unit) = &self.max_duration;
        wire::QosProfile {
            name: self.name.to_owned(),
            description: Some(self.description.to_owned()),
            status: self.status.clone(),
            target_min_upstream_rate: target(&self.max_up),
            max_upstream_rate: rate(&self.max_up),
            max_upstream_burst_rate: None,
            target_min_downstream_rate: target(&self.max_down),
            max_downstream_rate: rate(&self.max_down),
            max_downstream_burst_rate: None,
            min_duration: span(1, TimeUnit::Seconds),
            max_duration: span(*max_value, max_unit.clone()),
            priority: Some(self.priority),
            packet_delay_budget: span(self.latency_ms, TimeUnit::Milliseconds),
            jitter: span(self.jitter_ms, TimeUnit::Milliseconds),
            packet_error_loss_rate: Some(3),
            l4s_queue_type: None,
            service_class: None,
        }
    }
}

const DAY: (i64, TimeUnit) = (1, TimeUnit::Days);
const fn mbps(value: i64) -> (i64, RateUnit) {
    (value, RateUnit::Mbps)
}
const fn kbps(value: i64) -> (i64, RateUnit) {
    (value, RateUnit::Kbps)
}

/// Nokia's `DOWNLINK_<d>_UPLINK_<u>` profiles: S 5, M 50, L 200 Mbps.
const fn nokia(name: &'static str, down: i64, up: i64) -> Offer {
    Offer {
        name,
        status: ProfileStatus::Active,
        description: "Throughput profile (Network as Code naming)",
        max_duration: DAY,
        max_down: mbps(down),
        max_up: mbps(up),
        latency_ms: 100,
        jitter_ms: 30,
        priority: 50,
    }
}

/// Throughput for CAMARA's S/M/L samples and the two unusable profiles.
const fn throughput(
    name: &'static str,
    status: ProfileStatus,
    description: &'static str,
    down: (i64, RateUnit),
    up: (i64, RateUnit),
    priority: i64,
) -> Offer {
    Offer {
        name,
        status,
        description,
        max_duration: DAY,
        max_down: down,
        max_up: up,
        latency_ms: 100,
        jitter_ms: 30,
        priority,
    }
}

const OFFERS: &[Offer] = &[
    // Low latency for real-time traffic, sold in short slots: sessions up to one hour.
    Offer {
        name: "QOS_E",
        status: ProfileStatus::Active,
        description: "Low latency and jitter for real-time traffic, in slots of up to one hour",
        max_duration: (1, TimeUnit::Hours),
        max_down: mbps(10),
        max_up: mbps(5),
        latency_ms: 10,
        jitter_ms: 5,
        priority: 10,
    },
    throughput(
        "QOS_S",
        ProfileStatus::Active,
        "Small stable throughput",
        mbps(5),
        kbps(1000),
        40,
    ),
    throughput(
        "QOS_M",
        ProfileStatus::Active,
        "Medium stable throughput",
        mbps(50),
        mbps(20),
        30,
    ),
    throughput(
        "QOS_L",
        ProfileStatus::Active,
        "Large stable throughput",
        mbps(1000),
        mbps(200),
        20,
    ),
    nokia("DOWNLINK_S_UPLINK_S", 5, 5),
    nokia("DOWNLINK_M_UPLINK_M", 50, 50),
    nokia("DOWNLINK_M_UPLINK_L", 50, 200),
    nokia("DOWNLINK_L_UPLINK_L", 200, 200),
    throughput(
        "QOS_LEGACY",
        ProfileStatus::Deprecated,
        "Superseded by QOS_M; sessions using it keep running",
        mbps(20),
        mbps(10),
        60,
    ),
    throughput(
        "QOS_MAINTENANCE",
        ProfileStatus::Inactive,
        "Not available while the network is under maintenance",
        mbps(50),
        mbps(20),
        30,
    ),
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn camara_sample_profiles_exist_and_are_active() {
        let table = Table::builtin();
        for name in ["QOS_E", "QOS_S", "QOS_M", "QOS_L"] {
            let profile = table.find(name).unwrap();
            assert_eq!(*profile.status(), ProfileStatus::Active);
            assert!(profile.min_duration <= profile.max_duration);
        }
        assert_eq!(table.find("QOS_E").unwrap().max_duration, 3_600);
        assert_eq!(table.find("QOS_L").unwrap().max_duration, 86_400);
        assert!(table.find("qos_l").is_none(), "names are case-sensitive");
    }

    #[test]
    fn built_in_profiles_pass_the_run_time_checks() {
        for offer in OFFERS {
            QosProfile::from_wire(offer.wire()).unwrap();
        }
        assert_eq!(Table::builtin().all().len(), OFFERS.len());
    }

    #[test]
    fn unusable_profiles_are_not_offered() {
        let table = Table::builtin();
        let names = table.usable_names();
        assert!(!names.contains(&"QOS_LEGACY"));
        assert!(!names.contains(&"QOS_MAINTENANCE"));
        assert!(names.contains(&"DOWNLINK_M_UPLINK_L"));
    }

    fn wire(value: serde_json::Value) -> wire::QosProfile {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn run_time_profiles_are_checked_and_their_limits_read() {
        let checked = QosProfile::from_wire(wire(json!({
            "name": "QOS_NEW", "status": "ACTIVE",
            "minDuration": {"value": 2, "unit": "Minutes"},
            "maxDuration": {"value": 90, "unit": "Minutes"},
        })))
        .unwrap();
        assert_eq!((checked.min_duration, checked.max_duration), (120, 5_400));
        let open =
            QosProfile::from_wire(wire(json!({"name": "QOS_OPEN", "status": "ACTIVE"}))).unwrap();
        assert_eq!((open.min_duration, open.max_duration), (1, INT32_MAX));
        for bad in [
            json!({"name": "Q", "status": "ACTIVE"}),
            json!({"name": "QOS_X", "status": "RETIRED"}),
            json!({"name": "QOS_X", "status": "ACTIVE", "maxDownstreamRate": {"value": 2000, "unit": "Mbps"}}),
            json!({"name": "QOS_X", "status": "ACTIVE", "maxDownstreamRate": {"value": 2, "unit": "Pbps"}}),
            json!({"name": "QOS_X", "status": "ACTIVE", "jitter": {"value": 0, "unit": "Milliseconds"}}),
            json!({"name": "QOS_X", "status": "ACTIVE", "maxDuration": {"value": 1, "unit": "Weeks"}}),
            json!({"name": "QOS_X", "status": "ACTIVE", "priority": 0}),
            json!({"name": "QOS_X", "status": "ACTIVE", "serviceClass": "gold"}),
            json!({"name": "QOS_X", "status": "ACTIVE",
                "minDuration": {"value": 2, "unit": "Hours"}, "maxDuration": {"value": 1, "unit": "Hours"}}),
        ] {
            assert!(QosProfile::from_wire(wire(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_adds_replaces_and_removes() {
        let mut table = Table::builtin();
        let count = table.all().len();
        let new =
            QosProfile::from_wire(wire(json!({"name": "QOS_NEW", "status": "ACTIVE"}))).unwrap();
        assert!(!table.put(new.clone()));
        assert!(table.usable_names().contains(&"QOS_NEW"));
        let mut deprecated = new;
        deprecated.wire.status = ProfileStatus::Deprecated;
        assert!(table.put(deprecated));
        assert_eq!(table.all().len(), count + 1);
        assert!(!table.usable_names().contains(&"QOS_NEW"));
        assert!(table.remove("QOS_NEW"));
        assert!(!table.remove("QOS_NEW"));
        assert_eq!(table.all().len(), count);
    }
}
