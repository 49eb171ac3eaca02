//! The webhook's command-line flags
//! (docs/architecture.md, "Command-line and test-control contract"), for `qod-operator run` to
//! flatten in (`#[command(flatten)] webhook: WebhookArgs`). Every flag is also read from
//! `QOD_<FLAG>`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::{Limits, WebhookConfig};
use crate::sink_keys::{KeyError, SinkKeys};

/// Flags of the notification webhook.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookArgs {
    /// Where the webhook listens for notifications.
    #[arg(long, env = "QOD_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub webhook_listen: SocketAddr,
    /// The webhook's URL as the provider reaches it; sinks are `<URL>/notifications/<uid>`.
    #[arg(long, env = "QOD_WEBHOOK_PUBLIC_URL")]
    pub webhook_public_url: Option<String>,
    /// File with the HMAC key of sink tokens (trailing whitespace removed). Without it a
    /// random key is made at start, and notifications of sessions created before a restart
    /// are refused.
    #[arg(long, env = "QOD_HMAC_KEY_FILE")]
    pub hmac_key_file: Option<PathBuf>,
    /// File with the previous HMAC key, still accepted during a rotation.
    #[arg(long, env = "QOD_HMAC_PREVIOUS_KEY_FILE", requires = "hmac_key_file")]
    pub hmac_previous_key_file: Option<PathBuf>,
    /// How often the key files are re-read (e.g. `60s`).
    #[arg(long, env = "QOD_HMAC_KEY_RELOAD_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub hmac_key_reload_interval: Duration,
    /// File with a fixed bearer token accepted for every resource (for providers configured
    /// by hand with one token). Off unless given.
    #[arg(long, env = "QOD_WEBHOOK_STATIC_TOKEN_FILE")]
    pub webhook_static_token_file: Option<PathBuf>,
    /// Largest notification body in bytes (413 above).
    #[arg(long, env = "QOD_WEBHOOK_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub webhook_max_body_bytes: usize,
    /// Time limit of one notification request (e.g. `10s`).
    #[arg(long, env = "QOD_WEBHOOK_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_request_timeout: Duration,
    /// Notification requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "QOD_WEBHOOK_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    pub webhook_max_in_flight: usize,
}

/// Why the webhook's settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("failed to load the HMAC keys")]
    Keys(#[source] KeyError),
    #[error("failed to read the static token from {}", path.display())]
    StaticToken {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the static token file {} is empty", path.display())]
    EmptyStaticToken { path: PathBuf },
}

impl WebhookArgs {
    /// The HMAC keys: from the key files, or a random key (with a warning).
    pub fn keys(&self) -> Result<SinkKeys, ArgsError> {
        match &self.hmac_key_file {
            Some(current) => SinkKeys::from_files(current, self.hmac_previous_key_file.as_deref())
                .map_err(ArgsError::Keys),
            None => {
                tracing::warn!(
                    "no --hmac-key-file: sink tokens use a random key made at start, so after a \
                     restart notifications for existing sessions are refused until they are \
                     re-created; mount a Secret and pass --hmac-key-file"
                );
                Ok(SinkKeys::generate())
            }
        }
    }

    /// The webhook's settings with `keys` (from [`keys`](Self::keys), shared with the
    /// controller).
    pub fn config(&self, keys: SinkKeys) -> Result<WebhookConfig, ArgsError> {
        let static_token = self
            .webhook_static_token_file
            .as_deref()
            .map(|path| {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ArgsError::StaticToken {
                        path: path.to_owned(),
                        source,
                    })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(ArgsError::EmptyStaticToken {
                        path: path.to_owned(),
                    });
                }
                Ok(SecretString::from(token.to_owned()))
            })
            .transpose()?;
        Ok(WebhookConfig {
            static_token,
            limits: Limits {
                max_body_bytes: self.webhook_max_body_bytes,
                request_timeout: self.webhook_request_timeout,
                max_in_flight: self.webhook_max_in_flight,
            },
            key_reload_interval: self.hmac_key_reload_interval,
            ..WebhookConfig::new(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: WebhookArgs,
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.webhook.webhook_listen.to_string(), "0.0.0.0:8443");
        assert_eq!(cli.webhook.webhook_max_body_bytes, 64 * 1024);
        assert_eq!(cli.webhook.webhook_request_timeout, Duration::from_secs(10));
        let config = cli.webhook.config(SinkKeys::generate()).unwrap();
        assert_eq!(config.limits, Limits::default());
        assert!(config.static_token.is_none());
    }

    #[test]
    fn flags_set_keys_limits_and_the_static_token() {
        let dir = std::env::temp_dir().join(format!("qod-args-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "Jefe\n").unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "my-token\n").unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--webhook-listen",
            "127.0.0.1:9443",
            "--hmac-key-file",
            key.to_str().unwrap(),
            "--webhook-static-token-file",
            token.to_str().unwrap(),
            "--webhook-max-body-bytes",
            "1024",
            "--webhook-request-timeout",
            "2s",
            "--webhook-max-in-flight",
            "3",
        ])
        .unwrap();
        let keys = cli.webhook.keys().unwrap();
        assert_eq!(
            keys.token_for("what do ya want for nothing?")
                .expose_secret(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let config = cli.webhook.config(keys).unwrap();
        assert_eq!(config.static_token.unwrap().expose_secret(), "my-token");
        assert_eq!(
            config.limits,
            Limits {
                max_body_bytes: 1024,
                request_timeout: Duration::from_secs(2),
                max_in_flight: 3
            }
        );
        assert!(Cli::try_parse_from(["x", "--hmac-previous-key-file", "/p"]).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
