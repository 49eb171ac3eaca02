//! Choosing the QoD provider: one [`ProviderConfig`] for either flavour, and [`build`], which
//! turns it into the `Arc<dyn SessionApi>` the controller holds. The CLI fills the config; the
//! controller never needs to know which flavour it talks to.

use std::{fmt, str::FromStr, sync::Arc};

use super::{
    SessionApi,
    camara::{CamaraClient, CamaraConfig},
    error::Error,
    nac::{NacClient, NacConfig},
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

/// Builds the client for `config`: one HTTP connection pool, credentials read on first use.
/// Fails only on a configuration that can never work (bad URL, zero timeout, bad header value).
pub fn build(config: ProviderConfig) -> Result<Arc<dyn SessionApi>, Error> {
    Ok(match config {
        ProviderConfig::Camara(config) => Arc::new(CamaraClient::new(config)?),
        ProviderConfig::Nac(config) => Arc::new(NacClient::new(config)?),
    })
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::qod::{
        auth::SecretSource,
        camara::{ApiVersion, CamaraAuth},
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
        build(ProviderConfig::Camara(camara)).unwrap();
        build(ProviderConfig::Nac(NacConfig::new(SecretSource::Value(
            SecretString::from("k"),
        ))))
        .unwrap();
        assert!(matches!(
            build(ProviderConfig::Camara(CamaraConfig::new("qod.example.net"))),
            Err(Error::Config(_))
        ));
    }
}
