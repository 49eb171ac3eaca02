//! From a provider resource's spec to a QoD client: [`provider_config`] turns a [`ProviderSpec`]
//! into the [`ProviderConfig`] the flags would have given (credentials as Kubernetes Secret
//! keys instead of files), and [`build`] makes the client. Every error names the spec field.

use reqwest::header::HeaderValue;

use super::key::ProviderKey;
use crate::{
    api::ProviderSpec,
    api::provider::{CamaraProviderAuth, SecretKeyRef as SpecSecretKeyRef},
    qod::{
        self, CamaraAuth, CamaraConfig, ClientCredentials, NacConfig, ProviderClients,
        ProviderConfig, SecretKeyRef, SecretSource, Timeouts,
    },
};

/// Why a provider's spec cannot become a client. Nothing is fetched or read to find out: this
/// is about the spec alone (a missing Secret shows on the first call instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("spec needs exactly one of camara or networkAsCode")]
    NotOneApi,
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// Where a provider's Secrets are read, and the client that reads them.
#[derive(Clone)]
pub struct SecretScope {
    pub client: kube::Client,
    pub namespace: String,
}

impl SecretScope {
    fn source(&self, reference: &SpecSecretKeyRef) -> SecretSource {
        SecretSource::Kubernetes(SecretKeyRef::new(
            self.client.clone(),
            &self.namespace,
            &reference.name,
            &reference.key,
        ))
    }
}

/// The client settings of the provider `spec` describes, with its Secrets read from `secrets`
/// and the operator's `timeouts`.
pub fn provider_config(
    spec: &ProviderSpec,
    secrets: &SecretScope,
    timeouts: Timeouts,
) -> Result<ProviderConfig, BuildError> {
    match (&spec.camara, &spec.network_as_code) {
        (Some(camara), None) => {
            check_url("spec.camara.url", &camara.url)?;
            let mut config = CamaraConfig::new(&camara.url);
            config.version = camara.version.into();
            config.timeouts = timeouts;
            if let Some(url) = &camara.qos_profiles_url {
                check_url("spec.camara.qosProfilesUrl", url)?;
                config.qos_profiles_url = Some(url.clone());
            }
            config.auth = match &camara.auth {
                None => CamaraAuth::None,
                Some(CamaraProviderAuth {
                    oauth2: Some(oauth2),
                    bearer_token_secret_ref: None,
                }) => {
                    check_url("spec.camara.auth.oauth2.tokenUrl", &oauth2.token_url)?;
                    if oauth2.client_id.trim().is_empty() {
                        return Err(BuildError::Field {
                            field: "spec.camara.auth.oauth2.clientId",
                            reason: "is empty".to_owned(),
                        });
                    }
                    CamaraAuth::ClientCredentials(ClientCredentials::new(
                        &oauth2.token_url,
                        &oauth2.client_id,
                        secrets.source(&oauth2.client_secret_secret_ref),
                    ))
                }
                Some(CamaraProviderAuth {
                    oauth2: None,
                    bearer_token_secret_ref: Some(token),
                }) => CamaraAuth::Bearer(secrets.source(token)),
                Some(_) => {
                    return Err(BuildError::Field {
                        field: "spec.camara.auth",
                        reason: "needs exactly one of oauth2 or bearerTokenSecretRef".to_owned(),
                    });
                }
            };
            Ok(ProviderConfig::Camara(config))
        }
        (None, Some(nac)) => {
            check_url("spec.networkAsCode.url", &nac.url)?;
            let mut config = NacConfig::new(secrets.source(&nac.api_key_secret_ref));
            config.base_url.clone_from(&nac.url);
            config.timeouts = timeouts;
            if let Some(host) = &nac.rapid_api_host {
                if HeaderValue::from_str(host).is_err() {
                    return Err(BuildError::Field {
                        field: "spec.networkAsCode.rapidApiHost",
                        reason: "is not a valid HTTP header value".to_owned(),
                    });
                }
                config.rapidapi_host = Some(host.clone());
            }
            Ok(ProviderConfig::Nac(config))
        }
        _ => Err(BuildError::NotOneApi),
    }
}

/// The clients of the provider `spec` describes: one connection pool each; Secrets are read
/// on the first call, not here.
pub fn build(
    spec: &ProviderSpec,
    secrets: &SecretScope,
    timeouts: Timeouts,
) -> Result<ProviderClients, BuildError> {
    let config = provider_config(spec, secrets, timeouts)?;
    // The fields were checked above; what is left is about the operator's own settings.
    qod::provider::build(config).map_err(|error| BuildError::Field {
        field: "spec",
        reason: error.to_string(),
    })
}

fn check_url(field: &'static str, url: &str) -> Result<(), BuildError> {
    qod::http::parse_base_url("URL", url)
        .map(drop)
        .map_err(|error| BuildError::Field {
            field,
            reason: match error {
                qod::Error::Config(reason) => reason,
                other => other.to_string(),
            },
        })
}

/// Builds the client of one provider object.
pub trait BuildClient: Send + Sync {
    fn build(&self, key: &ProviderKey, spec: &ProviderSpec) -> Result<ProviderClients, BuildError>;
}

/// Settings every provider client shares, from the operator's flags.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub timeouts: Timeouts,
    /// Where a ClusterQodProvider's Secrets are (the operator's namespace); a QodProvider's are
    /// in its own namespace.
    pub cluster_resource_namespace: String,
}

/// The operator's [`BuildClient`]: Secrets read with its own Kubernetes client.
pub struct ClientFactory {
    client: kube::Client,
    settings: ClientSettings,
}

impl ClientFactory {
    pub fn new(client: kube::Client, settings: ClientSettings) -> Self {
        Self { client, settings }
    }

    /// Where the Secrets of provider `key` are read: a QodProvider's namespace, or the
    /// operator's for a ClusterQodProvider (tenants cannot point it at each other's Secrets).
    pub fn secret_namespace<'a>(&'a self, key: &'a ProviderKey) -> &'a str {
        key.namespace
            .as_deref()
            .unwrap_or(&self.settings.cluster_resource_namespace)
    }
}

impl BuildClient for ClientFactory {
    fn build(&self, key: &ProviderKey, spec: &ProviderSpec) -> Result<ProviderClients, BuildError> {
        let secrets = SecretScope {
            client: self.client.clone(),
            namespace: self.secret_namespace(key).to_owned(),
        };
        build(spec, &secrets, self.settings.timeouts)
    }
}

/// A Kubernetes client for tests that never reaches a server (building a provider reads no
/// Secret).
#[cfg(test)]
pub(crate) mod testing {
    pub fn offline_client() -> kube::Client {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other(
                "no Kubernetes API in this test",
            ))
        });
        kube::Client::new(service, "default")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{testing::offline_client, *};

    fn spec(value: Value) -> ProviderSpec {
        serde_json::from_value(value).unwrap()
    }

    fn config(value: Value) -> Result<ProviderConfig, BuildError> {
        let secrets = SecretScope {
            client: offline_client(),
            namespace: "media".into(),
        };
        provider_config(&spec(value), &secrets, Timeouts::default())
    }

    #[tokio::test]
    async fn camara_specs_become_camara_configs_with_secrets_from_the_scope() {
        let ProviderConfig::Camara(camara) = config(json!({"camara": {
            "url": "https://qod.example/quality-on-demand/v0.11", "version": "v0.11",
            "auth": {"oauth2": {"tokenUrl": "https://auth.example/token", "clientId": "app",
                                "clientSecretSecretRef": {"name": "telco", "key": "secret"}}},
        }}))
        .unwrap() else {
            panic!("not CAMARA");
        };
        assert_eq!(camara.version, qod::ApiVersion::V0_11);
        assert_eq!(
            camara.base_url,
            "https://qod.example/quality-on-demand/v0.11"
        );
        let CamaraAuth::ClientCredentials(credentials) = &camara.auth else {
            panic!("{:?}", camara.auth);
        };
        assert_eq!(credentials.client_id, "app");
        let text = format!("{:?}", credentials.client_secret);
        assert!(
            text.contains("\"media\"") && text.contains("\"telco\"") && text.contains("\"secret\""),
            "{text}"
        );

        let ProviderConfig::Camara(bearer) = config(json!({"camara": {
            "url": "https://qod.example/quality-on-demand/v1",
            "auth": {"bearerTokenSecretRef": {"name": "telco", "key": "token"}},
        }}))
        .unwrap() else {
            panic!("not CAMARA");
        };
        assert_eq!(bearer.version, qod::ApiVersion::V1, "the default");
        assert!(matches!(
            bearer.auth,
            CamaraAuth::Bearer(SecretSource::Kubernetes(_))
        ));
        let ProviderConfig::Camara(open) =
            config(json!({"camara": {"url": "http://sim.qod-system:9091/quality-on-demand/v1"}}))
                .unwrap()
        else {
            panic!("not CAMARA");
        };
        assert!(matches!(open.auth, CamaraAuth::None));
    }

    #[tokio::test]
    async fn nac_specs_keep_the_default_host_unless_one_is_given() {
        let nac = |extra: Value| {
            let mut value = json!({"networkAsCode": {"url": "https://nac.example", "apiKeySecretRef": {"name": "nac", "key": "api-key"}}});
            value["networkAsCode"]
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            match config(value).unwrap() {
                ProviderConfig::Nac(config) => config,
                ProviderConfig::Camara(_) => panic!("not NaC"),
            }
        };
        let plain = nac(json!({}));
        assert_eq!(plain.base_url, "https://nac.example");
        assert_eq!(
            plain.rapidapi_host.as_deref(),
            Some(qod::credentials::DEFAULT_RAPIDAPI_HOST)
        );
        assert!(matches!(plain.api_key, SecretSource::Kubernetes(_)));
        let hosted = nac(json!({"rapidApiHost": "qod.nokia.rapidapi.com"}));
        assert_eq!(
            hosted.rapidapi_host.as_deref(),
            Some("qod.nokia.rapidapi.com")
        );
    }

    #[tokio::test]
    async fn errors_name_the_field() {
        for (value, field) in [
            (
                json!({"camara": {"url": "ftp://qod.example"}}),
                "spec.camara.url",
            ),
            (
                json!({"camara": {"url": "https://user:pw@qod.example/v1"}}),
                "spec.camara.url",
            ),
            (
                json!({"camara": {"url": "https://qod.example/v1", "auth": {"oauth2": {
                    "tokenUrl": "not a url", "clientId": "app",
                    "clientSecretSecretRef": {"name": "s", "key": "k"}}}}}),
                "spec.camara.auth.oauth2.tokenUrl",
            ),
            (
                json!({"camara": {"url": "https://qod.example/v1", "auth": {"oauth2": {
                    "tokenUrl": "https://auth.example/token", "clientId": " ",
                    "clientSecretSecretRef": {"name": "s", "key": "k"}}}}}),
                "spec.camara.auth.oauth2.clientId",
            ),
            (
                json!({"camara": {"url": "https://qod.example/v1", "auth": {}}}),
                "spec.camara.auth",
            ),
            (
                json!({"networkAsCode": {"url": "https://nac.example", "rapidApiHost": "bad\nhost",
                                         "apiKeySecretRef": {"name": "s", "key": "k"}}}),
                "spec.networkAsCode.rapidApiHost",
            ),
        ] {
            match config(value.clone()) {
                Err(BuildError::Field {
                    field: named,
                    reason,
                }) => {
                    assert_eq!(named, field, "{value}: {reason}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{value}: {other:?}"),
            }
        }
        assert_eq!(config(json!({})).unwrap_err(), BuildError::NotOneApi);
        // A zero timeout is the operator's setting, not the spec's; still refused by name.
        let secrets = SecretScope {
            client: offline_client(),
            namespace: "media".into(),
        };
        let zero = Timeouts {
            connect: std::time::Duration::ZERO,
            ..Timeouts::default()
        };
        let error = build(
            &spec(json!({"camara": {"url": "https://qod.example/v1"}})),
            &secrets,
            zero,
        )
        .expect_err("refused");
        assert!(
            matches!(error, BuildError::Field { field: "spec", .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_cluster_providers_secrets_are_read_in_the_operators_namespace() {
        let factory = ClientFactory::new(
            offline_client(),
            ClientSettings {
                timeouts: Timeouts::default(),
                cluster_resource_namespace: "qod-system".into(),
            },
        );
        let spec = spec(
            json!({"camara": {"url": "https://qod.example/v1", "auth": {"bearerTokenSecretRef": {"name": "telco", "key": "token"}}}}),
        );
        // Building reads no Secret (the offline client would fail), for either kind.
        factory
            .build(&ProviderKey::cluster_provider("telco-a"), &spec)
            .unwrap();
        factory
            .build(&ProviderKey::qod_provider("media", "telco-b"), &spec)
            .unwrap();
        assert_eq!(
            factory.secret_namespace(&ProviderKey::cluster_provider("telco-a")),
            "qod-system"
        );
        assert_eq!(
            factory.secret_namespace(&ProviderKey::qod_provider("media", "telco-b")),
            "media"
        );
    }
}
