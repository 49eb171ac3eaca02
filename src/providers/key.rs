//! Which provider object a client belongs to, and the stable label that names it in logs and
//! (later) metrics.

use std::fmt;

use crate::api::{ProviderKind, ProviderRef};

/// The label of the provider the operator's flags configure.
pub const DEFAULT_LABEL: &str = "default";

/// One provider object: its kind, its namespace (a QodProvider's only) and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderKey {
    pub kind: ProviderKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ProviderKey {
    pub fn qod_provider(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: ProviderKind::QodProvider,
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    pub fn cluster_provider(name: impl Into<String>) -> Self {
        Self {
            kind: ProviderKind::ClusterQodProvider,
            namespace: None,
            name: name.into(),
        }
    }

    /// The provider a session in `session_namespace` means by `reference`: a QodProvider is
    /// always the one in the session's own namespace.
    pub fn of_ref(session_namespace: &str, reference: &ProviderRef) -> Self {
        match reference.kind {
            ProviderKind::QodProvider => Self::qod_provider(session_namespace, &reference.name),
            ProviderKind::ClusterQodProvider => Self::cluster_provider(&reference.name),
        }
    }
}

/// The label of the provider a session in `session_namespace` means by `reference` (`None`:
/// the default provider).
pub fn label_of(session_namespace: &str, reference: Option<&ProviderRef>) -> String {
    reference.map_or_else(
        || DEFAULT_LABEL.to_owned(),
        |reference| ProviderKey::of_ref(session_namespace, reference).to_string(),
    )
}

/// `ClusterQodProvider/<name>` or `QodProvider/<namespace>/<name>`.
impl fmt::Display for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{namespace}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}
