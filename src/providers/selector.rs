//! Which namespaces a ClusterQodProvider serves: its `namespaceSelector` as Kubernetes reads a
//! label selector (matchLabels and matchExpressions, all ANDed); absent or empty selects all.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use super::build::BuildError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceSelection {
    /// Every namespace: no selector, or an empty one.
    All,
    /// The namespaces whose labels match.
    Matching(Selector),
}

impl NamespaceSelection {
    pub fn parse(selector: Option<&LabelSelector>) -> Result<Self, BuildError> {
        let Some(selector) = selector else {
            return Ok(Self::All);
        };
        let selector = Selector::try_from(selector.clone()).map_err(|error| BuildError::Field {
            field: "spec.namespaceSelector",
            reason: error.to_string(),
        })?;
        Ok(if selector.selects_all() {
            Self::All
        } else {
            Self::Matching(selector)
        })
    }

    /// Whether a namespace with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::All => true,
            Self::Matching(selector) => selector.matches(labels),
        }
    }
}
