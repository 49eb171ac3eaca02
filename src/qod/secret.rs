//! Where the QoD clients' secrets come from ([`SecretSource`]: a file, a value, or one key of a
//! Kubernetes Secret) and how a client holds one ([`CachedSecret`]): loaded on first use,
//! re-read when the provider refuses it and at least every [`MAX_AGE`], so a rotated Secret
//! takes effect without a restart.
//!
//! A Kubernetes Secret is read by a `get` of that one Secret, never by a list or a watch: the
//! operator needs no more than `get` on Secrets. Values are [`SecretString`]s, redacted in
//! `Debug`; errors name the file or the Secret and key, never the value.

use std::{fmt, path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::error::Error;

/// A secret is re-read at least this often, so a rotated Secret is used within this time even
/// if the provider keeps accepting the old value.
pub const MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// After a failed re-read that may succeed later (the Kubernetes API is unreachable), the value
/// in hand is used this long before the next attempt.
const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_secs(30);
/// The longest a read of a Kubernetes Secret may take; the provider call waits for it.
const KUBERNETES_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a secret comes from. Read when the secret is needed, not at start-up.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// A file, typically a key of a mounted Secret; trailing whitespace is ignored.
    File(PathBuf),
    /// A value given directly (e.g. from an environment variable).
    Value(SecretString),
    /// One key of a Kubernetes Secret, read through the API; trailing whitespace is ignored.
    Kubernetes(SecretKeyRef),
}

/// One key of a Kubernetes Secret, and the client that may `get` it.
#[derive(Clone)]
pub struct SecretKeyRef {
    client: kube::Client,
    namespace: String,
    name: String,
    key: String,
}

impl SecretKeyRef {
    pub fn new(
        client: kube::Client,
        namespace: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        }
    }

    /// Reads the key with one `get` of the Secret.
    async fn read(&self, what: &'static str) -> Result<SecretString, Error> {
        let fail = |problem, source| Error::SecretKey {
            what,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            key: self.key.clone(),
            problem,
            source,
        };
        let secrets: kube::Api<Secret> =
            kube::Api::namespaced(self.client.clone(), &self.namespace);
        let secret = match tokio::time::timeout(
            KUBERNETES_READ_TIMEOUT,
            secrets.get_opt(&self.name),
        )
        .await
        {
            Ok(Ok(Some(secret))) => secret,
            Ok(Ok(None)) => return Err(fail(SecretProblem::SecretNotFound, None)),
            Ok(Err(kube::Error::Api(status))) if status.is_forbidden() => {
                return Err(fail(
                    SecretProblem::Forbidden,
                    Some(Box::new(kube::Error::Api(status))),
                ));
            }
            Ok(Err(error)) => return Err(fail(SecretProblem::Unavailable, Some(Box::new(error)))),
            Err(_) => return Err(fail(SecretProblem::Unavailable, None)),
        };
        let Some(bytes) = secret.data.and_then(|mut data| data.remove(&self.key)) else {
            return Err(fail(SecretProblem::KeyMissing, None));
        };
        let mut text =
            String::from_utf8(bytes.0).map_err(|_| fail(SecretProblem::NotUtf8, None))?;
        text.truncate(text.trim_end().len());
        if text.is_empty() {
            return Err(fail(SecretProblem::Empty, None));
        }
        Ok(SecretString::from(text))
    }
}

impl fmt::Debug for SecretKeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeyRef")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a key of a Kubernetes Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretProblem {
    /// There is no such Secret.
    SecretNotFound,
    /// The Secret has no such key.
    KeyMissing,
    /// The value is empty (or only whitespace).
    Empty,
    /// The value is not UTF-8 text.
    NotUtf8,
    /// The operator may not `get` the Secret (RBAC).
    Forbidden,
    /// The Kubernetes API did not answer (in time); a later read may succeed.
    Unavailable,
}

impl SecretProblem {
    /// Only an unreachable API can heal without a human.
    pub const fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

impl fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretNotFound => "the Secret does not exist",
            Self::KeyMissing => "the Secret has no such key",
            Self::Empty => "the value is empty",
            Self::NotUtf8 => "the value is not UTF-8 text",
            Self::Forbidden => "the operator may not read the Secret (RBAC: get on secrets)",
            Self::Unavailable => "the Kubernetes API did not answer",
        })
    }
}

impl SecretSource {
    /// The secret from the environment variable `name`, if it is set.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .map(|value| Self::Value(SecretString::from(value)))
    }

    /// Reads the secret. `what` names it in the error (never the value).
    ///
    /// Files are read with blocking IO: they are tiny and sit on a tmpfs mount, and this
    /// happens only on the first use, after a refusal and every few minutes.
    pub async fn load(&self, what: &'static str) -> Result<SecretString, Error> {
        let mut text = match self {
            Self::File(path) => std::fs::read_to_string(path).map_err(|e| Error::Credential {
                what,
                source: std::io::Error::new(e.kind(), format!("{}: {e}", path.display())),
            })?,
            Self::Value(value) => value.expose_secret().to_owned(),
            Self::Kubernetes(key) => return key.read(what).await,
        };
        text.truncate(text.trim_end().len());
        if text.is_empty() {
            return Err(Error::Credential {
                what,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    match self {
                        Self::File(path) => format!("{} is empty", path.display()),
                        Self::Value(_) | Self::Kubernetes(_) => "the value is empty".to_owned(),
                    },
                ),
            });
        }
        Ok(SecretString::from(text))
    }
}

/// A secret loaded once, re-read when the provider refuses it and once it is [`MAX_AGE`] old.
/// One read at a time: concurrent callers wait for it instead of reading too.
#[derive(Debug)]
pub(crate) struct CachedSecret {
    source: SecretSource,
    what: &'static str,
    state: tokio::sync::Mutex<SecretState>,
}

#[derive(Debug, Default)]
struct SecretState {
    loaded: Option<Loaded>,
    /// Counts the values loaded; identifies which one a refused request carried. Never reset,
    /// so a late refusal of a value from before a failed read cannot match a newer one.
    generation: u64,
}

#[derive(Debug)]
struct Loaded {
    value: SecretString,
    generation: u64,
    /// When to read the source again even without a refusal.
    stale_at: Instant,
}

impl CachedSecret {
    pub fn new(source: SecretSource, what: &'static str) -> Self {
        Self {
            source,
            what,
            state: tokio::sync::Mutex::new(SecretState::default()),
        }
    }

    /// The current value and its generation (which changes whenever the value does). A value
    /// older than [`MAX_AGE`] is read again first; if that read fails for good (the Secret or
    /// key is gone), the error is reported, but while the API is unreachable the value in hand
    /// is kept.
    pub async fn current(&self) -> Result<(SecretString, u64), Error> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(loaded) = &state.loaded
            && now < loaded.stale_at
        {
            return Ok((loaded.value.clone(), loaded.generation));
        }
        match self.source.load(self.what).await {
            Ok(value) => Ok(state.store(value, now, self.what)),
            Err(error) if error.is_retryable() => match state.loaded.as_mut() {
                Some(loaded) => {
                    warn!(credential = self.what, error = %error, "cannot re-read a credential; using the one in hand");
                    loaded.stale_at = now + RETRY_AFTER_UNAVAILABLE;
                    Ok((loaded.value.clone(), loaded.generation))
                }
                None => Err(error),
            },
            Err(error) => {
                state.loaded = None;
                Err(error)
            }
        }
    }

    /// The value of `generation` was refused: re-read it. Returns whether a different value is
    /// now there to try. A read failure empties the cache so the next call reports it.
    pub async fn reload(&self, generation: u64) -> bool {
        let mut state = self.state.lock().await;
        let Some(loaded) = &state.loaded else {
            return false;
        };
        if loaded.generation != generation {
            // Another call re-read it already.
            return true;
        }
        let previous = loaded.generation;
        match self.source.load(self.what).await {
            Ok(value) => state.store(value, Instant::now(), self.what).1 != previous,
            Err(_) => {
                state.loaded = None;
                false
            }
        }
    }
}

impl SecretState {
    /// Keeps `value` read at `now`; a new generation only if the value changed.
    fn store(&mut self, value: SecretString, now: Instant, what: &str) -> (SecretString, u64) {
        let stale_at = now + MAX_AGE;
        if let Some(loaded) = &mut self.loaded
            && loaded.value.expose_secret() == value.expose_secret()
        {
            loaded.stale_at = stale_at;
            return (value, loaded.generation);
        }
        if self.loaded.is_some() {
            debug!(credential = what, "re-read a changed credential");
        }
        self.generation += 1;
        self.loaded = Some(Loaded {
            value: value.clone(),
            generation: self.generation,
            stale_at,
        });
        (value, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
    };

    use k8s_openapi::ByteString;
    use serde_json::{Value, json};

    use super::*;

    fn temp_file(content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("qod-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[tokio::test]
    async fn secrets_are_trimmed_and_empty_ones_refused() {
        let path = temp_file("s3cr3t-value \n");
        let loaded = SecretSource::File(path.clone())
            .load("test secret")
            .await
            .unwrap();
        assert_eq!(loaded.expose_secret(), "s3cr3t-value");

        std::fs::write(&path, " \n").unwrap();
        let err = SecretSource::File(path.clone())
            .load("test secret")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Credential { .. }), "{err:?}");
        assert_eq!(err.to_string(), "could not load the test secret");
        std::fs::remove_file(&path).unwrap();

        let missing = SecretSource::File(path.clone())
            .load("test secret")
            .await
            .unwrap_err();
        let source = std::error::Error::source(&missing).unwrap().to_string();
        assert!(source.contains(&path.display().to_string()), "{source}");

        let err = SecretSource::Value(SecretString::from("\t"))
            .load("test secret")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Credential { .. }));
    }

    #[tokio::test]
    async fn secret_values_are_redacted_in_debug() {
        let source = SecretSource::Value(SecretString::from("hunter2-very-secret"));
        assert!(!format!("{source:?}").contains("hunter2"));
        let cached = CachedSecret::new(source, "x");
        cached.current().await.unwrap();
        assert!(!format!("{cached:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_refused_file_secret_is_re_read_and_a_new_value_reported() {
        let path = temp_file("old-key\n");
        let cached = CachedSecret::new(SecretSource::File(path.clone()), "key");
        let (value, generation) = cached.current().await.unwrap();
        assert_eq!(value.expose_secret(), "old-key");
        assert!(
            !cached.reload(generation).await,
            "unchanged file: nothing new"
        );

        std::fs::write(&path, "new-key\n").unwrap();
        assert!(cached.reload(generation).await);
        let (value, newer) = cached.current().await.unwrap();
        assert_eq!(value.expose_secret(), "new-key");
        assert_ne!(newer, generation);
        // A late refusal of the old value does not re-read again.
        assert!(cached.reload(generation).await);

        std::fs::remove_file(&path).unwrap();
        assert!(!cached.reload(newer).await);
        assert!(matches!(
            cached.current().await,
            Err(Error::Credential { .. })
        ));
    }

    /// A Kubernetes API that answers every request with what the test set, and remembers each
    /// request's method and path.
    #[derive(Clone)]
    struct FakeApi {
        answer: Arc<Mutex<(u16, Value)>>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl FakeApi {
        fn new() -> Self {
            Self {
                answer: Arc::new(Mutex::new((500, json!({})))),
                seen: Arc::default(),
            }
        }

        fn client(&self) -> kube::Client {
            let api = self.clone();
            let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
                let api = api.clone();
                async move {
                    api.seen.lock().unwrap().push(format!(
                        "{} {}",
                        request.method(),
                        request.uri()
                    ));
                    let (status, body) = api.answer.lock().unwrap().clone();
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                }
            });
            kube::Client::new(service, "default")
        }

        /// Answers with Secret media/telco holding `data`.
        fn holds(&self, data: &[(&str, &[u8])]) {
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("telco".into()),
                    namespace: Some("media".into()),
                    ..Default::default()
                },
                data: Some(
                    data.iter()
                        .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..Default::default()
            };
            *self.answer.lock().unwrap() = (200, serde_json::to_value(secret).unwrap());
        }

        /// Answers with a Kubernetes `Status` of `code`, as the API server words it.
        fn fails(&self, code: u16) {
            let reason = match code {
                403 => "Forbidden",
                404 => "NotFound",
                _ => "ServiceUnavailable",
            };
            *self.answer.lock().unwrap() = (
                code,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": "refused", "reason": reason, "code": code}),
            );
        }

        fn requests(&self) -> Vec<String> {
            std::mem::take(&mut *self.seen.lock().unwrap())
        }

        fn source(&self, key: &str) -> SecretSource {
            SecretSource::Kubernetes(SecretKeyRef::new(self.client(), "media", "telco", key))
        }
    }

    const GET: &str = "GET /api/v1/namespaces/media/secrets/telco";

    #[tokio::test]
    async fn a_kubernetes_key_is_read_by_one_get_of_its_secret_and_trimmed() {
        let api = FakeApi::new();
        api.holds(&[("token", b"s3cr3t-token \n"), ("other", b"x")]);
        let value = api.source("token").load("bearer token").await.unwrap();
        assert_eq!(value.expose_secret(), "s3cr3t-token");
        assert_eq!(api.requests(), [GET]);
        assert!(!format!("{:?}", api.source("token")).contains("s3cr3t"));
    }

    #[tokio::test]
    async fn each_problem_of_a_kubernetes_key_is_named_and_the_value_never_shown() {
        let api = FakeApi::new();
        type Answer = fn(&FakeApi);
        let cases: [(Answer, SecretProblem, &str); 6] = [
            (
                |api| api.fails(404),
                SecretProblem::SecretNotFound,
                "the Secret does not exist",
            ),
            (
                |api| api.holds(&[("other", b"hunter2")]),
                SecretProblem::KeyMissing,
                "no such key",
            ),
            (
                |api| api.holds(&[("token", b" \n")]),
                SecretProblem::Empty,
                "the value is empty",
            ),
            (
                |api| api.holds(&[("token", &[0xff, 0xfe])]),
                SecretProblem::NotUtf8,
                "not UTF-8",
            ),
            (
                |api| api.fails(403),
                SecretProblem::Forbidden,
                "RBAC: get on secrets",
            ),
            (
                |api| api.fails(503),
                SecretProblem::Unavailable,
                "did not answer",
            ),
        ];
        for (answer, expected, words) in cases {
            answer(&api);
            let error = api.source("token").load("bearer token").await.unwrap_err();
            let Error::SecretKey { problem, .. } = &error else {
                panic!("{error:?}");
            };
            assert_eq!(*problem, expected);
            let text = error.to_string();
            assert!(
                text.contains("bearer token")
                    && text.contains("Secret media/telco")
                    && text.contains("`token`")
                    && text.contains(words),
                "{text}"
            );
            assert!(!format!("{text} {error:?}").contains("hunter2"), "{text}");
            assert_eq!(error.is_retryable(), expected == SecretProblem::Unavailable);
            assert_eq!(
                error.credentials_not_found(),
                expected != SecretProblem::Unavailable
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kubernetes_secret_is_read_again_once_it_is_five_minutes_old() {
        let api = FakeApi::new();
        api.holds(&[("key", b"first")]);
        let cached = CachedSecret::new(api.source("key"), "RapidAPI key");
        let (value, generation) = cached.current().await.unwrap();
        assert_eq!(value.expose_secret(), "first");
        cached.current().await.unwrap();
        tokio::time::advance(MAX_AGE - Duration::from_secs(1)).await;
        cached.current().await.unwrap();
        assert_eq!(api.requests(), [GET], "read once while fresh");

        // Unchanged after five minutes: read again, same generation.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cached.current().await.unwrap().1, generation);
        assert_eq!(api.requests(), [GET]);

        // Rotated: the next read after five minutes brings the new value.
        api.holds(&[("key", b"second")]);
        tokio::time::advance(MAX_AGE).await;
        let (value, rotated) = cached.current().await.unwrap();
        assert_eq!(value.expose_secret(), "second");
        assert_ne!(rotated, generation);

        // The API down: the value in hand is kept, and asked for again 30 s later, not sooner.
        api.fails(503);
        tokio::time::advance(MAX_AGE).await;
        api.requests();
        assert_eq!(cached.current().await.unwrap().0.expose_secret(), "second");
        tokio::time::advance(RETRY_AFTER_UNAVAILABLE - Duration::from_secs(1)).await;
        cached.current().await.unwrap();
        assert_eq!(api.requests(), [GET]);

        // The Secret deleted: that is reported, not hidden behind the old value.
        api.fails(404);
        tokio::time::advance(Duration::from_secs(1)).await;
        let error = cached.current().await.unwrap_err();
        assert!(error.credentials_not_found(), "{error}");
        api.holds(&[("key", b"third")]);
        let (value, third) = cached.current().await.unwrap();
        assert_eq!(value.expose_secret(), "third");
        assert!(third > rotated);
    }

    #[tokio::test]
    async fn a_refused_kubernetes_secret_is_read_again_at_once() {
        let api = FakeApi::new();
        api.holds(&[("key", b"old")]);
        let cached = CachedSecret::new(api.source("key"), "RapidAPI key");
        let (_, generation) = cached.current().await.unwrap();
        assert!(
            !cached.reload(generation).await,
            "unchanged: nothing new to try"
        );
        api.holds(&[("key", b"new")]);
        assert!(cached.reload(generation).await);
        assert_eq!(cached.current().await.unwrap().0.expose_secret(), "new");
        assert_eq!(api.requests(), [GET, GET, GET]);
    }
}
