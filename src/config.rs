//! Settings of `qod-operator run`: the QoD provider, the controller and the probe server, as
//! command-line flags (each also `QOD_<FLAG>`) turned into the library's configuration. The
//! webhook's flags live with the webhook ([`crate::webhook::args`]).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{
    controller::{self, plan},
    qod::{
        self, ApiVersion, CamaraAuth, CamaraConfig, ClientCredentials, Flavour, NacConfig,
        ProviderConfig, SecretSource, Timeouts,
    },
};

/// Where the QoD API is and how to authenticate.
#[derive(Clone, Debug, clap::Args)]
pub struct ProviderArgs {
    /// The kind of provider: camara or nac (Nokia Network as Code).
    #[arg(long, env = "QOD_PROVIDER", default_value = "camara")]
    pub provider: Flavour,

    /// Base URL of the default provider's API including its base path, e.g.
    /// https://api.example.com/quality-on-demand/v1 (for nac: the RapidAPI host URL). It serves
    /// the QodSessions without a providerRef; without it (and without --simulator) only
    /// sessions that name a QodProvider or ClusterQodProvider are served.
    #[arg(long, env = "QOD_PROVIDER_URL")]
    pub provider_url: Option<String>,

    /// Base URL of the default provider's CAMARA QoS Profiles API, e.g.
    /// https://api.example.com/qos-profiles/v1 (same credentials). Default for v1: beside
    /// --provider-url when it ends in /quality-on-demand/v1; other versions and nac have none.
    #[arg(long, env = "QOD_QOS_PROFILES_URL")]
    pub qos_profiles_url: Option<String>,

    /// CAMARA QoD version the provider speaks: v1 (1.0, 1.1), v0.11 or v0.10.
    #[arg(long, env = "QOD_CAMARA_VERSION", default_value = "v1")]
    pub camara_version: ApiVersion,

    /// OAuth2 token URL (client credentials); needs --client-id and a client secret.
    #[arg(long, env = "QOD_TOKEN_URL", requires = "client_id")]
    pub token_url: Option<String>,

    /// OAuth2 client id.
    #[arg(long, env = "QOD_CLIENT_ID", requires = "token_url")]
    pub client_id: Option<String>,

    /// File holding the OAuth2 client secret (a mounted Secret; re-read on every token fetch).
    /// Or set QOD_CLIENT_SECRET.
    #[arg(long, env = "QOD_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,

    /// File holding a static bearer token for the provider. Or set QOD_BEARER_TOKEN.
    #[arg(long, env = "QOD_BEARER_TOKEN_FILE", conflicts_with = "token_url")]
    pub bearer_token_file: Option<PathBuf>,

    /// File holding the RapidAPI key (nac). Or set QOD_API_KEY.
    #[arg(long, env = "QOD_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// X-RapidAPI-Host header (nac).
    #[arg(long, env = "QOD_RAPIDAPI_HOST", default_value = qod::credentials::DEFAULT_RAPIDAPI_HOST)]
    pub rapidapi_host: String,

    /// Time limit for connecting to the provider.
    #[arg(long, env = "QOD_PROVIDER_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub provider_connect_timeout: Duration,

    /// Time limit for a whole provider request.
    #[arg(long, env = "QOD_PROVIDER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub provider_timeout: Duration,

    /// Run the built-in QoD simulator in this process and use it as the provider (no telco
    /// account needed).
    #[cfg(feature = "simulator")]
    #[arg(long, env = "QOD_SIMULATOR")]
    pub simulator: bool,

    /// Namespace of the Secrets that ClusterQodProviders name (default: the operator's own,
    /// POD_NAMESPACE). A QodProvider's Secrets are always in its own namespace.
    #[arg(long, env = "QOD_CLUSTER_RESOURCE_NAMESPACE")]
    pub cluster_resource_namespace: Option<String>,
}

/// Why the settings are unusable; each names the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--token-url needs a client secret: --client-secret-file or QOD_CLIENT_SECRET")]
    MissingClientSecret,
    #[error("--provider nac needs an API key: --api-key-file or QOD_API_KEY")]
    MissingApiKey,
    #[error("{flag} must be at least {min:?} (got {value:?})")]
    TooShort {
        flag: &'static str,
        min: Duration,
        value: Duration,
    },
}

impl ProviderArgs {
    /// The time limits of every provider call, the flags' provider's and the provider
    /// resources' alike.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.provider_connect_timeout,
            request: self.provider_timeout,
        }
    }

    /// The provider's settings, for a provider at `url` (the flag's, or the simulator's).
    pub fn provider_config(&self, url: &str) -> Result<ProviderConfig, ConfigError> {
        let timeouts = self.timeouts();
        let secret = |file: &Option<PathBuf>, env: &str| {
            file.clone()
                .map(SecretSource::File)
                .or_else(|| SecretSource::from_env(env))
        };
        Ok(match self.provider {
            Flavour::Camara => {
                let mut config = CamaraConfig::new(url);
                config.version = self.camara_version;
                config.timeouts = timeouts;
                config.qos_profiles_url.clone_from(&self.qos_profiles_url);
                config.auth = match (&self.token_url, &self.client_id) {
                    (Some(token_url), Some(client_id)) => {
                        let client_secret = secret(&self.client_secret_file, "QOD_CLIENT_SECRET")
                            .ok_or(ConfigError::MissingClientSecret)?;
                        CamaraAuth::ClientCredentials(ClientCredentials::new(
                            token_url.clone(),
                            client_id.clone(),
                            client_secret,
                        ))
                    }
                    _ => secret(&self.bearer_token_file, "QOD_BEARER_TOKEN")
                        .map_or(CamaraAuth::None, CamaraAuth::Bearer),
                };
                ProviderConfig::Camara(config)
            }
            Flavour::Nac => {
                let key =
                    secret(&self.api_key_file, "QOD_API_KEY").ok_or(ConfigError::MissingApiKey)?;
                let mut config = NacConfig::new(key);
                config.base_url = url.to_owned();
                config.rapidapi_host = Some(self.rapidapi_host.clone());
                config.timeouts = timeouts;
                ProviderConfig::Nac(config)
            }
        })
    }
}

/// The controller's and the process's own settings.
#[derive(Clone, Debug, clap::Args)]
pub struct ControllerArgs {
    /// Watch QodSessions of this namespace only (default: all namespaces).
    #[arg(long, env = "QOD_NAMESPACE")]
    pub namespace: Option<String>,

    /// How often each session is re-read from the provider even without a notification.
    #[arg(long, env = "QOD_RESYNC_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,

    /// How soon a session still REQUESTED is re-read, in case its notification is lost.
    #[arg(long, env = "QOD_REQUESTED_REFRESH", default_value = "15s", value_parser = humantime::parse_duration)]
    pub requested_refresh: Duration,

    /// How often each provider's QoS profiles are listed (and the QosProfile resources
    /// updated); a session naming an unknown profile also lists them at once.
    #[arg(long, env = "QOD_PROFILE_REFRESH", default_value = "10m", value_parser = humantime::parse_duration)]
    pub profile_refresh: Duration,

    /// QodSessions reconciled at the same time per provider (each provider rate-limits, and a
    /// hanging provider must not hold the passes of another); four times as many overall.
    #[arg(long, env = "QOD_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Apply the CRD (server-side apply) at start and wait until it is established.
    #[arg(long, env = "QOD_INSTALL_CRD")]
    pub install_crd: bool,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "QOD_PROBE_LISTEN", default_value = "0.0.0.0:8080")]
    pub probe_listen: SocketAddr,

    /// This replica's name in Events (the pod name, from the downward API).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

/// Stored timestamps keep whole seconds, so shorter intervals cannot be honoured.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl ControllerArgs {
    pub fn controller_config(&self) -> Result<controller::ControllerConfig, ConfigError> {
        for (flag, value) in [
            ("--resync-interval", self.resync_interval),
            ("--requested-refresh", self.requested_refresh),
            ("--profile-refresh", self.profile_refresh),
        ] {
            if value < MIN_INTERVAL {
                return Err(ConfigError::TooShort {
                    flag,
                    min: MIN_INTERVAL,
                    value,
                });
            }
        }
        Ok(controller::ControllerConfig {
            concurrency: self.concurrency.max(1),
            planner: plan::PlannerSettings {
                resync_interval: self.resync_interval,
                requested_refresh: self.requested_refresh,
                ..plan::PlannerSettings::default()
            },
            instance: self.pod_name.clone(),
            ..controller::ControllerConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        provider: ProviderArgs,
        #[command(flatten)]
        controller: ControllerArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
    }

    // Uses --simulator.
    #[cfg(feature = "simulator")]
    #[test]
    fn the_default_provider_is_optional() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.provider.provider_url, None);
        assert!(!cli.provider.simulator);
        assert!(parse(&["--simulator"]).is_ok());
    }

    #[test]
    fn oauth_needs_a_secret() {
        let cli = parse(&[
            "--provider-url",
            "https://qod.example.net/quality-on-demand/v1",
            "--token-url",
            "https://auth.example.net/token",
            "--client-id",
            "operator",
        ])
        .unwrap();
        assert!(matches!(
            cli.provider
                .provider_config(cli.provider.provider_url.as_deref().unwrap()),
            Err(ConfigError::MissingClientSecret)
        ));
        let cli = parse(&[
            "--provider-url",
            "https://qod.example.net/quality-on-demand/v1",
            "--token-url",
            "https://auth.example.net/token",
            "--client-id",
            "operator",
            "--client-secret-file",
            "/var/run/secrets/qod/client-secret",
        ])
        .unwrap();
        let config = cli
            .provider
            .provider_config(cli.provider.provider_url.as_deref().unwrap())
            .unwrap();
        assert!(matches!(
            config,
            ProviderConfig::Camara(CamaraConfig {
                auth: CamaraAuth::ClientCredentials(_),
                ..
            })
        ));
    }

    // Uses --simulator.
    #[cfg(feature = "simulator")]
    #[test]
    fn nac_needs_an_api_key_and_versions_parse() {
        let cli = parse(&["--provider", "nac", "--provider-url", "https://nac.example"]).unwrap();
        assert!(matches!(
            cli.provider.provider_config("https://nac.example"),
            Err(ConfigError::MissingApiKey)
        ));
        let cli = parse(&["--simulator", "--camara-version", "v0.10"]).unwrap();
        assert_eq!(cli.provider.camara_version, ApiVersion::V0_10);
        assert!(parse(&["--simulator", "--camara-version", "v2"]).is_err());
    }

    // Uses --simulator.
    #[cfg(feature = "simulator")]
    #[test]
    fn intervals_below_a_second_are_refused() {
        let cli = parse(&["--simulator", "--resync-interval", "500ms"]).unwrap();
        let error = cli.controller.controller_config().unwrap_err();
        assert!(error.to_string().contains("--resync-interval"), "{error}");
        let cli = parse(&["--simulator"]).unwrap();
        let config = cli.controller.controller_config().unwrap();
        assert_eq!(config.planner.resync_interval, Duration::from_secs(300));
    }
}
