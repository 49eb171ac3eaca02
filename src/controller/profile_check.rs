//! Whether a new session may be created with its profile, and for how long, from what the
//! provider's QoS Profiles API lists ([`crate::profiles::Verdict`]). Pure, so each rule has a
//! table test:
//!
//! - unknown or INACTIVE: no create, Ready=False `ProfileNotAvailable` (tried again when the
//!   profiles change);
//! - DEPRECATED: no create, Ready=False `ProfileDeprecated` (running sessions are untouched);
//! - `duration` below the profile's minimum: no create, Ready=False `Rejected` naming both;
//! - above its maximum: created for the maximum, with extensionCapped and why.

use std::sync::Arc;

use crate::{
    api::{QodSessionSpec, SessionProfile, conditions::reason},
    profiles::Verdict,
    qod::profiles::DurationFit,
};

/// What to do about a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Create the session for `duration` seconds.
    Create {
        duration: u32,
        /// Why `duration` is less than the spec asks (the profile's maximum).
        capped: Option<String>,
        /// The profile's figures, when its API listed it.
        profile: Option<Arc<SessionProfile>>,
    },
    /// Create nothing; `Ready` says why.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// The admission of a create for `spec` given what the provider's profiles say.
pub fn admit(spec: &QodSessionSpec, verdict: Verdict) -> Admission {
    let profile = match verdict {
        Verdict::Unchecked => {
            return Admission::Create {
                duration: spec.duration,
                capped: None,
                profile: None,
            };
        }
        Verdict::NotAvailable(why) => {
            return Admission::Refuse {
                reason: reason::PROFILE_NOT_AVAILABLE,
                message: why.to_string(),
            };
        }
        Verdict::Deprecated(profile) => {
            return Admission::Refuse {
                reason: reason::PROFILE_DEPRECATED,
                message: format!(
                    "QoS profile {} is DEPRECATED at the provider: no new session is created \
                     with it; choose another (see kubectl get qosprofiles)",
                    profile.name
                ),
            };
        }
        Verdict::Usable(profile) => profile,
    };
    let bought = Some(Arc::new(SessionProfile::from(&profile)));
    match profile.duration_fit(u64::from(spec.duration)) {
        DurationFit::Fits => Admission::Create {
            duration: spec.duration,
            capped: None,
            profile: bought,
        },
        DurationFit::BelowMinimum(minimum) => Admission::Refuse {
            reason: reason::REJECTED,
            message: format!(
                "spec.duration {} s is below the minimum of QoS profile {}: {minimum} s",
                spec.duration, profile.name
            ),
        },
        DurationFit::AboveMaximum(maximum) => Admission::Create {
            // Below spec.duration, which fits in u32.
            duration: u32::try_from(maximum).unwrap_or(spec.duration),
            capped: Some(format!(
                "spec.duration {} s is above the maximum of QoS profile {}: the session was \
                 created for {maximum} s{}",
                spec.duration,
                profile.name,
                if spec.auto_extend {
                    "; autoExtend creates a new one when it ends"
                } else {
                    ""
                }
            )),
            profile: bought,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        profiles::NotAvailable,
        qod::profiles::{ProfileStatus, QosProfile},
    };

    fn spec(duration: u32, auto_extend: bool) -> QodSessionSpec {
        serde_json::from_value(json!({
            "device": {"phoneNumber": "+36721601234567"},
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "qosProfile": "QOS_E", "duration": duration, "autoExtend": auto_extend,
        }))
        .unwrap()
    }

    fn profile(status: ProfileStatus, min: Option<u64>, max: Option<u64>) -> QosProfile {
        QosProfile {
            min_duration_seconds: min,
            max_duration_seconds: max,
            ..QosProfile::named("QOS_E", status)
        }
    }

    fn usable(min: Option<u64>, max: Option<u64>) -> Verdict {
        Verdict::Usable(profile(ProfileStatus::Active, min, max))
    }

    #[test]
    fn each_rule_in_a_table() {
        let refused = |reason: &'static str, needle: &'static str| {
            move |admission: &Admission| {
                matches!(admission, Admission::Refuse { reason: r, message }
                    if *r == reason && message.contains(needle))
            }
        };
        type Expected = Box<dyn Fn(&Admission) -> bool>;
        let cases: Vec<(&str, QodSessionSpec, Verdict, Expected)> = vec![
            (
                "no profiles API: as asked, nothing shown",
                spec(600, false),
                Verdict::Unchecked,
                Box::new(|a| {
                    *a == Admission::Create {
                        duration: 600,
                        capped: None,
                        profile: None,
                    }
                }),
            ),
            (
                "fits: as asked, with the figures bought",
                spec(600, false),
                usable(Some(60), Some(3_600)),
                Box::new(|a| {
                    matches!(a, Admission::Create { duration: 600, capped: None, profile: Some(p) }
                        if p.name == "QOS_E" && p.figures.max_duration_seconds == Some(3_600))
                }),
            ),
            (
                "at the limits: fits",
                spec(3_600, false),
                usable(Some(3_600), Some(3_600)),
                Box::new(|a| {
                    matches!(
                        a,
                        Admission::Create {
                            duration: 3_600,
                            capped: None,
                            ..
                        }
                    )
                }),
            ),
            (
                "below the minimum: Rejected naming both numbers",
                spec(30, false),
                usable(Some(60), None),
                Box::new(refused(
                    reason::REJECTED,
                    "spec.duration 30 s is below the minimum of QoS profile QOS_E: 60 s",
                )),
            ),
            (
                "above the maximum: created for the maximum, and why",
                spec(7_200, true),
                usable(None, Some(3_600)),
                Box::new(|a| {
                    matches!(a, Admission::Create { duration: 3_600, capped: Some(why), profile: Some(_) }
                        if why.contains("7200 s") && why.contains("3600 s") && why.contains("autoExtend"))
                }),
            ),
            (
                "deprecated: no new session",
                spec(600, false),
                Verdict::Deprecated(profile(ProfileStatus::Deprecated, None, None)),
                Box::new(refused(reason::PROFILE_DEPRECATED, "DEPRECATED")),
            ),
            (
                "unknown: not available",
                spec(600, false),
                Verdict::NotAvailable(NotAvailable::Unknown {
                    provider: "default".into(),
                    name: "QOS_E".into(),
                }),
                Box::new(refused(
                    reason::PROFILE_NOT_AVAILABLE,
                    "offers no QoS profile QOS_E",
                )),
            ),
        ];
        for (case, spec, verdict, expected) in cases {
            let admission = admit(&spec, verdict);
            assert!(expected(&admission), "{case}: {admission:?}");
        }
    }
}
