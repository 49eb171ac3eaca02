//! The CAMARA QoS Profiles API (`specs/camara-qos-profiles-v1.1.0.yaml`, same wire in
//! v1.2.0-rc.3): which profiles a provider offers, their status and their figures.
//!
//! [`ProfileApi`] is what the operator needs; [`CamaraProfilesClient`] speaks it over the same
//! transport as the sessions client (credentials, `x-correlator`, error mapping, body limit,
//! timeouts), below its own base URL (`{apiRoot}/qos-profiles/v1`). Answers are read into the
//! version-neutral [`QosProfile`]: rates in bits per second, session durations in whole seconds,
//! latency and jitter as [`Duration`]s. Network as Code and CAMARA QoD before v0.11 have no such
//! API.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tracing::{instrument, warn};

use super::{
    Device,
    camara::{CamaraAuth, CamaraConfig, camara_transport, to_json},
    error::{Error, Operation},
    http::{Call, Timeouts, Transport},
    model::open_string_enum,
};

/// The API's base path below the provider's API root (the spec's `servers`).
pub const BASE_PATH: &str = "/qos-profiles/v1";

open_string_enum!(
    /// Lifecycle status of a profile.
    ProfileStatus {
        /// Can be used for new sessions.
        Active => "ACTIVE",
        /// Exists but cannot be used now.
        Inactive => "INACTIVE",
        /// Sessions using it keep running; new sessions cannot use it.
        Deprecated => "DEPRECATED",
    }
);

open_string_enum!(
    /// `RateUnitEnum`. The prefixes are decimal (network rates): 1 kbps = 1000 bps.
    RateUnit {
        Bps => "bps",
        Kbps => "kbps",
        Mbps => "Mbps",
        Gbps => "Gbps",
        Tbps => "Tbps",
    }
);

open_string_enum!(
    /// `TimeUnitEnum`.
    TimeUnit {
        Days => "Days",
        Hours => "Hours",
        Minutes => "Minutes",
        Seconds => "Seconds",
        Milliseconds => "Milliseconds",
        Microseconds => "Microseconds",
        Nanoseconds => "Nanoseconds",
    }
);

impl RateUnit {
    /// Bits per second of one unit; `None` for a unit the spec does not list.
    pub fn bits_per_second(&self) -> Option<u64> {
        match self {
            Self::Bps => Some(1),
            Self::Kbps => Some(1_000),
            Self::Mbps => Some(1_000_000),
            Self::Gbps => Some(1_000_000_000),
            Self::Tbps => Some(1_000_000_000_000),
            Self::Other(_) => None,
        }
    }
}

impl TimeUnit {
    /// `value` of this unit; `None` for an unknown unit or a span beyond `Duration`.
    pub fn span(&self, value: u64) -> Option<Duration> {
        let seconds = |factor: u64| value.checked_mul(factor).map(Duration::from_secs);
        match self {
            Self::Days => seconds(86_400),
            Self::Hours => seconds(3_600),
            Self::Minutes => seconds(60),
            Self::Seconds => seconds(1),
            Self::Milliseconds => Some(Duration::from_millis(value)),
            Self::Microseconds => Some(Duration::from_micros(value)),
            Self::Nanoseconds => Some(Duration::from_nanos(value)),
            Self::Other(_) => None,
        }
    }
}

/// The wire shapes of the QoS Profiles API, named as the spec names them.
///
/// Answers are read leniently, as the sessions models are: only `name` and `status` must be
/// well formed; a malformed optional figure reads as absent instead of failing the whole list.
pub mod wire {
    use serde::{Deserialize, Serialize};

    use super::{ProfileStatus, RateUnit, TimeUnit};
    use crate::qod::{Device, model::lenient};

    /// A value and its unit, as `Rate` and `Duration` write them (both properties optional
    /// in the spec).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    // Without this serde asks `U: Default` because of the fields' `default`.
    #[serde(bound(deserialize = "U: Deserialize<'de>"))]
    pub struct Quantity<U> {
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub value: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub unit: Option<U>,
    }

    impl<U> Quantity<U> {
        pub fn new(value: i64, unit: U) -> Self {
            Self {
                value: Some(value),
                unit: Some(unit),
            }
        }
    }

    /// `Rate`.
    pub type Rate = Quantity<RateUnit>;
    /// `Duration`.
    pub type Duration = Quantity<TimeUnit>;

    /// `QosProfile` (`countryAvailability` is not read).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct QosProfile {
        pub name: String,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub description: Option<String>,
        pub status: ProfileStatus,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub target_min_upstream_rate: Option<Rate>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub max_upstream_rate: Option<Rate>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub max_upstream_burst_rate: Option<Rate>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub target_min_downstream_rate: Option<Rate>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub max_downstream_rate: Option<Rate>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub max_downstream_burst_rate: Option<Rate>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub min_duration: Option<Duration>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub max_duration: Option<Duration>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub priority: Option<i64>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub packet_delay_budget: Option<Duration>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub jitter: Option<Duration>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub packet_error_loss_rate: Option<i64>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub l4s_queue_type: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "lenient::deserialize"
        )]
        pub service_class: Option<String>,
    }

    /// `QosProfileDeviceRequest`, the body of `POST /retrieve-qos-profiles`. Unknown properties
    /// are refused when read (v1.2 requires it; the simulator reads with this type).
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct QosProfileDeviceRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub device: Option<Device>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<ProfileStatus>,
    }
}

/// A data rate in bits per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BitRate(pub u64);

impl BitRate {
    /// `rate` in bits per second; `None` when its value or unit is missing, negative or unknown,
    /// or the product overflows.
    pub fn from_wire(rate: &wire::Rate) -> Option<Self> {
        let value = u64::try_from(rate.value?).ok()?;
        value
            .checked_mul(rate.unit.as_ref()?.bits_per_second()?)
            .map(Self)
    }

    pub const fn bits_per_second(self) -> u64 {
        self.0
    }
}

impl fmt::Display for BitRate {
    /// The largest unit that shows the rate exactly: `100 Mbps`, `1500 kbps`, `0 bps`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (1_000_000_000_000, "Tbps"),
            (1_000_000_000, "Gbps"),
            (1_000_000, "Mbps"),
            (1_000, "kbps"),
        ];
        match units
            .iter()
            .find(|(factor, _)| self.0 != 0 && self.0.is_multiple_of(*factor))
        {
            Some((factor, unit)) => write!(f, "{} {unit}", self.0 / factor),
            None => write!(f, "{} bps", self.0),
        }
    }
}

/// `duration` as a [`Duration`]; `None` when its value or unit is missing, negative or unknown.
pub fn span_from_wire(duration: &wire::Duration) -> Option<Duration> {
    let value = u64::try_from(duration.value?).ok()?;
    duration.unit.as_ref()?.span(value)
}

/// A QoS profile, independent of the API version: what a `QosProfile` resource shows and what
/// the controller checks a session against. Figures the provider did not give (or gave in a
/// form that cannot be read) are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QosProfile {
    pub name: String,
    pub status: ProfileStatus,
    pub description: Option<String>,
    pub target_min_upstream_rate: Option<BitRate>,
    pub max_upstream_rate: Option<BitRate>,
    pub max_upstream_burst_rate: Option<BitRate>,
    pub target_min_downstream_rate: Option<BitRate>,
    pub max_downstream_rate: Option<BitRate>,
    pub max_downstream_burst_rate: Option<BitRate>,
    /// The shortest session, in whole seconds rounded up (a session must last at least this).
    pub min_duration_seconds: Option<u64>,
    /// The longest session, extensions included, in whole seconds rounded down.
    pub max_duration_seconds: Option<u64>,
    /// 1 (highest) to 100.
    pub priority: Option<u32>,
    /// `packetDelayBudget`: the one-way latency the network keeps below.
    pub packet_delay_budget: Option<Duration>,
    pub jitter: Option<Duration>,
    /// The exponent `n` of the tolerated loss rate 10^-n.
    pub packet_error_loss_rate: Option<u32>,
    /// Experimental in the spec; kept verbatim.
    pub l4s_queue_type: Option<String>,
    /// Experimental in the spec; kept verbatim.
    pub service_class: Option<String>,
}

/// How a requested session duration fits a profile's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationFit {
    /// Within the limits (or the profile states none).
    Fits,
    /// Shorter than the profile's minimum (seconds).
    BelowMinimum(u64),
    /// Longer than the profile's maximum (seconds).
    AboveMaximum(u64),
}

impl QosProfile {
    /// A profile with a name and a status and no figures, for tests to fill in what they need.
    #[cfg(test)]
    pub fn named(name: &str, status: ProfileStatus) -> Self {
        Self {
            name: name.to_owned(),
            status,
            description: None,
            target_min_upstream_rate: None,
            max_upstream_rate: None,
            max_upstream_burst_rate: None,
            target_min_downstream_rate: None,
            max_downstream_rate: None,
            max_downstream_burst_rate: None,
            min_duration_seconds: None,
            max_duration_seconds: None,
            priority: None,
            packet_delay_budget: None,
            jitter: None,
            packet_error_loss_rate: None,
            l4s_queue_type: None,
            service_class: None,
        }
    }

    /// Whether new sessions may use the profile (only ACTIVE ones).
    pub fn is_usable(&self) -> bool {
        self.status == ProfileStatus::Active
    }

    /// How `seconds` fits the profile's minimum and maximum duration.
    pub fn duration_fit(&self, seconds: u64) -> DurationFit {
        match (self.min_duration_seconds, self.max_duration_seconds) {
            (Some(min), _) if seconds < min => DurationFit::BelowMinimum(min),
            (_, Some(max)) if seconds > max => DurationFit::AboveMaximum(max),
            _ => DurationFit::Fits,
        }
    }

    /// Reads a wire profile. An unreadable figure is dropped with a warning, so a provider's
    /// odd unit is visible in the logs rather than silently missing.
    pub fn from_wire(profile: wire::QosProfile) -> Self {
        let name = profile.name;
        let rate = |field: &'static str, rate: Option<wire::Rate>| {
            let rate = rate?;
            let read = BitRate::from_wire(&rate);
            if read.is_none() {
                warn!(profile = %name, field, ?rate, "unreadable rate in a QoS profile; ignored");
            }
            read
        };
        let span = |field: &'static str, duration: Option<wire::Duration>| {
            let duration = duration?;
            let read = span_from_wire(&duration);
            if read.is_none() {
                warn!(profile = %name, field, ?duration, "unreadable duration in a QoS profile; ignored");
            }
            read
        };
        let min_duration = span("minDuration", profile.min_duration);
        let max_duration = span("maxDuration", profile.max_duration);
        Self {
            status: profile.status,
            description: profile.description,
            target_min_upstream_rate: rate(
                "targetMinUpstreamRate",
                profile.target_min_upstream_rate,
            ),
            max_upstream_rate: rate("maxUpstreamRate", profile.max_upstream_rate),
            max_upstream_burst_rate: rate("maxUpstreamBurstRate", profile.max_upstream_burst_rate),
            target_min_downstream_rate: rate(
                "targetMinDownstreamRate",
                profile.target_min_downstream_rate,
            ),
            max_downstream_rate: rate("maxDownstreamRate", profile.max_downstream_rate),
            max_downstream_burst_rate: rate(
                "maxDownstreamBurstRate",
                profile.max_downstream_burst_rate,
            ),
            min_duration_seconds: min_duration
                .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            max_duration_seconds: max_duration.map(|d| d.as_secs()),
            priority: profile.priority.and_then(|p| u32::try_from(p).ok()),
            packet_delay_budget: span("packetDelayBudget", profile.packet_delay_budget),
            jitter: span("jitter", profile.jitter),
            packet_error_loss_rate: profile
                .packet_error_loss_rate
                .and_then(|p| u32::try_from(p).ok()),
            l4s_queue_type: profile.l4s_queue_type,
            service_class: profile.service_class,
            name,
        }
    }
}

/// What `POST /retrieve-qos-profiles` filters on; all empty lists every profile.
#[derive(Clone, Debug, Default)]
pub struct ProfileFilter {
    /// Only profiles available to this device (two-legged tokens; leave empty with a
    /// three-legged one, whose device the provider knows).
    pub device: Option<Device>,
    /// Only the profile of this name.
    pub name: Option<String>,
    /// Only profiles in this status (one of the spec's three).
    pub status: Option<ProfileStatus>,
}

/// The operations the operator needs from a provider's QoS Profiles API.
#[async_trait]
pub trait ProfileApi: Send + Sync {
    /// Every profile matching `filter` (possibly none).
    async fn retrieve_profiles(&self, filter: &ProfileFilter) -> Result<Vec<QosProfile>, Error>;

    /// The profile called `name`; a 404 ([`Error::is_not_found`]) means the provider has none.
    async fn get_profile(&self, name: &str) -> Result<QosProfile, Error>;
}

/// A client of one provider's CAMARA QoS Profiles API.
#[derive(Debug)]
pub struct CamaraProfilesClient {
    transport: Transport,
}

impl CamaraProfilesClient {
    /// A client of the API at `base_url` (including its base path, e.g.
    /// `https://host/qos-profiles/v1`); nothing is fetched or read until the first call.
    pub fn new(base_url: &str, auth: CamaraAuth, timeouts: &Timeouts) -> Result<Self, Error> {
        Ok(Self {
            transport: camara_transport("QoS Profiles API URL", base_url, auth, timeouts)?,
        })
    }

    /// A client at `base_url` with the credentials and timeouts of the QoD provider `provider`
    /// (an OAuth client needs the `qos-profiles:read` scope too, if it names scopes).
    pub fn for_provider(provider: &CamaraConfig, base_url: &str) -> Result<Self, Error> {
        Self::new(base_url, provider.auth.clone(), &provider.timeouts)
    }
}

/// `base_path` (e.g. [`BASE_PATH`]) beside a QoD API's base URL: `https://h/api/quality-on-demand/v1`
/// gives `https://h/api/qos-profiles/v1`. `None` unless the URL ends in a QoD base path
/// (`quality-on-demand/<version>` or `qod/<version>`), whose API root is then known.
pub fn base_url_beside(sessions_base_url: &str, base_path: &str) -> Option<String> {
    let trimmed = sessions_base_url.trim().trim_end_matches('/');
    let (rest, _version) = trimmed.rsplit_once('/')?;
    let (root, api) = rest.rsplit_once('/')?;
    matches!(api, "quality-on-demand" | "qod")
        .then(|| format!("{root}/{}", base_path.trim_start_matches('/')))
}

/// `^[a-zA-Z0-9_.-]+$`, 3 to 256 characters (`QosProfileName`).
pub fn valid_profile_name(name: &str) -> bool {
    (3..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_name(operation: Operation, field: &'static str, name: &str) -> Result<(), Error> {
    if valid_profile_name(name) {
        return Ok(());
    }
    Err(Error::InvalidRequest {
        operation,
        field,
        reason: format!("`{name}` is not 3 to 256 characters of a-z, A-Z, 0-9, `_`, `.`, `-`"),
    })
}

/// The request body for `filter`, refusing what the spec does not allow before anything is sent.
fn retrieve_body(filter: &ProfileFilter) -> Result<wire::QosProfileDeviceRequest, Error> {
    let operation = Operation::RetrieveProfiles;
    if let Some(name) = &filter.name {
        check_name(operation, "name", name)?;
    }
    if let Some(ProfileStatus::Other(word)) = &filter.status {
        return Err(Error::InvalidRequest {
            operation,
            field: "status",
            reason: format!("`{word}` is not ACTIVE, INACTIVE or DEPRECATED"),
        });
    }
    if filter.device.as_ref().is_some_and(Device::is_empty) {
        return Err(Error::InvalidRequest {
            operation,
            field: "device",
            reason: "names no identifier".to_owned(),
        });
    }
    Ok(wire::QosProfileDeviceRequest {
        device: filter.device.clone(),
        name: filter.name.clone(),
        status: filter.status.clone(),
    })
}

#[async_trait]
impl ProfileApi for CamaraProfilesClient {
    #[instrument(skip_all, fields(operation = "retrieve_qos_profiles"))]
    async fn retrieve_profiles(&self, filter: &ProfileFilter) -> Result<Vec<QosProfile>, Error> {
        let operation = Operation::RetrieveProfiles;
        let body = to_json(operation, &retrieve_body(filter)?)?;
        let profiles: Vec<wire::QosProfile> = self
            .transport
            .send(&Call {
                operation,
                method: Method::POST,
                path: &["retrieve-qos-profiles"],
                body: Some(body),
            })
            .await?
            .json()?;
        Ok(profiles.into_iter().map(QosProfile::from_wire).collect())
    }

    #[instrument(skip_all, fields(operation = "get_qos_profile", profile = name))]
    async fn get_profile(&self, name: &str) -> Result<QosProfile, Error> {
        let operation = Operation::GetProfile;
        check_name(operation, "name", name)?;
        let profile: wire::QosProfile = self
            .transport
            .send(&Call {
                operation,
                method: Method::GET,
                path: &["qos-profiles", name],
                body: None,
            })
            .await?
            .json()?;
        Ok(QosProfile::from_wire(profile))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::qod::{
        credentials::SecretSource,
        http::testing::{Reply, RequestLog, Seen},
    };

    fn rate(value: i64, unit: &str) -> wire::Rate {
        wire::Rate::new(value, RateUnit::from(unit))
    }

    fn span(value: i64, unit: &str) -> Option<Duration> {
        span_from_wire(&wire::Duration::new(value, TimeUnit::from(unit)))
    }

    #[test]
    fn every_rate_unit_converts_with_decimal_prefixes() {
        let cases = [
            ("bps", 7),
            ("kbps", 7_000),
            ("Mbps", 7_000_000),
            ("Gbps", 7_000_000_000),
            ("Tbps", 7_000_000_000_000),
        ];
        for (unit, bps) in cases {
            assert_eq!(
                BitRate::from_wire(&rate(7, unit)),
                Some(BitRate(bps)),
                "{unit}"
            );
        }
        // The spec's maximum value in its largest unit still fits.
        assert_eq!(
            BitRate::from_wire(&rate(1024, "Tbps")),
            Some(BitRate(1_024_000_000_000_000))
        );
        assert_eq!(BitRate::from_wire(&rate(0, "Mbps")), Some(BitRate(0)));
    }

    #[test]
    fn unreadable_rates_are_none() {
        assert_eq!(
            BitRate::from_wire(&rate(7, "mbps")),
            None,
            "units are case-sensitive"
        );
        assert_eq!(BitRate::from_wire(&rate(7, "Pbps")), None);
        assert_eq!(BitRate::from_wire(&rate(-1, "kbps")), None);
        assert_eq!(
            BitRate::from_wire(&rate(i64::MAX, "Tbps")),
            None,
            "overflow"
        );
        let no_unit = wire::Rate {
            value: Some(5),
            unit: None,
        };
        assert_eq!(BitRate::from_wire(&no_unit), None);
    }

    #[test]
    fn rates_display_in_the_largest_exact_unit() {
        assert_eq!(BitRate(100_000_000).to_string(), "100 Mbps");
        assert_eq!(BitRate(1_500_000).to_string(), "1500 kbps");
        assert_eq!(BitRate(2_000_000_000_000).to_string(), "2 Tbps");
        assert_eq!(BitRate(1_000_000_000).to_string(), "1 Gbps");
        assert_eq!(BitRate(999).to_string(), "999 bps");
        assert_eq!(BitRate(0).to_string(), "0 bps");
    }

    #[test]
    fn every_time_unit_converts() {
        assert_eq!(span(2, "Days"), Some(Duration::from_secs(172_800)));
        assert_eq!(span(2, "Hours"), Some(Duration::from_secs(7_200)));
        assert_eq!(span(2, "Minutes"), Some(Duration::from_secs(120)));
        assert_eq!(span(2, "Seconds"), Some(Duration::from_secs(2)));
        assert_eq!(span(2, "Milliseconds"), Some(Duration::from_millis(2)));
        assert_eq!(span(2, "Microseconds"), Some(Duration::from_micros(2)));
        assert_eq!(span(2, "Nanoseconds"), Some(Duration::from_nanos(2)));
        // int32's maximum in days fits.
        assert_eq!(
            span(i64::from(i32::MAX), "Days"),
            Some(Duration::from_secs(2_147_483_647 * 86_400))
        );
        assert_eq!(span(2, "Weeks"), None);
        assert_eq!(span(2, "seconds"), None, "units are case-sensitive");
        assert_eq!(span(-2, "Seconds"), None);
        assert_eq!(span(i64::MAX, "Days"), None, "overflow");
    }

    fn profile(extra: serde_json::Value) -> QosProfile {
        let mut body = json!({"name": "QOS_X", "status": "ACTIVE"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        QosProfile::from_wire(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn session_durations_round_inwards_to_whole_seconds() {
        let p = profile(json!({
            "minDuration": {"value": 1500, "unit": "Milliseconds"},
            "maxDuration": {"value": 2500, "unit": "Milliseconds"},
        }));
        assert_eq!(p.min_duration_seconds, Some(2), "a minimum rounds up");
        assert_eq!(p.max_duration_seconds, Some(2), "a maximum rounds down");
        let p = profile(json!({
            "minDuration": {"value": 1, "unit": "Minutes"},
            "maxDuration": {"value": 1, "unit": "Days"},
        }));
        assert_eq!(p.min_duration_seconds, Some(60));
        assert_eq!(p.max_duration_seconds, Some(86_400));
        assert_eq!(p.duration_fit(59), DurationFit::BelowMinimum(60));
        assert_eq!(p.duration_fit(60), DurationFit::Fits);
        assert_eq!(p.duration_fit(86_400), DurationFit::Fits);
        assert_eq!(p.duration_fit(86_401), DurationFit::AboveMaximum(86_400));
        assert_eq!(profile(json!({})).duration_fit(u64::MAX), DurationFit::Fits);
    }

    #[test]
    fn the_spec_example_reads_into_every_figure() {
        // LIST_OF_QOS_PROFILES of both spec versions, plus the fields the example leaves out.
        let p = profile(json!({
            "name": "voice",
            "description": "QoS profile for high-quality interactive voice",
            "targetMinUpstreamRate": {"value": 100, "unit": "kbps"},
            "targetMinDownstreamRate": {"value": 100, "unit": "kbps"},
            "maxUpstreamRate": {"value": 2, "unit": "Mbps"},
            "maxUpstreamBurstRate": {"value": 3, "unit": "Mbps"},
            "maxDownstreamRate": {"value": 1, "unit": "Gbps"},
            "maxDownstreamBurstRate": {"value": 2, "unit": "Gbps"},
            "minDuration": {"value": 1, "unit": "Days"},
            "maxDuration": {"value": 10, "unit": "Days"},
            "priority": 10,
            "packetDelayBudget": {"value": 50, "unit": "Milliseconds"},
            "jitter": {"value": 5, "unit": "Milliseconds"},
            "packetErrorLossRate": 3,
            "l4sQueueType": "non-l4s-queue",
            "serviceClass": "microsoft_voice",
            "countryAvailability": [{"countryName": "GB"}],
        }));
        assert_eq!(p.name, "voice");
        assert!(p.is_usable());
        assert_eq!(p.target_min_upstream_rate, Some(BitRate(100_000)));
        assert_eq!(p.target_min_downstream_rate, Some(BitRate(100_000)));
        assert_eq!(p.max_upstream_rate, Some(BitRate(2_000_000)));
        assert_eq!(p.max_upstream_burst_rate, Some(BitRate(3_000_000)));
        assert_eq!(p.max_downstream_rate, Some(BitRate(1_000_000_000)));
        assert_eq!(p.max_downstream_burst_rate, Some(BitRate(2_000_000_000)));
        assert_eq!(p.min_duration_seconds, Some(86_400));
        assert_eq!(p.max_duration_seconds, Some(864_000));
        assert_eq!(p.priority, Some(10));
        assert_eq!(p.packet_delay_budget, Some(Duration::from_millis(50)));
        assert_eq!(p.jitter, Some(Duration::from_millis(5)));
        assert_eq!(p.packet_error_loss_rate, Some(3));
        assert_eq!(p.l4s_queue_type.as_deref(), Some("non-l4s-queue"));
        assert_eq!(p.service_class.as_deref(), Some("microsoft_voice"));
    }

    #[test]
    fn odd_figures_read_as_absent_and_unknown_statuses_are_kept() {
        let p = profile(json!({
            "status": "RETIRED",
            "maxDownstreamRate": {"value": 5, "unit": "Pbps"},
            "maxDuration": {"value": "long", "unit": "Hours"},
            "priority": "high",
            "jitter": "5ms",
        }));
        assert_eq!(p.status, ProfileStatus::Other("RETIRED".into()));
        assert!(!p.is_usable());
        assert_eq!(p.max_downstream_rate, None);
        assert_eq!(p.max_duration_seconds, None);
        assert_eq!(p.priority, None);
        assert_eq!(p.jitter, None);
        for status in ["INACTIVE", "DEPRECATED"] {
            assert!(
                !profile(json!({ "status": status })).is_usable(),
                "{status}"
            );
        }
        // Name and status are what the profile is; without them the answer is unusable.
        assert!(serde_json::from_value::<wire::QosProfile>(json!({"name": "QOS_X"})).is_err());
    }

    #[test]
    fn the_profiles_api_sits_beside_the_qod_api() {
        assert_eq!(
            base_url_beside("https://h/api/quality-on-demand/v1/", BASE_PATH).as_deref(),
            Some("https://h/api/qos-profiles/v1")
        );
        assert_eq!(
            base_url_beside("http://127.0.0.1:8080/qod/v0", BASE_PATH).as_deref(),
            Some("http://127.0.0.1:8080/qos-profiles/v1")
        );
        assert_eq!(base_url_beside("https://h/custom/v1", BASE_PATH), None);
        assert_eq!(base_url_beside("https://h", BASE_PATH), None);
    }

    fn client(server: &RequestLog) -> CamaraProfilesClient {
        CamaraProfilesClient::new(
            &server.url("/qos-profiles/v1"),
            CamaraAuth::Bearer(SecretSource::Value(secrecy::SecretString::from(
                "profiles-token",
            ))),
            &Timeouts::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn requests_carry_auth_correlator_and_only_the_filters_given() {
        let server = RequestLog::start(|seen: &Seen, _| {
            if seen.path.ends_with("/retrieve-qos-profiles") {
                Reply::json(200, json!([{"name": "QOS_L", "status": "ACTIVE"}]))
            } else {
                Reply::json(200, json!({"name": "QOS_L", "status": "DEPRECATED"}))
            }
        })
        .await;
        let client = client(&server);
        let all = client
            .retrieve_profiles(&ProfileFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        let filter = ProfileFilter {
            device: Some(Device {
                phone_number: Some("+36721601234567".into()),
                ..Device::default()
            }),
            name: Some("QOS_L".into()),
            status: Some(ProfileStatus::Active),
        };
        client.retrieve_profiles(&filter).await.unwrap();
        let got = client.get_profile("QOS_L").await.unwrap();
        assert_eq!(got.status, ProfileStatus::Deprecated);

        let seen = server.seen_at("/qos-profiles/v1/retrieve-qos-profiles");
        assert_eq!(seen[0].json(), json!({}));
        assert_eq!(
            seen[1].json(),
            json!({"device": {"phoneNumber": "+36721601234567"}, "name": "QOS_L", "status": "ACTIVE"})
        );
        let get = &server.seen_at("/qos-profiles/v1/qos-profiles/QOS_L")[0];
        assert_eq!(get.method, "GET");
        for request in seen.iter().chain([get]) {
            assert_eq!(
                request.header("authorization"),
                Some("Bearer profiles-token")
            );
            assert!(request.header("x-correlator").is_some());
        }
    }

    #[tokio::test]
    async fn what_the_spec_forbids_is_refused_before_sending() {
        let server = RequestLog::start(|_, _| Reply::json(200, json!([]))).await;
        let client = client(&server);
        for name in ["ab", "QOS L", "../x", &"a".repeat(257)] {
            let err = client.get_profile(name).await.unwrap_err();
            assert!(
                matches!(err, Error::InvalidRequest { field: "name", .. }),
                "{err}"
            );
        }
        let bad = [
            ProfileFilter {
                status: Some(ProfileStatus::Other("RETIRED".into())),
                ..ProfileFilter::default()
            },
            ProfileFilter {
                device: Some(Device::default()),
                ..ProfileFilter::default()
            },
            ProfileFilter {
                name: Some("x".into()),
                ..ProfileFilter::default()
            },
        ];
        for filter in bad {
            let err = client.retrieve_profiles(&filter).await.unwrap_err();
            assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
        }
        assert!(server.seen().is_empty());
    }

    #[tokio::test]
    async fn errors_and_bad_answers_map_as_for_sessions() {
        let server = RequestLog::start(|seen: &Seen, _| match seen.path.rsplit('/').next() {
            Some("QOS_GONE") => Reply::json(
                404,
                json!({"status": 404, "code": "NOT_FOUND", "message": "no such profile"}),
            ),
            Some("QOS_BUSY") => Reply::raw(429, &[("retry-after", "3")], "{}"),
            _ => Reply::json(200, json!([{"status": "ACTIVE"}])),
        })
        .await;
        let client = client(&server);
        let gone = client.get_profile("QOS_GONE").await.unwrap_err();
        assert!(gone.is_not_found(), "{gone}");
        assert_eq!(gone.info().map(|i| i.code.as_str()), Some("NOT_FOUND"));
        let busy = client.get_profile("QOS_BUSY").await.unwrap_err();
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert!(busy.is_retryable());
        let nameless = client
            .retrieve_profiles(&ProfileFilter::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                nameless,
                Error::InvalidResponse {
                    operation: Operation::RetrieveProfiles,
                    ..
                }
            ),
            "{nameless}"
        );
        assert!(nameless.to_string().contains("name"), "{nameless}");
    }

    #[test]
    fn the_client_shares_a_qod_providers_settings() {
        let mut provider = CamaraConfig::new("https://h/quality-on-demand/v1");
        provider.auth = CamaraAuth::Bearer(SecretSource::Value(secrecy::SecretString::from(
            "shared-secret",
        )));
        let client =
            CamaraProfilesClient::for_provider(&provider, "https://h/qos-profiles/v1").unwrap();
        assert!(!format!("{client:?}").contains("shared-secret"));
        assert!(matches!(
            CamaraProfilesClient::for_provider(&provider, "h/qos-profiles"),
            Err(Error::Config(_))
        ));
    }
}
