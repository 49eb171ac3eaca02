//! Our last write of each resource, or the copy a write was refused for, remembered until the
//! shared cache catches up, so a pass never plans from a cached copy known to be stale (it would
//! repeat what was already recorded: a second delete, a lookup for a create already recorded).

use kube::ResourceExt;

use crate::api::{FINALIZER, QodSession};

/// What we know of a resource beyond the cached copy (our last write, or a write the API
/// server refused), remembered until the cache has caught up with it.
#[derive(Clone, Debug, Default)]
pub enum OwnWrite {
    #[default]
    None,
    /// A write that turned resourceVersion `over` into `written`.
    Wrote { over: String, written: String },
    /// A write based on the copy at this resourceVersion was refused (409): the API server
    /// holds something newer, so that copy and older ones are stale. Planning from them again
    /// (while the watch is slow, or down) would only repeat the refused pass, provider calls
    /// included.
    Refused { at: String },
    /// Our finalizer was removed from a resource being deleted. The API server answers a
    /// removal that lets the deletion proceed with the object as it was before, old
    /// resourceVersion included, so versions cannot tell; but no finalizer can be added to a
    /// resource being deleted, so every copy that still holds ours is older.
    FinalizerRemoved,
}

impl OwnWrite {
    /// Whether `copy` is older than this write.
    pub fn is_missing_from(&self, copy: &QodSession) -> bool {
        match self {
            Self::None => false,
            Self::Wrote { over, written } => {
                predates(copy.resource_version().as_deref(), over, written)
            }
            Self::Refused { at } => {
                let cached = copy.resource_version();
                match (cached.as_deref().map(str::parse::<u64>), at.parse::<u64>()) {
                    (Some(Ok(cached)), Ok(at)) => cached <= at,
                    _ => cached.as_deref() == Some(at.as_str()),
                }
            }
            Self::FinalizerRemoved => copy.finalizers().iter().any(|f| f == FINALIZER),
        }
    }
}

/// Whether a copy at resourceVersion `cached` is older than our write that turned `over` into
/// `written`. etcd's resourceVersions are increasing integers, compared as such; should they
/// not parse (they are opaque by contract), only the version written over is known to be older.
fn predates(cached: Option<&str>, over: &str, written: &str) -> bool {
    let Some(cached) = cached else {
        return false;
    };
    match (cached.parse::<u64>(), written.parse::<u64>()) {
        (Ok(cached), Ok(written)) => cached < written,
        _ => cached == over,
    }
}

#[cfg(test)]
mod tests {
    use super::{OwnWrite, predates};
    use crate::api::{FINALIZER, QodSession};

    #[test]
    fn after_the_finalizer_is_removed_every_copy_holding_it_is_stale() {
        let mut copy = QodSession::new("s", crate::api::QodSessionSpec::example());
        // The version the API server answered the removal with: the one before it.
        copy.metadata.resource_version = Some("202".into());
        copy.metadata.finalizers = Some(vec![FINALIZER.into()]);
        assert!(OwnWrite::FinalizerRemoved.is_missing_from(&copy));
        copy.metadata.finalizers = Some(vec!["other.dev/keep".into()]);
        assert!(!OwnWrite::FinalizerRemoved.is_missing_from(&copy));
        assert!(!OwnWrite::None.is_missing_from(&copy));

        let refused = OwnWrite::Refused { at: "202".into() };
        assert!(refused.is_missing_from(&copy), "the refused copy itself");
        copy.metadata.resource_version = Some("201".into());
        assert!(refused.is_missing_from(&copy));
        copy.metadata.resource_version = Some("203".into());
        assert!(
            !refused.is_missing_from(&copy),
            "a newer copy is planned from"
        );
    }

    #[test]
    fn a_copy_predates_our_write_by_resource_version() {
        assert!(predates(Some("41"), "41", "42"));
        assert!(
            predates(Some("40"), "41", "42"),
            "older than what we wrote over"
        );
        assert!(!predates(Some("42"), "41", "42"));
        assert!(!predates(Some("57"), "41", "42"));
        assert!(!predates(None, "41", "42"));
        // Opaque versions: only the one written over is known to be older.
        assert!(predates(Some("a"), "a", "b"));
        assert!(!predates(Some("z"), "a", "b"));
    }
}
