//! Which QodSessions use a provider: hold a session there (or a create in flight), or name it
//! in `providerRef`. The controller counts them against `maxSessions`; the keeper holds a
//! provider's finalizer while any remain and reports the count in its status.

use kube::ResourceExt;

use super::ProviderKey;
use crate::api::{ProviderKind, ProviderRef, QodSession, intent::effective_status};

/// Live sessions (held, or a create in flight) recorded at `provider` among `sessions`, other
/// than `except` (a uid): a QodProvider's in `namespace` only, since its key is relative to it.
pub fn live_sessions_at<'a>(
    sessions: impl IntoIterator<Item = &'a QodSession>,
    namespace: &str,
    provider: &str,
    except: &str,
) -> usize {
    let same_namespace_only = ProviderRef::from_key(provider)
        .is_some_and(|reference| reference.kind == ProviderKind::QodProvider);
    sessions
        .into_iter()
        .filter(|s| s.metadata.uid.as_deref() != Some(except))
        .filter(|s| !same_namespace_only || s.namespace().as_deref() == Some(namespace))
        .filter(|s| {
            let status = effective_status(s);
            status.provider.as_deref() == Some(provider)
                && (status.session_id.is_some() || status.create_requested_at.is_some())
        })
        .count()
}

/// Whether `session` names the provider `key` in its providerRef.
pub fn names(session: &QodSession, key: &ProviderKey) -> bool {
    session.spec.provider_ref.as_ref().is_some_and(|reference| {
        ProviderKey::of_ref(&session.namespace().unwrap_or_default(), reference) == *key
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::QodSessionStatus;

    fn session(namespace: &str, uid: &str, status: QodSessionStatus) -> QodSession {
        let mut session = QodSession::new(uid, crate::api::QodSessionSpec::example());
        session.metadata.namespace = Some(namespace.into());
        session.metadata.uid = Some(uid.into());
        session.status = Some(status);
        session
    }

    fn at(provider: &str, session_id: Option<&str>, pending: bool) -> QodSessionStatus {
        QodSessionStatus {
            provider: Some(provider.into()),
            session_id: session_id.map(Into::into),
            create_requested_at: pending.then(|| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now())
            }),
            observed_generation: Some(1),
            ..QodSessionStatus::default()
        }
    }

    #[test]
    fn live_sessions_count_held_and_pending_ones_at_that_provider_only() {
        let cluster = "ClusterQodProvider/a";
        let own = "QodProvider/b";
        let sessions = [
            session("one", "1", at(cluster, Some("s1"), false)),
            session("two", "2", at(cluster, None, true)),
            session("two", "3", at(cluster, None, false)),
            session("one", "4", at(own, Some("s4"), false)),
            session("two", "5", at(own, Some("s5"), false)),
            session("one", "6", QodSessionStatus::default()),
        ];
        assert_eq!(live_sessions_at(&sessions, "one", cluster, "x"), 2);
        assert_eq!(live_sessions_at(&sessions, "one", cluster, "1"), 1);
        assert_eq!(live_sessions_at(&sessions, "one", own, "x"), 1);
        assert_eq!(live_sessions_at(&sessions, "two", own, "x"), 1);
    }
}
