//! The `QosProfile` resource (`qod.dev/v1alpha1`, cluster-scoped, written by the operator
//! only): one per provider and QoS profile that provider's QoS Profiles API lists, so
//! `kubectl get qosprofiles` shows what can be bought where before a QodSession asks for it.
//! [`ProfileFigures`] are also what `QodSession.status.profile` shows of the profile a session
//! was created with.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::qod::profiles::QosProfile as ProviderProfile;

/// A QoS profile a provider offers, as its QoS Profiles API last described it. Written by
/// qod-operator (refreshed every --profile-refresh); edits are overwritten.
// Each printer column repeats `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "qod.dev",
    version = "v1alpha1",
    kind = "QosProfile",
    plural = "qosprofiles",
    shortname = "qosp",
    doc = "A QoS profile a QoD provider offers, as its CAMARA QoS Profiles API describes it. Written by qod-operator; read-only for everyone else.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Profile", type_ = "string", json_path = ".spec.profile"),
    printcolumn(name = "Status", type_ = "string", json_path = ".spec.status"),
    printcolumn(
        name = "Max-Down",
        type_ = "string",
        json_path = ".spec.maxDownstreamRate"
    ),
    printcolumn(name = "Max-Up", type_ = "string", json_path = ".spec.maxUpstreamRate"),
    printcolumn(
        name = "Latency",
        type_ = "string",
        json_path = ".spec.packetDelayBudget"
    ),
    printcolumn(
        name = "Jitter",
        type_ = "string",
        json_path = ".spec.jitter",
        priority = 1
    ),
    printcolumn(
        name = "Priority",
        type_ = "integer",
        json_path = ".spec.priority",
        priority = 1
    ),
    printcolumn(
        name = "Min-Duration",
        type_ = "integer",
        json_path = ".spec.minDurationSeconds"
    ),
    printcolumn(
        name = "Max-Duration",
        type_ = "integer",
        json_path = ".spec.maxDurationSeconds"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct QosProfileSpec {
    /// The provider offering it: `default` (the operator's flags), `ClusterQodProvider/<name>`
    /// or `QodProvider/<namespace>/<name>`, as QodSession.status.provider names providers.
    pub provider: String,
    /// The profile's name at the provider, as QodSession.spec.qosProfile names it.
    pub profile: String,
    /// ACTIVE (new sessions may use it), INACTIVE (none may now) or DEPRECATED (sessions using
    /// it keep running; no new session may use it).
    pub status: String,
    /// The provider's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The profile's figures.
    #[serde(flatten)]
    pub figures: ProfileFigures,
}

/// What a QoS profile promises, in units people read: rates such as `100 Mbps`, latency and
/// jitter such as `50ms`, durations in seconds (as QodSession.spec.duration). A figure the
/// provider does not state is absent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ProfileFigures {
    /// The most the network delivers to the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downstream_rate: Option<String>,
    /// The most the device may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upstream_rate: Option<String>,
    /// Short bursts to the device may reach this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downstream_burst_rate: Option<String>,
    /// Short bursts from the device may reach this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upstream_burst_rate: Option<String>,
    /// The rate to the device the network aims to keep at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_min_downstream_rate: Option<String>,
    /// The rate from the device the network aims to keep at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_min_upstream_rate: Option<String>,
    /// The one-way latency the network keeps packets below (CAMARA's packetDelayBudget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_delay_budget: Option<String>,
    /// The variation of latency the network keeps below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// The tolerated packet loss rate is 10 to the minus this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_error_loss_rate: Option<u32>,
    /// 1 (highest) to 100: which traffic goes first when the network is congested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The shortest session the provider creates with it, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration_seconds: Option<u64>,
    /// The longest session, extensions included, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
}

impl From<&ProviderProfile> for ProfileFigures {
    fn from(profile: &ProviderProfile) -> Self {
        let rate = |rate: Option<crate::qod::profiles::BitRate>| rate.map(|r| r.to_string());
        let span = |span: Option<std::time::Duration>| {
            span.map(|d| humantime::format_duration(d).to_string())
        };
        Self {
            max_downstream_rate: rate(profile.max_downstream_rate),
            max_upstream_rate: rate(profile.max_upstream_rate),
            max_downstream_burst_rate: rate(profile.max_downstream_burst_rate),
            max_upstream_burst_rate: rate(profile.max_upstream_burst_rate),
            target_min_downstream_rate: rate(profile.target_min_downstream_rate),
            target_min_upstream_rate: rate(profile.target_min_upstream_rate),
            packet_delay_budget: span(profile.packet_delay_budget),
            jitter: span(profile.jitter),
            packet_error_loss_rate: profile.packet_error_loss_rate,
            priority: profile.priority,
            min_duration_seconds: profile.min_duration_seconds,
            max_duration_seconds: profile.max_duration_seconds,
        }
    }
}

impl QosProfileSpec {
    /// The resource's spec for `profile` of the provider labelled `provider`.
    pub fn of(provider: &str, profile: &ProviderProfile) -> Self {
        Self {
            provider: provider.to_owned(),
            profile: profile.name.clone(),
            status: profile.status.to_string(),
            description: profile.description.clone(),
            figures: ProfileFigures::from(profile),
        }
    }
}

/// The profile a session was created with: its name and figures at that time (what was
/// bought).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SessionProfile {
    /// The profile's name.
    pub name: String,
    /// Its figures, as the provider's QoS Profiles API gave them.
    #[serde(flatten)]
    pub figures: ProfileFigures,
}

impl From<&ProviderProfile> for SessionProfile {
    fn from(profile: &ProviderProfile) -> Self {
        Self {
            name: profile.name.clone(),
            figures: ProfileFigures::from(profile),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::qod::profiles::{BitRate, ProfileStatus};

    fn profile() -> ProviderProfile {
        ProviderProfile {
            name: "QOS_E".into(),
            status: ProfileStatus::Active,
            description: Some("low latency".into()),
            target_min_upstream_rate: None,
            max_upstream_rate: Some(BitRate(5_000_000)),
            max_upstream_burst_rate: None,
            target_min_downstream_rate: None,
            max_downstream_rate: Some(BitRate(10_000_000)),
            max_downstream_burst_rate: None,
            min_duration_seconds: Some(60),
            max_duration_seconds: Some(3_600),
            priority: Some(10),
            packet_delay_budget: Some(Duration::from_millis(10)),
            jitter: Some(Duration::from_micros(500)),
            packet_error_loss_rate: None,
            l4s_queue_type: None,
            service_class: None,
        }
    }

    #[test]
    fn figures_read_as_people_write_them_and_absent_ones_stay_out() {
        let spec = QosProfileSpec::of("ClusterQodProvider/telco-a", &profile());
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({
                "provider": "ClusterQodProvider/telco-a",
                "profile": "QOS_E",
                "status": "ACTIVE",
                "description": "low latency",
                "maxDownstreamRate": "10 Mbps",
                "maxUpstreamRate": "5 Mbps",
                "packetDelayBudget": "10ms",
                "jitter": "500us",
                "priority": 10,
                "minDurationSeconds": 60,
                "maxDurationSeconds": 3600,
            })
        );
        let bought = SessionProfile::from(&profile());
        assert_eq!(bought.name, "QOS_E");
        assert_eq!(bought.figures, spec.figures);
    }
}
