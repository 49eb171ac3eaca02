//! Choosing the QoD provider: one [`ProviderConfig`] for either flavour, and [`build`], which
//! turns it into the `Arc<dyn SessionApi>` the controller holds. The CLI fills the config; the
//! controller never needs to know which flavour it talks to.

use std::{fmt, str::FromStr, sync::Arc};

use super::{
    SessionApi,
    camara::{CamaraClient, CamaraConfig},
    error::Error,
    nac::{NacClient, NacConfig},
    profiles::{CamaraProfilesClient, ProfileApi},
};

/// The kinds of provider the operator can talk to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// A CAMARA QoD provider (v1.x by default; v0.11 and v0.10 selectable).
    #[default]
    Camara,
    /// Nokia Network as Code.
    Nac,
}

impl Flavour {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Camara => "camara",
            Self::Nac => "nac",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Flavour {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "camara" => Ok(Self::Camara),
            "nac" => Ok(Self::Nac),
            _ => Err(Error::Config(format!(
                "unknown provider `{value}`; use camara or nac"
            ))),
        }
    }
}

/// Everything needed to reach one provider.
#[derive(Clone, Debug)]
pub enum ProviderConfig {
    Camara(CamaraConfig),
    Nac(NacConfig),
}

impl ProviderConfig {
    pub fn flavour(&self) -> Flavour {
        match self {
            Self::Camara(_) => Flavour::Camara,
            Self::Nac(_) => Flavour::Nac,
        }
    }
}

/// The clients of one provider.
#[derive(Clone)]
pub struct ProviderClients {
    pub sessions: Arc<dyn SessionApi>,
    /// Its QoS Profiles API; `None` for Network as Code and CAMARA before v1 (unless a URL for
    /// it is given).
    pub profiles: Option<Arc<dyn ProfileApi>>,
}

impl fmt::Debug for ProviderClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderClients")
            .field("profiles", &self.profiles.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds the clients for `config`: one HTTP connection pool each, credentials read on first
/// use. Fails only on a configuration that can never work (bad URL, zero timeout, bad header
/// value).
pub fn build(config: ProviderConfig) -> Result<ProviderClients, Error> {
    Ok(match config {
        ProviderConfig::Camara(config) => {
            let profiles = match config.qos_profiles_url() {
                Some(url) => Some(Arc::new(CamaraProfilesClient::for_provider(&config, &url)?)
                    as Arc<dyn ProfileApi>),
                None => None,
            };
            ProviderClients {
                sessions: Arc::new(CamaraClient::new(config)?),
                profiles,
            }
        }
        ProviderConfig::Nac(config) => ProviderClients {
            sessions: Arc::new(NacClient::new(config)?),
            profiles: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::qod::{
        camara::{ApiVersion, CamaraAuth},
        credentials::SecretSource,
    };

    #[test]
    fn flavours_parse_case_insensitively() {
        assert_eq!("NaC".parse::<Flavour>().unwrap(), Flavour::Nac);
        assert_eq!("camara".parse::<Flavour>().unwrap(), Flavour::Camara);
        assert!(matches!("nokia".parse::<Flavour>(), Err(Error::Config(_))));
    }

    #[test]
    fn both_flavours_build_and_bad_urls_are_refused() {
        let mut camara = CamaraConfig::new("https://qod.example.net/quality-on-demand/v0.11");
        camara.version = ApiVersion::V0_11;
        camara.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from("abc")));
        assert_eq!(
            ProviderConfig::Camara(camara.clone()).flavour(),
            Flavour::Camara
        );
        // Before v1 there is no QoS Profiles API, unless its URL is given.
        assert!(
            build(ProviderConfig::Camara(camara.clone()))
                .unwrap()
                .profiles
                .is_none()
        );
        camara.qos_profiles_url = Some("https://qod.example.net/qos-profiles/v1".into());
        assert!(
            build(ProviderConfig::Camara(camara))
                .unwrap()
                .profiles
                .is_some()
        );
        let v1 = CamaraConfig::new("https://qod.example.net/api/quality-on-demand/v1");
        assert_eq!(
            v1.qos_profiles_url().as_deref(),
            Some("https://qod.example.net/api/qos-profiles/v1")
        );
        assert!(
            build(ProviderConfig::Camara(v1))
                .unwrap()
                .profiles
                .is_some()
        );
        // A v1 URL whose API root cannot be told has none unless it is given.
        let odd = CamaraConfig::new("https://qod.example.net/sessions-api");
        assert!(
            build(ProviderConfig::Camara(odd))
                .unwrap()
                .profiles
                .is_none()
        );
        assert!(
            build(ProviderConfig::Nac(NacConfig::new(SecretSource::Value(
                SecretString::from("k"),
            ))))
            .unwrap()
            .profiles
            .is_none()
        );
        assert!(matches!(
            build(ProviderConfig::Camara(CamaraConfig::new("qod.example.net"))),
            Err(Error::Config(_))
        ));
    }
}
