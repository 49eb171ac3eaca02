//! The QoD provider side: wire models, the client trait, its CAMARA and Network-as-Code
//! flavours, authentication and errors.
//!
//! The controller talks to a provider only through [`SessionApi`], with version-neutral
//! [`SessionRequest`]s; each flavour turns them into the wire shape its API version expects.

pub mod camara;
pub mod credentials;
pub mod error;
pub mod event;
pub mod http;
pub mod metered;
pub mod model;
pub mod nac;
pub mod profiles;
pub mod provider;
pub mod secret;

use async_trait::async_trait;
use jiff::Timestamp;
use secrecy::SecretString;

pub use camara::{ApiVersion, CamaraAuth, CamaraClient, CamaraConfig};
pub use credentials::{ClientAuthMethod, ClientCredentials};
pub use error::{Error, Operation, TransportFailure};
pub use http::Timeouts;
pub use model::{
    ApplicationServer, Device, DeviceIpv4Address, PortRange, PortsSpec, QosStatus, SessionInfo,
    StatusInfo,
};
pub use nac::{NacClient, NacConfig};
pub use profiles::{
    BitRate, CamaraProfilesClient, DurationFit, ProfileApi, ProfileFilter, ProfileStatus,
    QosProfile,
};
pub use provider::{Flavour, ProviderClients, ProviderConfig};
pub use secret::{SecretKeyRef, SecretProblem, SecretSource};

/// A session to create, independent of the API version.
#[derive(Clone, Debug)]
pub struct SessionRequest {
    pub device: Device,
    pub application_server: ApplicationServer,
    pub device_ports: Option<PortsSpec>,
    pub application_server_ports: Option<PortsSpec>,
    pub qos_profile: String,
    /// Requested duration in seconds.
    pub duration: u32,
    /// Where the provider should send status notifications, if anywhere.
    pub notification: Option<NotificationTarget>,
}

/// The notification sink of one session and the bearer token the provider must present.
#[derive(Clone, Debug)]
pub struct NotificationTarget {
    pub url: String,
    pub token: SecretString,
    /// When the token stops being accepted; should lie after the session's end.
    pub token_expires_at: Timestamp,
}

/// The operations the controller needs from a QoD provider.
#[async_trait]
pub trait SessionApi: Send + Sync {
    /// Creates a session. A timeout after sending yields [`Error::CreateOutcomeUnknown`]: the
    /// caller must look the device's sessions up before trying again.
    async fn create_session(&self, request: &SessionRequest) -> Result<SessionInfo, Error>;

    /// Reads a session; a 404 ([`Error::is_not_found`]) means the provider no longer has it.
    async fn get_session(&self, session_id: &str) -> Result<SessionInfo, Error>;

    /// Deletes a session; a 404 ([`Error::is_not_found`]) means it was already gone.
    async fn delete_session(&self, session_id: &str) -> Result<(), Error>;

    /// Adds `additional_seconds` to an AVAILABLE session; the provider may cap the total.
    async fn extend_session(
        &self,
        session_id: &str,
        additional_seconds: u32,
    ) -> Result<SessionInfo, Error>;

    /// Every session the provider holds for the device (empty when it has none).
    async fn sessions_of_device(&self, device: &Device) -> Result<Vec<SessionInfo>, Error>;

    /// Obtains the credentials a call would send (reads the Secret or file, fetches an OAuth2
    /// token) without calling the QoD API: whether the provider can be used at all. Cached as
    /// for calls, so asking often costs nothing.
    async fn check_credentials(&self) -> Result<(), Error>;
}
