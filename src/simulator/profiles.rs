//! The built-in QoS profile table the simulator answers with.
//!
//! Real providers publish their profiles through the separate qos-profiles API; the simulator has
//! a small fixed table instead, enough to exercise every profile rule of the QoD API: the four
//! CAMARA sample names, Nokia's `DOWNLINK_*_UPLINK_*` names, a short-lived profile (`QOS_E`, so
//! duration limits and extension capping are easy to reach) and two profiles that exist but may
//! not be used (422 `QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE`).

/// Lifecycle status of a profile, as the qos-profiles API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileStatus {
    Active,
    Inactive,
    Deprecated,
}

impl ProfileStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
            Self::Deprecated => "DEPRECATED",
        }
    }
}

/// One QoS profile: its name, status and the session durations it allows (seconds, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QosProfile {
    pub name: &'static str,
    pub status: ProfileStatus,
    pub min_duration: u32,
    pub max_duration: u32,
}

const DAY: u32 = 86_400;

const fn active(name: &'static str, max_duration: u32) -> QosProfile {
    QosProfile {
        name,
        status: ProfileStatus::Active,
        min_duration: 1,
        max_duration,
    }
}

/// Every profile the simulator knows.
pub const PROFILES: &[QosProfile] = &[
    // Low latency for real-time traffic, sold in short slots: sessions up to one hour.
    active("QOS_E", 3_600),
    active("QOS_S", DAY),
    active("QOS_M", DAY),
    active("QOS_L", DAY),
    active("DOWNLINK_S_UPLINK_S", DAY),
    active("DOWNLINK_M_UPLINK_M", DAY),
    active("DOWNLINK_M_UPLINK_L", DAY),
    active("DOWNLINK_L_UPLINK_L", DAY),
    QosProfile {
        name: "QOS_LEGACY",
        status: ProfileStatus::Deprecated,
        min_duration: 1,
        max_duration: DAY,
    },
    QosProfile {
        name: "QOS_MAINTENANCE",
        status: ProfileStatus::Inactive,
        min_duration: 1,
        max_duration: DAY,
    },
];

/// The profile called `name` (case-sensitive, as profile names are on the wire).
pub fn find(name: &str) -> Option<&'static QosProfile> {
    PROFILES.iter().find(|profile| profile.name == name)
}

/// The names of the profiles that can be used for new sessions, for error messages.
pub fn usable_names() -> Vec<&'static str> {
    PROFILES
        .iter()
        .filter(|profile| profile.status == ProfileStatus::Active)
        .map(|profile| profile.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camara_sample_profiles_exist_and_are_active() {
        for name in ["QOS_E", "QOS_S", "QOS_M", "QOS_L"] {
            let profile = find(name).unwrap();
            assert_eq!(profile.status, ProfileStatus::Active);
            assert!(profile.min_duration <= profile.max_duration);
        }
        assert!(find("qos_l").is_none(), "names are case-sensitive");
    }

    #[test]
    fn unusable_profiles_are_not_offered() {
        let names = usable_names();
        assert!(!names.contains(&"QOS_LEGACY"));
        assert!(!names.contains(&"QOS_MAINTENANCE"));
        assert!(names.contains(&"DOWNLINK_M_UPLINK_L"));
    }
}
