//! The `QodSession` custom resource (`qod.dev/v1alpha1`): what users write (spec) and what the
//! operator and the network report (status). The schema carries every validation rule, so
//! `kubectl apply` of a bad manifest is refused with a message that names the field.

use std::sync::Arc;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub mod conditions;
mod descriptions;
pub mod intent;
pub mod profile;
pub mod provider;

pub use profile::{ProfileFigures, QosProfile, QosProfileSpec, SessionProfile};
pub use provider::{
    ClusterQodProvider, ClusterQodProviderSpec, PROVIDER_FINALIZER, ProviderKind, ProviderRef,
    ProviderSpec, ProviderStatus, QodProvider, QodProviderSpec,
};

/// The finalizer that keeps a resource until its session is gone at the provider.
pub const FINALIZER: &str = "qod.dev/session";
/// Annotation naming a session that exists at the provider: a resource without a session of
/// its own imports it (Manage) or observes it (Observe), once it matches the spec.
pub const SESSION_ID_ANNOTATION: &str = "qod.dev/session-id";
/// Annotation that, set to `"true"`, stops every provider call for the resource until removed.
pub const PAUSED_ANNOTATION: &str = "qod.dev/paused";
/// Field manager of the controller's writes: its status merge patches, the provider status
/// and the CRDs it installs (server-side apply).
pub const CONTROLLER_MANAGER: &str = "qod-operator";
/// Field manager of the webhook's status writes (server-side apply).
pub const WEBHOOK_MANAGER: &str = "qod-operator-webhook";

/// A Quality-on-Demand session: guaranteed network quality for a device's traffic to an
/// application server, for a duration.
// Each printer column repeats `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "qod.dev",
    version = "v1alpha1",
    kind = "QodSession",
    plural = "qodsessions",
    namespaced,
    shortname = "qod",
    category = "qod",
    status = "QodSessionStatus",
    doc = "A CAMARA Quality-on-Demand session: guaranteed network quality for a device's traffic to an application server, kept in step with this resource by qod-operator. Annotations: `qod.dev/session-id: <id>` imports (Manage) or observes (Observe) the provider's session with that id, once checked against device, applicationServer, ports and qosProfile; `qod.dev/paused: \"true\"` stops every provider call for this resource (deletion included) until removed, shown by the condition Paused.",
    printcolumn(name = "Profile", type_ = "string", json_path = ".spec.qosProfile"),
    printcolumn(name = "Device", type_ = "string", json_path = ".status.device"),
    printcolumn(name = "QoS", type_ = "string", json_path = ".status.qosStatus"),
    printcolumn(name = "Info", type_ = "string", json_path = ".status.statusInfo"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Duration",
        type_ = "integer",
        json_path = ".spec.duration",
        priority = 1
    ),
    // Second rank: with one provider (the operator's flags) every row would read empty.
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.providerRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Session",
        type_ = "string",
        json_path = ".status.sessionId",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Parts most sessions leave out are boxed (8 bytes instead of up to 72 when absent) and the
// strings held inline in spec and status are `Box<str>` (16 bytes, a String 24): every session
// is held in the cache, so its fixed size is paid 100,000 times, and only so does it fit
// jemalloc's 896-byte size class (`a_cached_session_fits_the_allocators_896_byte_class`).
pub struct QodSessionSpec {
    /// The device whose traffic gets the QoS. At least one identifier; several must name the
    /// same device.
    pub device: Device,
    /// The server the device talks to.
    pub application_server: ApplicationServer,
    /// Ports on the device the QoS applies to; all ports when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ports: Option<Box<Ports>>,
    /// Ports on the application server the QoS applies to; all ports when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_server_ports: Option<Box<Ports>>,
    /// The QoS profile to apply, as the provider names it (e.g. QOS_E, QOS_S, QOS_M, QOS_L).
    #[schemars(length(min = 3, max = 256), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub qos_profile: Box<str>,
    /// Requested session length in seconds, 1 to 86400 (24 hours, the most every CAMARA
    /// version accepts; longer lifetimes come from autoExtend). The provider may grant less.
    #[schemars(range(min = 1, max = 86_400))]
    pub duration: u32,
    /// Keep a session alive for as long as this resource exists: extend it before it expires
    /// and, past the provider's maximum, create a new one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_extend: bool,
    /// The provider to use: a QodProvider of this namespace or a ClusterQodProvider. The
    /// operator's default provider (its flags) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<Box<ProviderRef>>,
    /// Manage (default): the operator creates, extends, replaces and deletes the session, or
    /// imports the one the annotation qod.dev/session-id names. Observe: it only reads the
    /// session the annotation names (required) and shows its status; it never creates,
    /// extends or deletes one, and deleting the resource leaves the session alone.
    #[serde(default, skip_serializing_if = "is_default")]
    pub management_policy: ManagementPolicy,
    /// What deleting this resource does to a session it manages: Delete (default) deletes it
    /// at the provider; Orphan leaves it there (an Event names its id). Replacing a session
    /// after a change of device, server, ports or profile deletes the old one either way.
    #[serde(default, skip_serializing_if = "is_default")]
    pub deletion_policy: DeletionPolicy,
}

/// Whether the operator owns the session or only watches it.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum ManagementPolicy {
    /// Create, extend, replace and delete the session (or import an existing one).
    #[default]
    Manage,
    /// Only read the session named by qod.dev/session-id; never change it at the provider.
    Observe,
}

/// What deleting the resource does to its session.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum DeletionPolicy {
    /// Delete the session at the provider, then let the resource go.
    #[default]
    Delete,
    /// Leave the session at the provider (it runs until it expires or someone deletes it).
    Orphan,
}

/// Identifiers of the device. Give at least one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.phoneNumber) || has(self.networkAccessIdentifier) || has(self.ipv4Address) || has(self.ipv6Address)")
        .message("device needs at least one of phoneNumber, networkAccessIdentifier, ipv4Address, ipv6Address")
)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// E.164 number with a leading +, e.g. +36721601234567.
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{4,14}$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<Box<str>>,
    /// Network access identifier, `user@domain` (no spaces, control or format characters).
    #[schemars(
        length(min = 3, max = 256),
        regex(pattern = r"^[^@\s\p{Cc}\p{Cf}]+@[^@\s\p{Cc}\p{Cf}]+$")
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<Box<str>>,
    /// The device's IPv4 identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<Box<DeviceIpv4Address>>,
    /// A single IPv6 address of the device (any address within its prefix).
    #[schemars(extend("format" = "ipv6"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<Box<str>>,
}

/// Public address plus the private address and/or the public port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.privateAddress) || has(self.publicPort)")
        .message("ipv4Address needs privateAddress or publicPort besides publicAddress")
)]
#[serde(rename_all = "camelCase")]
pub struct DeviceIpv4Address {
    /// The address the application server sees.
    #[schemars(extend("format" = "ipv4"))]
    pub public_address: String,
    /// The address the device has in its network (same as publicAddress without NAT).
    #[schemars(extend("format" = "ipv4"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// The port the application server sees.
    #[schemars(range(min = 0, max = 65_535))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
}

/// The application server: addresses or CIDR blocks, or a Service whose external addresses
/// the operator uses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.ipv4Address) || has(self.ipv6Address) || has(self.serviceRef)")
        .message("applicationServer needs ipv4Address or ipv6Address, or serviceRef"),
    validation = Rule::new("!has(self.serviceRef) || !(has(self.ipv4Address) || has(self.ipv6Address))")
        .message("applicationServer takes serviceRef or addresses, not both")
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationServer {
    /// IPv4 address or CIDR, e.g. 198.51.100.7 or 198.51.100.0/24.
    #[schemars(regex(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(/(3[0-2]|[12]?[0-9]))?$"
    ))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<Box<str>>,
    /// IPv6 address or CIDR, e.g. 2001:db8::7 or 2001:db8::/64.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F:]*:[0-9a-fA-F:.]*(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$"
    ))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<Box<str>>,
    /// A Service in this namespace: its load balancer's ingress IPs (one IPv4, one IPv6), else
    /// its spec.externalIPs; a load balancer hostname is resolved through DNS. The session waits
    /// (WaitingForServiceAddress) until there is one, is replaced when it changes and deleted
    /// while the Service is gone (ServiceNotFound). status.applicationServer shows what is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<ServiceRef>,
}

/// A Service in the QodSession's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRef {
    /// The Service's name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Box<str>,
}

/// The application server addresses a session was created with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationServerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Where they came from (the Service, and whether a load balancer hostname was resolved
    /// through DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Single ports and/or inclusive port ranges. Give at least one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.ports) || has(self.ranges)").message("give ports or ranges")
)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    /// Single ports, 0 to 65535.
    #[schemars(length(min = 1, max = 1024), inner(range(min = 0, max = 65_535)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Port ranges.
    #[schemars(length(min = 1, max = 1024))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<PortRange>>,
}

/// An inclusive port range; `from` must not exceed `to`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.from <= self.to").message("from must not exceed to"))]
pub struct PortRange {
    #[schemars(range(min = 0, max = 65_535))]
    pub from: u16,
    #[schemars(range(min = 0, max = 65_535))]
    pub to: u16,
}

/// Identifies a notification that was applied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRef {
    /// The CloudEvent `time` (when the network changed the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// The CloudEvent `id`, unique per `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<str>>,
    /// The CloudEvent `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<str>>,
}

/// What the network and the operator report about the session.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QodSessionStatus {
    /// The provider's id of the current session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Box<str>>,
    /// The network's status, verbatim: REQUESTED, AVAILABLE or UNAVAILABLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_status: Option<Box<str>>,
    /// The network's reason, verbatim: DURATION_EXPIRED, NETWORK_TERMINATED, DELETE_REQUESTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<Box<str>>,
    /// When the QoS became available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the session ends (or ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The device identifier the session applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Box<str>>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The total duration in seconds asked of the current session (create plus extensions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_duration: Option<u32>,
    /// The provider granted less than asked, or the profile's maximum duration was reached:
    /// extending this session further is pointless (autoExtend creates a new one when it ends).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extension_capped: bool,
    /// Why extensionCapped is set, with the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_capped_reason: Option<Box<str>>,
    /// The QoS profile the current session was created with and its figures at the time, from
    /// the provider's QoS Profiles API (absent for providers without one).
    // Shared: the operator's cache holds one copy per distinct profile (src/cache/slim.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Arc<SessionProfile>>,
    /// Digest of the session-defining fields (device, application server, ports, profile,
    /// provider) the current session was created with; a different digest means the session is
    /// replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_fingerprint: Option<Box<str>>,
    /// The provider the current session lives at, as `<kind>/<name>` of its providerRef;
    /// absent for the operator's default provider (its flags). Reads, extensions and the delete
    /// go there even after `spec.providerRef` changes (which replaces the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Box<str>>,
    /// The application server addresses of the current session, when spec.applicationServer
    /// names a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_server: Option<Box<ApplicationServerStatus>>,
    /// Set just before a create is sent, cleared once its answer is recorded: while set without
    /// a sessionId, the create may have happened and the operator looks for it before creating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_requested_at: Option<Time>,
    /// When the operator last read the session from the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<Time>,
    /// Provider calls that failed in a row; reset by the first success.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    /// After a failure, the operator calls the provider again no earlier than this (unless the
    /// spec changes), so errors never turn into a hot loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Time>,
    /// The newest network notification applied to this status (written by the webhook): an
    /// event older than this one, or with the same id, changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notification: Option<NotificationRef>,
    /// The session the annotation qod.dev/session-id named, once the operator checked it: an
    /// import is done once (later sessions of a Manage resource are its own), and one refused
    /// is checked again only when the spec or the annotation changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<Box<ImportRecord>>,
    /// `Ready` is True while the network provides the QoS; its reason and message say why not.
    /// `Paused` is True while the annotation qod.dev/paused stops provider calls.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What became of the session named by the annotation qod.dev/session-id.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImportRecord {
    /// The session id the annotation named.
    pub session_id: String,
    /// Imported: it became this resource's session. Refused: it differs from the spec or the
    /// provider does not know it (the Ready condition says which).
    pub outcome: ImportOutcome,
}

/// The outcome of an import.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported,
    Refused,
}

impl QodSession {
    /// The session id the annotation qod.dev/session-id names, if any (blank counts as none).
    pub fn annotated_session_id(&self) -> Option<&str> {
        let annotations = self.metadata.annotations.as_ref()?;
        let id = annotations.get(SESSION_ID_ANNOTATION)?.trim();
        (!id.is_empty()).then_some(id)
    }

    /// Whether the annotation qod.dev/paused stops provider calls: only the value "true"
    /// (trimmed, in any case).
    pub fn is_paused(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_ANNOTATION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

impl QodSessionSpec {
    /// A valid spec (a phone number, an IPv4 application server, QOS_L for 600 s), for tests and
    /// benchmarks that need a resource but not its details.
    pub fn example() -> Self {
        Self {
            device: Device {
                phone_number: Some("+3670000000".into()),
                ..Device::default()
            },
            application_server: ApplicationServer {
                ipv4_address: Some("198.51.100.7".into()),
                ..ApplicationServer::default()
            },
            device_ports: None,
            application_server_ports: None,
            qos_profile: "QOS_L".into(),
            duration: 600,
            auto_extend: false,
            provider_ref: None,
            management_policy: ManagementPolicy::default(),
            deletion_policy: DeletionPolicy::default(),
        }
    }

    /// A digest of the fields that define a session at the provider (device, application
    /// server, ports, profile, provider). Duration and autoExtend are left out: they change a session's
    /// lifetime, not which session it is.
    pub fn session_fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        #[derive(Serialize)]
        struct Defining<'a>(
            &'a Device,
            &'a ApplicationServer,
            &'a Option<Box<Ports>>,
            &'a Option<Box<Ports>>,
            &'a str,
        );
        let defining = Defining(
            &self.device,
            &self.application_server,
            &self.device_ports,
            &self.application_server_ports,
            &self.qos_profile,
        );
        // Serialising plain structs and strings cannot fail. The provider counts only when
        // named, so sessions made before providerRef existed keep their fingerprint.
        let mut bytes = serde_json::to_vec(&defining).unwrap_or_default();
        if let Some(provider) = &self.provider_ref {
            bytes.extend_from_slice(provider.key().as_bytes());
        }
        let digest = Sha256::digest(&bytes);
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key of the provider this spec asks for (`status.provider`'s form), `None` for the
    /// default provider.
    pub fn provider_key(&self) -> Option<String> {
        self.provider_ref.as_deref().map(ProviderRef::key)
    }
}

/// Spec fields added later are left out at their defaults, so a spec written back reads as it
/// was written.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

// The resource speaks CAMARA's names, so it maps onto the wire one field for one field.

impl From<&Device> for crate::qod::Device {
    fn from(device: &Device) -> Self {
        Self {
            phone_number: device.phone_number.as_deref().map(str::to_owned),
            network_access_identifier: device
                .network_access_identifier
                .as_deref()
                .map(str::to_owned),
            ipv4_address: device
                .ipv4_address
                .as_ref()
                .map(|a| crate::qod::DeviceIpv4Address {
                    public_address: a.public_address.clone(),
                    private_address: a.private_address.clone(),
                    public_port: a.public_port,
                }),
            ipv6_address: device.ipv6_address.as_deref().map(str::to_owned),
        }
    }
}

impl From<&ApplicationServer> for crate::qod::ApplicationServer {
    fn from(server: &ApplicationServer) -> Self {
        Self {
            ipv4_address: server.ipv4_address.as_deref().map(str::to_owned),
            ipv6_address: server.ipv6_address.as_deref().map(str::to_owned),
        }
    }
}

impl From<&Ports> for crate::qod::PortsSpec {
    fn from(ports: &Ports) -> Self {
        Self {
            ports: ports.ports.clone(),
            ranges: ports.ranges.as_ref().map(|ranges| {
                ranges
                    .iter()
                    .map(|r| crate::qod::PortRange {
                        from: r.from,
                        to: r.to,
                    })
                    .collect()
            }),
        }
    }
}

/// Every CustomResourceDefinition of the operator: QodSession, QodProvider, ClusterQodProvider,
/// QosProfile, with each description's paragraphs on one line for `kubectl explain` to wrap
/// (`descriptions`). Everything that applies or writes the CRDs takes them from here, not from
/// `crd()` of each type.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        QodSession::crd(),
        QodProvider::crd(),
        ClusterQodProvider::crd(),
        QosProfile::crd(),
    ];
    crds.iter_mut().for_each(descriptions::join_crd);
    crds
}

/// One CRD as YAML, as its file in `deploy/crds/` (`<plural>.qod.dev.yaml`) holds it.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(crd)
}

/// Every CRD as one multi-document YAML stream, as `qod-operator crd` prints it.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let documents = crds().iter().map(crd_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(documents.join("---\n"))
}

#[cfg(test)]
mod tests;
