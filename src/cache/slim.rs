//! What the cache keeps of an object: it drops what the operator never reads,
//! `metadata.managedFields` (three field managers write a QodSession), labels, annotations
//! outside `qod.dev/` (kubectl's last-applied copy of the manifest among them) and the create
//! intent once the status has answered it, and it shares one copy of each distinct
//! `status.profile` among the sessions that hold it. Every write is a patch of the fields it
//! changes, never the cached object sent back, so nothing dropped here is lost.
//!
//! Why it matters: the store holds every QodSession, and per session these were the largest
//! parts after the object's own fixed size (a BTreeMap costs a 0.5 KiB node for its first
//! entry; a profile with its figures about as much). BENCHMARKS.md, "Fourth look".

use std::{collections::HashSet, sync::Arc};

use crate::{
    api::{
        QodSession, SessionProfile,
        intent::{CREATE_INTENT, CreateIntent},
    },
    sweep::SweepWhenDoubled,
};

/// The prefix of the annotations the operator reads; the cache keeps no others.
const OUR_ANNOTATIONS: &str = "qod.dev/";

/// Profiles kept before the first sweep of those no session holds any more.
const SWEEP_AT: usize = 64;

/// Slims objects on their way into the store; one per watch.
#[derive(Debug)]
pub struct Slimmer {
    /// One copy of each distinct profile some cached session holds (and, until the next
    /// sweep, of profiles none holds any more).
    profiles: HashSet<Arc<SessionProfile>>,
    sweep: SweepWhenDoubled,
}

impl Default for Slimmer {
    fn default() -> Self {
        Self {
            profiles: HashSet::new(),
            sweep: SweepWhenDoubled::new(SWEEP_AT),
        }
    }
}

impl Slimmer {
    /// Drops what nothing reads from `session` and shares its profile.
    pub fn slim(&mut self, session: &mut QodSession) {
        let intent_answered = CreateIntent::pending_on(session).is_none();
        let metadata = &mut session.metadata;
        metadata.managed_fields = None;
        metadata.labels = None;
        if let Some(annotations) = metadata.annotations.as_mut() {
            annotations.retain(|key, _| {
                key.starts_with(OUR_ANNOTATIONS) && !(intent_answered && key == CREATE_INTENT)
            });
            if annotations.is_empty() {
                metadata.annotations = None;
            }
        }
        if let Some(profile) = session.status.as_mut().and_then(|s| s.profile.as_mut()) {
            *profile = self.shared(profile);
        }
    }

    /// The copy of `profile` every session holding an equal one shares.
    fn shared(&mut self, profile: &Arc<SessionProfile>) -> Arc<SessionProfile> {
        if let Some(known) = self.profiles.get(profile) {
            return Arc::clone(known);
        }
        self.profiles.insert(Arc::clone(profile));
        if self.sweep.due(self.profiles.len()) {
            self.profiles.retain(|p| Arc::strong_count(p) > 1);
            self.sweep.swept(self.profiles.len());
        }
        Arc::clone(profile)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::api::{ProfileFigures, QodSessionStatus};

    fn session(annotations: &[(&str, &str)]) -> QodSession {
        let mut session = QodSession::new("a", crate::api::QodSessionSpec::example());
        session.metadata = ObjectMeta {
            name: Some("a".into()),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            labels: Some(BTreeMap::from([("team".to_owned(), "media".to_owned())])),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        };
        session
    }

    fn intent() -> String {
        CreateIntent {
            requested_at: Time(jiff::Timestamp::UNIX_EPOCH),
            session_fingerprint: "f".into(),
            duration: 60,
            generation: Some(1),
            provider: None,
        }
        .to_annotation()
    }

    fn holding(profile: &str, max_downstream_rate: &str) -> QodSession {
        let mut session = session(&[]);
        session.status = Some(QodSessionStatus {
            session_id: Some("s-1".into()),
            profile: Some(Arc::new(SessionProfile {
                name: profile.into(),
                figures: ProfileFigures {
                    max_downstream_rate: Some(max_downstream_rate.into()),
                    ..ProfileFigures::default()
                },
            })),
            ..QodSessionStatus::default()
        });
        session
    }

    fn profile_of(session: &QodSession) -> &Arc<SessionProfile> {
        session
            .status
            .as_ref()
            .and_then(|s| s.profile.as_ref())
            .expect("a profile")
    }

    #[test]
    fn slimming_keeps_the_spec_and_our_annotations_only() {
        let mut session = session(&[
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ("example.com/owner", "media"),
            (crate::api::PAUSED_ANNOTATION, "true"),
            (crate::api::SESSION_ID_ANNOTATION, "s-1"),
        ]);
        let spec_before = session.spec.clone();
        Slimmer::default().slim(&mut session);
        assert_eq!(session.metadata.managed_fields, None);
        assert_eq!(session.metadata.labels, None);
        assert_eq!(
            session.metadata.annotations,
            Some(BTreeMap::from([
                (crate::api::PAUSED_ANNOTATION.to_owned(), "true".to_owned()),
                (
                    crate::api::SESSION_ID_ANNOTATION.to_owned(),
                    "s-1".to_owned()
                ),
            ]))
        );
        assert!(session.is_paused());
        assert_eq!(session.annotated_session_id(), Some("s-1"));
        assert_eq!(session.spec, spec_before);
        assert_eq!(session.metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn a_create_intent_is_kept_until_the_status_answers_it() {
        let mut slimmer = Slimmer::default();
        let mut pending = session(&[(CREATE_INTENT, &intent())]);
        slimmer.slim(&mut pending);
        let kept = CreateIntent::pending_on(&pending).expect("the intent still counts");
        assert_eq!(kept.session_fingerprint, "f");

        let mut answered = session(&[(CREATE_INTENT, &intent()), ("example.com/owner", "x")]);
        answered.status = Some(QodSessionStatus {
            session_id: Some("s-1".into()),
            ..QodSessionStatus::default()
        });
        slimmer.slim(&mut answered);
        assert_eq!(
            answered.metadata.annotations, None,
            "an emptied map is dropped, not kept empty"
        );
    }

    #[test]
    fn sessions_with_equal_profiles_share_one_copy() {
        let mut slimmer = Slimmer::default();
        let mut first = holding("QOS_L", "100 Mbps");
        let mut second = holding("QOS_L", "100 Mbps");
        let mut other_figures = holding("QOS_L", "50 Mbps");
        for session in [&mut first, &mut second, &mut other_figures] {
            slimmer.slim(session);
        }
        assert!(Arc::ptr_eq(profile_of(&first), profile_of(&second)));
        assert!(!Arc::ptr_eq(profile_of(&first), profile_of(&other_figures)));
        assert_eq!(
            profile_of(&other_figures)
                .figures
                .max_downstream_rate
                .as_deref(),
            Some("50 Mbps")
        );
    }

    #[test]
    fn profiles_no_session_holds_are_swept() {
        let mut slimmer = Slimmer::default();
        let mut kept = holding("QOS_KEPT", "1 Mbps");
        slimmer.slim(&mut kept);
        for i in 0..10 * SWEEP_AT {
            // Each dropped right away, as when a session's newer version replaces it.
            slimmer.slim(&mut holding(&format!("QOS_{i}"), "1 Mbps"));
        }
        assert!(
            slimmer.profiles.len() <= 2 * SWEEP_AT + 1,
            "{} profiles kept",
            slimmer.profiles.len()
        );
        let mut again = holding("QOS_KEPT", "1 Mbps");
        slimmer.slim(&mut again);
        assert!(
            Arc::ptr_eq(profile_of(&kept), profile_of(&again)),
            "a profile still held survives the sweeps"
        );
    }
}
