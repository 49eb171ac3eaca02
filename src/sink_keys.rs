//! Per-resource sink tokens: the bearer token a provider presents when it notifies about a
//! resource's session is the lowercase hex of HMAC-SHA256(key, uid). Every session gets its own
//! token, and checking one needs no state beyond the key. The controller issues tokens and the
//! webhook checks them; this module sits beside both so neither depends on the other.
//!
//! The key is a file's bytes with trailing whitespace removed (a mounted Secret). For rotation a
//! second file holds the previous key: tokens of either key are accepted, new ones are made with
//! the current key. [`SinkKeys::reload`] re-reads both files, so a rotated Secret takes effect
//! without a restart; the webhook calls it periodically and, at most once per
//! [`RELOAD_ON_FAILURE_EVERY`], when a token fails to verify. Without a key file a random key
//! is made at start (tokens then change with every restart, which breaks live sessions'
//! notifications).
//!
//! Keys are secrets: `Debug` prints no key material and nothing here logs a key or a token.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How often a failed verification may trigger a reload of the key files.
pub const RELOAD_ON_FAILURE_EVERY: Duration = Duration::from_secs(5);

/// Length of a generated key in bytes.
const GENERATED_KEY_BYTES: usize = 32;

/// Why keys could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to read the {which} HMAC key from {}", path.display())]
    Read {
        which: Which,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the {which} HMAC key file {} is empty", path.display())]
    EmptyFile { which: Which, path: PathBuf },
    #[error("the {which} HMAC key is empty")]
    Empty { which: Which },
}

/// Which of the two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Current,
    Previous,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Current => "current",
            Self::Previous => "previous",
        })
    }
}

/// The keys in force.
struct KeySet {
    current: SecretSlice<u8>,
    previous: Option<SecretSlice<u8>>,
}

impl KeySet {
    fn new(current: Vec<u8>, previous: Option<Vec<u8>>) -> Result<Self, KeyError> {
        if current.is_empty() {
            return Err(KeyError::Empty {
                which: Which::Current,
            });
        }
        if previous.as_ref().is_some_and(Vec::is_empty) {
            return Err(KeyError::Empty {
                which: Which::Previous,
            });
        }
        Ok(Self {
            current: SecretSlice::from(current),
            previous: previous.map(SecretSlice::from),
        })
    }

    fn same_as(&self, other: &Self) -> bool {
        let same_current = self
            .current
            .expose_secret()
            .ct_eq(other.current.expose_secret());
        let same_previous = match (&self.previous, &other.previous) {
            (None, None) => true,
            (Some(a), Some(b)) => bool::from(a.expose_secret().ct_eq(b.expose_secret())),
            _ => false,
        };
        bool::from(same_current) && same_previous
    }
}

/// Where the keys came from, for [`SinkKeys::reload`].
struct KeyFiles {
    current: PathBuf,
    previous: Option<PathBuf>,
}

struct Inner {
    keys: RwLock<KeySet>,
    files: Option<KeyFiles>,
    last_failure_reload: Mutex<Option<Instant>>,
}

/// The HMAC keys of sink tokens, shared by the controller (which issues tokens) and the
/// webhook (which checks them). Cloning is cheap and clones share the keys, so a reload is
/// seen by both.
#[derive(Clone)]
pub struct SinkKeys {
    inner: Arc<Inner>,
}

impl fmt::Debug for SinkKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.read();
        f.debug_struct("SinkKeys")
            .field("current", &"[redacted]")
            .field("previous", &keys.previous.as_ref().map(|_| "[redacted]"))
            .field(
                "files",
                &self.inner.files.as_ref().map(|f| {
                    (
                        f.current.display().to_string(),
                        f.previous.as_ref().map(|p| p.display().to_string()),
                    )
                }),
            )
            .finish()
    }
}

impl SinkKeys {
    /// Keys from raw bytes (tests, or keys from elsewhere). Neither may be empty.
    pub fn from_bytes(
        current: impl Into<Vec<u8>>,
        previous: Option<Vec<u8>>,
    ) -> Result<Self, KeyError> {
        Ok(Self::with(KeySet::new(current.into(), previous)?, None))
    }

    /// Keys from files (mounted Secrets): each file's bytes without trailing whitespace.
    pub fn from_files(current: &Path, previous: Option<&Path>) -> Result<Self, KeyError> {
        let files = KeyFiles {
            current: current.to_owned(),
            previous: previous.map(Path::to_owned),
        };
        let keys = read_files(&files)?;
        Ok(Self::with(keys, Some(files)))
    }

    /// A random key, for running without a key file. Tokens change with every restart, so
    /// the caller should warn that notifications of sessions created before a restart fail.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        rand::fill(key.as_mut_slice());
        Self::with(
            KeySet {
                current: SecretSlice::from(key),
                previous: None,
            },
            None,
        )
    }

    fn with(keys: KeySet, files: Option<KeyFiles>) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: RwLock::new(keys),
                files,
                last_failure_reload: Mutex::new(None),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The token for the resource with `uid`, made with the current key: what the controller
    /// registers as the sink's access token (CAMARA `sinkCredential.accessToken`; for NaC's
    /// `notificationAuthToken` the controller stores `Bearer <token>`, which NaC copies into the
    /// header as it is).
    pub fn token_for(&self, uid: &str) -> SecretString {
        SecretString::from(hex_hmac(self.read().current.expose_secret(), uid))
    }

    /// Whether `presented` is the token of `uid` under the current or the previous key.
    /// Constant time in the token's content; both keys are always checked.
    pub fn verify(&self, uid: &str, presented: &[u8]) -> bool {
        let keys = self.read();
        let current = token_matches(keys.current.expose_secret(), uid, presented);
        let previous = keys
            .previous
            .as_ref()
            .map_or(subtle::Choice::from(0), |key| {
                token_matches(key.expose_secret(), uid, presented)
            });
        bool::from(current | previous)
    }

    /// Like [`verify`](Self::verify), but a failure first reloads the key files (at most once
    /// per [`RELOAD_ON_FAILURE_EVERY`]) and checks again, so a provider holding a token of a
    /// freshly rotated key is not refused while the periodic reload has not run yet.
    pub fn verify_or_reload(&self, uid: &str, presented: &[u8]) -> bool {
        if self.verify(uid, presented) {
            return true;
        }
        if self.inner.files.is_none() || !self.may_reload_after_failure() {
            return false;
        }
        match self.reload() {
            Ok(true) => self.verify(uid, presented),
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "could not re-read the HMAC key files; keeping the keys in force"
                );
                false
            }
        }
    }

    fn may_reload_after_failure(&self) -> bool {
        let mut last = self
            .inner
            .last_failure_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < RELOAD_ON_FAILURE_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Whether the keys come from files (and [`reload`](Self::reload) can change them).
    pub fn is_file_backed(&self) -> bool {
        self.inner.files.is_some()
    }

    /// Re-reads the key files. `Ok(true)` when the keys changed, `Ok(false)` when they are the
    /// same or do not come from files. On error the keys in force stay.
    pub fn reload(&self) -> Result<bool, KeyError> {
        let Some(files) = &self.inner.files else {
            return Ok(false);
        };
        let fresh = read_files(files)?;
        let mut keys = self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if keys.same_as(&fresh) {
            return Ok(false);
        }
        *keys = fresh;
        tracing::info!("HMAC keys for sink tokens reloaded from their files");
        Ok(true)
    }
}

fn read_files(files: &KeyFiles) -> Result<KeySet, KeyError> {
    let current = read_key(Which::Current, &files.current)?;
    let previous = files
        .previous
        .as_deref()
        .map(|path| read_key(Which::Previous, path))
        .transpose()?;
    KeySet::new(current, previous)
}

/// A key file's bytes without trailing whitespace.
fn read_key(which: Which, path: &Path) -> Result<Vec<u8>, KeyError> {
    let mut bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        which,
        path: path.to_owned(),
        source,
    })?;
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |last| last + 1);
    bytes.truncate(end);
    if bytes.is_empty() {
        return Err(KeyError::EmptyFile {
            which,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn mac(key: &[u8], uid: &str) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(uid.as_bytes());
    mac.finalize().into_bytes().into()
}

fn hex_hmac(key: &[u8], uid: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = mac(key, uid);
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

fn token_matches(key: &[u8], uid: &str, presented: &[u8]) -> subtle::Choice {
    // The length of a token is public (64 hex digits); only its content is compared in
    // constant time.
    hex_hmac(key, uid).as_bytes().ct_eq(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "8c1f3c2e-5b7d-4a8e-9f10-2b3c4d5e6f70";

    #[test]
    fn token_is_the_lowercase_hex_hmac_sha256_of_the_uid() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let keys = SinkKeys::from_bytes("Jefe", None).unwrap();
        assert_eq!(
            keys.token_for("what do ya want for nothing?")
                .expose_secret(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_token_verifies_only_for_its_own_uid() {
        let keys = SinkKeys::from_bytes(b"k1".to_vec(), None).unwrap();
        let token = keys.token_for(UID);
        assert!(keys.verify(UID, token.expose_secret().as_bytes()));
        assert!(!keys.verify("another-uid", token.expose_secret().as_bytes()));
        assert!(!keys.verify(UID, b""));
        assert!(!keys.verify(UID, token.expose_secret().to_uppercase().as_bytes()));
        assert!(!keys.verify(UID, &token.expose_secret().as_bytes()[1..]));
    }

    #[test]
    fn rotation_accepts_tokens_of_the_previous_key_and_issues_with_the_current() {
        let old = SinkKeys::from_bytes(b"old".to_vec(), None).unwrap();
        let rotated = SinkKeys::from_bytes(b"new".to_vec(), Some(b"old".to_vec())).unwrap();
        let old_token = old.token_for(UID);
        assert!(rotated.verify(UID, old_token.expose_secret().as_bytes()));
        let new_token = rotated.token_for(UID);
        assert_ne!(new_token.expose_secret(), old_token.expose_secret());
        assert!(rotated.verify(UID, new_token.expose_secret().as_bytes()));
        assert!(!old.verify(UID, new_token.expose_secret().as_bytes()));
        let unrelated = SinkKeys::from_bytes(b"other".to_vec(), None).unwrap();
        assert!(!rotated.verify(UID, unrelated.token_for(UID).expose_secret().as_bytes()));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys =
            SinkKeys::from_bytes(b"super-secret-key".to_vec(), Some(b"older-secret".to_vec()))
                .unwrap();
        let text = format!("{keys:?}");
        assert!(!text.contains("super-secret-key"), "{text}");
        assert!(!text.contains("older-secret"), "{text}");
        assert!(text.contains("redacted"), "{text}");
        let token = keys.token_for(UID);
        assert!(!format!("{token:?}").contains(token.expose_secret()));
    }

    #[test]
    fn empty_keys_are_refused() {
        assert!(matches!(
            SinkKeys::from_bytes(Vec::new(), None),
            Err(KeyError::Empty {
                which: Which::Current
            })
        ));
        assert!(matches!(
            SinkKeys::from_bytes(b"k".to_vec(), Some(Vec::new())),
            Err(KeyError::Empty {
                which: Which::Previous
            })
        ));
    }

    #[test]
    fn generated_keys_differ_and_work() {
        let a = SinkKeys::generate();
        let b = SinkKeys::generate();
        assert_ne!(
            a.token_for(UID).expose_secret(),
            b.token_for(UID).expose_secret()
        );
        assert!(a.verify(UID, a.token_for(UID).expose_secret().as_bytes()));
        assert!(!a.is_file_backed());
        assert!(!a.reload().unwrap());
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "qod-keys-{name}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self, name: &str, content: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn key_files_lose_trailing_whitespace_only() {
        let dir = TempDir::new("trim");
        let path = dir.file("key", b"  Jefe \n\r\n");
        let from_file = SinkKeys::from_files(&path, None).unwrap();
        let raw = SinkKeys::from_bytes(b"  Jefe".to_vec(), None).unwrap();
        assert_eq!(
            from_file.token_for(UID).expose_secret(),
            raw.token_for(UID).expose_secret()
        );
        let blank = dir.file("blank", b" \n");
        assert!(matches!(
            SinkKeys::from_files(&blank, None),
            Err(KeyError::EmptyFile { .. })
        ));
        assert!(matches!(
            SinkKeys::from_files(&dir.0.join("missing"), None),
            Err(KeyError::Read { .. })
        ));
    }

    #[test]
    fn reload_picks_up_a_rotated_secret_and_keeps_keys_on_error() {
        let dir = TempDir::new("reload");
        let current = dir.file("current", b"first\n");
        let previous = dir.file("previous", b"zeroth\n");
        let keys = SinkKeys::from_files(&current, Some(&previous)).unwrap();
        let first = keys.token_for(UID);
        assert!(!keys.reload().unwrap(), "unchanged files change nothing");

        // Rotation: the old current key moves to the previous file.
        std::fs::write(&current, b"second\n").unwrap();
        std::fs::write(&previous, b"first\n").unwrap();
        assert!(keys.reload().unwrap());
        let second = keys.token_for(UID);
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert!(keys.verify(UID, first.expose_secret().as_bytes()));
        assert!(keys.verify(UID, second.expose_secret().as_bytes()));

        // A broken file leaves the keys in force.
        std::fs::write(&current, b"\n").unwrap();
        assert!(matches!(keys.reload(), Err(KeyError::EmptyFile { .. })));
        assert!(keys.verify(UID, second.expose_secret().as_bytes()));
    }

    #[test]
    fn a_failed_verification_reloads_at_most_every_few_seconds() {
        let dir = TempDir::new("lazy");
        let current = dir.file("current", b"one");
        let keys = SinkKeys::from_files(&current, None).unwrap();
        std::fs::write(&current, b"two").unwrap();
        let fresh = SinkKeys::from_bytes(b"two".to_vec(), None)
            .unwrap()
            .token_for(UID);
        // The first failure reloads and then accepts the new key's token.
        assert!(keys.verify_or_reload(UID, fresh.expose_secret().as_bytes()));
        std::fs::write(&current, b"three").unwrap();
        let third = SinkKeys::from_bytes(b"three".to_vec(), None)
            .unwrap()
            .token_for(UID);
        // No reload right after the last one: a flood of bad tokens cannot make us read files.
        assert!(!keys.verify_or_reload(UID, third.expose_secret().as_bytes()));
    }
}
