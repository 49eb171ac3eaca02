//! The QosProfile resources: one per provider and profile the catalog holds, named so people
//! can guess them (`qos-l.telco-a` for QOS_L of ClusterQodProvider telco-a, `qos-l.telco-b.media`
//! for QodProvider media/telco-b, `qos-l.default.qod-system` for the flags' provider of the
//! operator installed in qod-system), and written only when they differ from what is stored.
//!
//! Each installation of the operator labels its objects with its own namespace and touches no
//! others, so two installations in one cluster do not undo each other.

use std::collections::{BTreeMap, BTreeSet};

use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams},
};
use sha2::{Digest, Sha256};
use tracing::info;

use super::catalog::Known;
use crate::{
    api::{ProviderKind, QosProfile, QosProfileSpec},
    providers::DEFAULT_LABEL,
};

/// The field manager of the operator's QosProfile writes.
pub const FIELD_MANAGER: &str = "qod-operator-profiles";
/// Set on every QosProfile the operator writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "qod-operator");
/// The namespace of the installation that wrote a QosProfile.
pub const INSTALLATION_LABEL: &str = "qod.dev/installation";

/// The longest Kubernetes object name.
const MAX_NAME: usize = 253;

/// The readable name of `profile` of the provider labelled `provider`; `None` when it would not
/// be a valid object name.
fn readable_name(provider: &str, profile: &str, installation: &str) -> Option<String> {
    let mut parts = provider.split('/');
    let provider_part = match (parts.next(), parts.next(), parts.next()) {
        (Some(DEFAULT_LABEL), None, None) => format!("default.{installation}"),
        (Some(kind), Some(name), None) if kind == ProviderKind::ClusterQodProvider.to_string() => {
            name.to_owned()
        }
        (Some(kind), Some(namespace), Some(name))
            if kind == ProviderKind::QodProvider.to_string() =>
        {
            format!("{name}.{namespace}")
        }
        _ => return None,
    };
    let profile_part = profile.to_ascii_lowercase().replace('_', "-");
    let name = format!("{profile_part}.{provider_part}");
    is_dns_subdomain(&name).then_some(name)
}

/// A name for `profile` of `provider` that is always valid and, in practice, unique.
fn hashed_name(provider: &str, profile: &str, installation: &str) -> String {
    let digest = Sha256::digest(format!("{installation}\0{provider}\0{profile}"));
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("qosprofile-{hex}")
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The objects the listed profiles call for, by name. Providers and profiles are taken in
/// order, and a readable name already taken (QOS_L and qos-l of one provider) goes to the
/// first; the others get a hashed name.
pub fn desired(
    known: &BTreeMap<String, Known>,
    installation: &str,
) -> BTreeMap<String, QosProfileSpec> {
    let mut objects = BTreeMap::new();
    for (provider, known) in known {
        let Known::Listed(profiles) = known else {
            continue;
        };
        for profile in profiles.values() {
            let name = readable_name(provider, &profile.name, installation)
                .filter(|name| !objects.contains_key(name))
                .unwrap_or_else(|| hashed_name(provider, &profile.name, installation));
            objects.insert(name, QosProfileSpec::of(provider, profile));
        }
    }
    objects
}

/// What one sync changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub written: usize,
    pub deleted: usize,
}

/// Writes and deletes the QosProfile objects of one installation.
pub struct ProfileObjects {
    api: Api<QosProfile>,
    installation: String,
}

impl ProfileObjects {
    /// The objects of the operator installed in namespace `installation`.
    pub fn new(client: Client, installation: &str) -> Self {
        Self {
            api: Api::all(client),
            installation: installation.to_owned(),
        }
    }

    fn selector(&self) -> String {
        format!(
            "{}={},{INSTALLATION_LABEL}={}",
            MANAGED_BY.0, MANAGED_BY.1, self.installation
        )
    }

    /// Makes the stored objects match `known`. Objects of a provider not listed yet (or whose
    /// listing failed) are left as they are; objects of a provider not in `known` at all are
    /// deleted only when `providers_complete` (every provider has been seen), so a start-up
    /// does not delete what it has not looked at yet.
    pub async fn sync(
        &self,
        known: &BTreeMap<String, Known>,
        providers_complete: bool,
    ) -> Result<Synced, kube::Error> {
        let stored = self
            .api
            .list(&ListParams::default().labels(&self.selector()))
            .await?;
        let wanted = desired(known, &self.installation);
        let mut synced = Synced::default();
        let stored_specs: BTreeMap<String, &QosProfileSpec> = stored
            .items
            .iter()
            .map(|object| (object.name_any(), &object.spec))
            .collect();
        for (name, spec) in &wanted {
            if stored_specs.get(name).is_some_and(|stored| *stored == spec) {
                continue;
            }
            self.apply(name, spec).await?;
            synced.written += 1;
        }
        let keep_unlisted: BTreeSet<&str> = known
            .iter()
            .filter(|(_, known)| **known == Known::Unread)
            .map(|(provider, _)| provider.as_str())
            .collect();
        for (name, spec) in stored_specs {
            if wanted.contains_key(&name) || keep_unlisted.contains(spec.provider.as_str()) {
                continue;
            }
            if !known.contains_key(&spec.provider) && !providers_complete {
                continue;
            }
            info!(
                name,
                provider = spec.provider,
                profile = spec.profile,
                "QoS profile no longer offered; its QosProfile is deleted"
            );
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => synced.deleted += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        Ok(synced)
    }

    async fn apply(&self, name: &str, spec: &QosProfileSpec) -> Result<(), kube::Error> {
        let object = QosProfile {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(
                    [
                        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                        (INSTALLATION_LABEL.to_owned(), self.installation.clone()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: spec.clone(),
        };
        // Forced: the operator owns these objects; an edit by anyone else is undone.
        self.api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::qod::profiles::{ProfileStatus, QosProfile as ProviderProfile};

    fn listing(names: &[&str]) -> Known {
        Known::Listed(Arc::new(
            names
                .iter()
                .map(|name| {
                    let profile = ProviderProfile::named(name, ProfileStatus::Active);
                    ((*name).to_owned(), profile)
                })
                .collect(),
        ))
    }

    #[test]
    fn names_read_as_profile_dot_provider() {
        let known = BTreeMap::from([
            ("default".to_owned(), listing(&["QOS_L"])),
            ("ClusterQodProvider/telco-a".to_owned(), listing(&["QOS_L"])),
            ("QodProvider/media/telco-b".to_owned(), listing(&["qos.e"])),
            ("QodProvider/media/gone".to_owned(), Known::NotOffered),
        ]);
        let names: Vec<_> = desired(&known, "qod-system").into_keys().collect();
        assert_eq!(
            names,
            [
                "qos-l.default.qod-system",
                "qos-l.telco-a",
                "qos.e.telco-b.media"
            ]
        );
    }

    #[test]
    fn clashing_or_invalid_names_get_a_stable_hashed_one() {
        let known = BTreeMap::from([(
            "ClusterQodProvider/telco-a".to_owned(),
            listing(&["QOS_L", "qos-l", "-odd-", "a..b"]),
        )]);
        let first = desired(&known, "qod-system");
        assert_eq!(first.len(), 4, "{first:?}");
        assert_eq!(
            first["qos-l.telco-a"].profile, "QOS_L",
            "the first in order"
        );
        let hashed: Vec<_> = first
            .keys()
            .filter(|name| name.starts_with("qosprofile-"))
            .collect();
        assert_eq!(hashed.len(), 3, "{first:?}");
        assert!(hashed.iter().all(|name| is_dns_subdomain(name)));
        assert_eq!(first, desired(&known, "qod-system"), "the same every time");
        // Hashed names include the installation, as readable ones of the default provider do.
        let other = desired(&known, "other");
        assert!(
            other
                .keys()
                .filter(|name| name.starts_with("qosprofile-"))
                .all(|name| !first.contains_key(name))
        );
    }
}
