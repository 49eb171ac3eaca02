//! What each provider's QoS Profiles API last said, in memory: the controller checks a new
//! session's profile against it ([`ProfileCatalog::check`]) and the sync
//! ([`super::sync`]) mirrors it into QosProfile resources.
//!
//! A listing is read at start, every refresh interval, and on demand when a session names a
//! profile the last listing does not hold (at most once per [`ON_DEMAND_SPACING`] per
//! provider, however many sessions ask). A provider whose API answers the list with 404, 405
//! or 501 has none: its sessions are not checked. A listing that cannot be read (the API
//! fails, credentials lack the scope) leaves the last good one in place, and a profile that
//! nothing can vouch for is left to the provider to judge at create time: profiles are an aid,
//! never a reason to stop a session the provider would accept.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::{
    metrics::Metrics,
    qod::{
        self,
        metered::Metered,
        profiles::{ProfileApi, ProfileFilter, ProfileStatus, QosProfile},
    },
    telemetry::error_chain,
};

/// The least time between two listings asked for by sessions naming unknown profiles.
pub const ON_DEMAND_SPACING: Duration = Duration::from_secs(10);

/// A provider's profiles by name.
pub type Listing = Arc<BTreeMap<String, QosProfile>>;

/// What is known of one provider's QoS Profiles API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Not listed yet, or never successfully.
    Unread,
    /// The provider has no QoS Profiles API.
    NotOffered,
    /// Its profiles, as last listed.
    Listed(Listing),
}

/// What a new session's profile check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No QoS Profiles API, or none that could be read: the provider judges alone.
    Unchecked,
    /// ACTIVE: may be used.
    Usable(QosProfile),
    /// DEPRECATED: sessions using it keep running; no new one may use it.
    Deprecated(QosProfile),
    /// The provider does not list it, or lists it INACTIVE.
    NotAvailable(NotAvailable),
}

/// Why a profile cannot be used now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAvailable {
    #[error("{provider} offers no QoS profile {name} (see kubectl get qosprofiles)")]
    Unknown { provider: String, name: String },
    #[error("QoS profile {name} of {provider} is {status}: no session can use it now")]
    NotActive {
        provider: String,
        name: String,
        status: String,
    },
}

struct Book {
    /// The client as the registry built it: another one means the provider changed.
    api: Arc<dyn ProfileApi>,
    metered: Metered<dyn ProfileApi>,
    state: Mutex<BookState>,
    /// One listing at a time per provider.
    listing: tokio::sync::Mutex<()>,
}

struct BookState {
    known: Known,
    /// When the last listing was asked for (whatever its outcome).
    asked_at: Option<Instant>,
}

/// Every provider's QoS profiles, as their APIs last listed them.
pub struct ProfileCatalog {
    books: RwLock<HashMap<String, Arc<Book>>>,
    metrics: Arc<Metrics>,
    /// Told when a listing changed what is known, for the sync to mirror it.
    changed: Notify,
}

impl std::fmt::Debug for ProfileCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileCatalog")
            .field("providers", &self.snapshot().len())
            .finish_non_exhaustive()
    }
}

impl ProfileCatalog {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            books: RwLock::default(),
            metrics,
            changed: Notify::new(),
        }
    }

    /// The book of `provider`, made anew when its client is not the one the book was made for.
    fn book(&self, provider: &str, api: &Arc<dyn ProfileApi>) -> Arc<Book> {
        if let Some(book) = self
            .books
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .filter(|book| Arc::ptr_eq(&book.api, api))
        {
            return Arc::clone(book);
        }
        let mut books = self.books.write().unwrap_or_else(PoisonError::into_inner);
        let book = books
            .entry(provider.to_owned())
            .and_modify(|book| {
                if !Arc::ptr_eq(&book.api, api) {
                    *book = Arc::new(self.new_book(provider, api));
                }
            })
            .or_insert_with(|| Arc::new(self.new_book(provider, api)));
        Arc::clone(book)
    }

    fn new_book(&self, provider: &str, api: &Arc<dyn ProfileApi>) -> Book {
        Book {
            api: Arc::clone(api),
            metered: Metered::new(Arc::clone(api), Arc::clone(&self.metrics), provider.into()),
            state: Mutex::new(BookState {
                known: Known::Unread,
                asked_at: None,
            }),
            listing: tokio::sync::Mutex::new(()),
        }
    }

    /// Keeps the books of `sources` (label and client) only: a provider gone, or without a
    /// QoS Profiles API now, is forgotten.
    pub fn keep_only(&self, sources: &[(String, Arc<dyn ProfileApi>)]) {
        let mut books = self.books.write().unwrap_or_else(PoisonError::into_inner);
        let before = books.len();
        books.retain(|label, book| {
            sources
                .iter()
                .any(|(source, api)| source == label && Arc::ptr_eq(api, &book.api))
        });
        if books.len() != before {
            self.changed.notify_one();
        }
    }

    /// What is known of every provider with a book.
    pub fn snapshot(&self) -> BTreeMap<String, Known> {
        self.books
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(label, book)| (label.clone(), book.lock().known.clone()))
            .collect()
    }

    /// Resolves once a listing changed something since the last call (a permit is kept).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Lists `provider`'s profiles now (the periodic refresh).
    pub async fn refresh(&self, provider: &str, api: &Arc<dyn ProfileApi>) -> Known {
        self.list(provider, api, None).await
    }

    /// Lists `provider`'s profiles, unless a listing other than the one `seen` (the last one
    /// the caller knew of) answers first: a caller that waited for another's listing uses its
    /// answer instead of asking again.
    async fn list(
        &self,
        provider: &str,
        api: &Arc<dyn ProfileApi>,
        seen: Option<Option<Instant>>,
    ) -> Known {
        let book = self.book(provider, api);
        let _one_at_a_time = book.listing.lock().await;
        {
            let state = book.lock();
            if seen.is_some_and(|seen| seen != state.asked_at) {
                return state.known.clone();
            }
        }
        let asked_at = Instant::now();
        let outcome = book
            .metered
            .retrieve_profiles(&ProfileFilter::default())
            .await;
        let mut state = book.lock();
        state.asked_at = Some(asked_at);
        let known = match outcome {
            Ok(profiles) => Known::Listed(Arc::new(
                profiles
                    .into_iter()
                    .map(|profile| (profile.name.clone(), profile))
                    .collect(),
            )),
            Err(error) if offers_none(&error) => Known::NotOffered,
            Err(error) => {
                warn!(
                    provider,
                    error = %error_chain(&error),
                    "listing the QoS profiles failed; keeping what was known"
                );
                return state.known.clone();
            }
        };
        if known != state.known {
            match &known {
                Known::Listed(profiles) => {
                    info!(provider, profiles = profiles.len(), "QoS profiles listed");
                }
                Known::NotOffered => {
                    info!(provider, "the provider has no QoS Profiles API");
                }
                Known::Unread => {}
            }
            state.known = known.clone();
            self.changed.notify_one();
        }
        known
    }

    /// Whether a new session at `provider` may use the profile `name`. Lists the provider's
    /// profiles first when none were listed, or when `name` is not among them and the last
    /// listing is older than [`ON_DEMAND_SPACING`].
    pub async fn check(&self, provider: &str, api: &Arc<dyn ProfileApi>, name: &str) -> Verdict {
        let book = self.book(provider, api);
        let (known, asked_at) = {
            let state = book.lock();
            (state.known.clone(), state.asked_at)
        };
        let stale = asked_at.is_none_or(|at| at.elapsed() >= ON_DEMAND_SPACING);
        let known = match known {
            Known::Listed(profiles) if profiles.contains_key(name) || !stale => {
                Known::Listed(profiles)
            }
            Known::NotOffered => Known::NotOffered,
            _ => self.list(provider, api, Some(asked_at)).await,
        };
        verdict(provider, name, &known)
    }
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, BookState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The answers to the list that mean the API is not there at all.
fn offers_none(error: &qod::Error) -> bool {
    matches!(error.status(), Some(404 | 405 | 501))
}

/// `name` judged by what is known of `provider`'s profiles.
pub fn verdict(provider: &str, name: &str, known: &Known) -> Verdict {
    let Known::Listed(profiles) = known else {
        return Verdict::Unchecked;
    };
    let Some(profile) = profiles.get(name) else {
        return Verdict::NotAvailable(NotAvailable::Unknown {
            provider: provider.to_owned(),
            name: name.to_owned(),
        });
    };
    match &profile.status {
        ProfileStatus::Active => Verdict::Usable(profile.clone()),
        ProfileStatus::Deprecated => Verdict::Deprecated(profile.clone()),
        other => Verdict::NotAvailable(NotAvailable::NotActive {
            provider: provider.to_owned(),
            name: name.to_owned(),
            status: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::qod::{Error, Operation, model::ErrorInfo};

    /// A profiles API that answers from a list it can be told to change, or with an error.
    struct Fake {
        profiles: Mutex<Result<Vec<QosProfile>, u16>>,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(profiles: Result<Vec<QosProfile>, u16>) -> Arc<Self> {
            Arc::new(Self {
                profiles: Mutex::new(profiles),
                calls: AtomicUsize::new(0),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
        fn set(&self, profiles: Result<Vec<QosProfile>, u16>) {
            *self.profiles.lock().unwrap() = profiles;
        }
    }

    #[async_trait]
    impl ProfileApi for Fake {
        async fn retrieve_profiles(&self, _: &ProfileFilter) -> Result<Vec<QosProfile>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match &*self.profiles.lock().unwrap() {
                Ok(profiles) => Ok(profiles.clone()),
                Err(status) => Err(Error::Api {
                    operation: Operation::RetrieveProfiles,
                    info: ErrorInfo::new(*status, "X", "y"),
                    retry_after: None,
                }),
            }
        }
        async fn get_profile(&self, _: &str) -> Result<QosProfile, Error> {
            unreachable!("the catalog lists, it never gets one")
        }
    }

    fn profile(name: &str, status: ProfileStatus) -> QosProfile {
        QosProfile::named(name, status)
    }

    fn catalog() -> ProfileCatalog {
        ProfileCatalog::new(Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn profiles_are_judged_by_their_status_and_unknown_ones_refused() {
        let fake = Fake::new(Ok(vec![
            profile("QOS_L", ProfileStatus::Active),
            profile("QOS_OLD", ProfileStatus::Deprecated),
            profile("QOS_OFF", ProfileStatus::Inactive),
        ]));
        let api: Arc<dyn ProfileApi> = fake.clone();
        let catalog = catalog();
        assert!(matches!(
            catalog.check("default", &api, "QOS_L").await,
            Verdict::Usable(p) if p.name == "QOS_L"
        ));
        assert!(matches!(
            catalog.check("default", &api, "QOS_OLD").await,
            Verdict::Deprecated(_)
        ));
        let Verdict::NotAvailable(inactive) = catalog.check("default", &api, "QOS_OFF").await
        else {
            panic!("INACTIVE is not available");
        };
        assert!(inactive.to_string().contains("INACTIVE"), "{inactive}");
        let Verdict::NotAvailable(unknown) = catalog.check("default", &api, "QOS_NEW").await else {
            panic!("unknown is not available");
        };
        assert!(
            unknown.to_string().contains("QOS_NEW") && unknown.to_string().contains("default"),
            "{unknown}"
        );
        // One listing answered all four: the unknown one came within the spacing.
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn an_unknown_profile_is_looked_for_again_after_the_spacing_only() {
        let fake = Fake::new(Ok(vec![profile("QOS_L", ProfileStatus::Active)]));
        let api: Arc<dyn ProfileApi> = fake.clone();
        let catalog = catalog();
        catalog.refresh("default", &api).await;
        fake.set(Ok(vec![
            profile("QOS_L", ProfileStatus::Active),
            profile("QOS_NEW", ProfileStatus::Active),
        ]));
        // Just listed: the new profile is not looked for yet.
        assert!(matches!(
            catalog.check("default", &api, "QOS_NEW").await,
            Verdict::NotAvailable(_)
        ));
        assert_eq!(fake.calls(), 1);
        // Once the spacing has passed, naming it lists again and finds it.
        catalog
            .books
            .read()
            .unwrap()
            .get("default")
            .unwrap()
            .lock()
            .asked_at = Instant::now().checked_sub(ON_DEMAND_SPACING);
        assert!(matches!(
            catalog.check("default", &api, "QOS_NEW").await,
            Verdict::Usable(_)
        ));
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test]
    async fn without_the_api_or_a_listing_nothing_is_checked() {
        let absent = Fake::new(Err(404));
        let api: Arc<dyn ProfileApi> = absent.clone();
        let catalog = catalog();
        assert_eq!(
            catalog.check("ClusterQodProvider/x", &api, "QOS_L").await,
            Verdict::Unchecked
        );
        assert_eq!(
            catalog.snapshot().get("ClusterQodProvider/x"),
            Some(&Known::NotOffered)
        );
        // Known to have none: not asked again by sessions.
        catalog.check("ClusterQodProvider/x", &api, "QOS_M").await;
        assert_eq!(absent.calls(), 1);

        let failing = Fake::new(Err(503));
        let api: Arc<dyn ProfileApi> = failing.clone();
        assert_eq!(
            catalog.check("ClusterQodProvider/y", &api, "QOS_L").await,
            Verdict::Unchecked
        );
        // A listing that failed keeps the last good one.
        failing.set(Ok(vec![profile("QOS_L", ProfileStatus::Active)]));
        catalog.refresh("ClusterQodProvider/y", &api).await;
        failing.set(Err(503));
        catalog.refresh("ClusterQodProvider/y", &api).await;
        assert!(matches!(
            catalog.check("ClusterQodProvider/y", &api, "QOS_L").await,
            Verdict::Usable(_)
        ));
    }

    #[tokio::test]
    async fn a_rebuilt_client_or_a_provider_gone_forgets_its_listing() {
        let first = Fake::new(Ok(vec![profile("QOS_L", ProfileStatus::Active)]));
        let first_api: Arc<dyn ProfileApi> = first.clone();
        let catalog = catalog();
        catalog.refresh("default", &first_api).await;
        let second = Fake::new(Ok(vec![]));
        let second_api: Arc<dyn ProfileApi> = second.clone();
        assert!(matches!(
            catalog.check("default", &second_api, "QOS_L").await,
            Verdict::NotAvailable(_)
        ));
        assert_eq!(second.calls(), 1);
        catalog.keep_only(&[]);
        assert!(catalog.snapshot().is_empty());
    }

    #[tokio::test]
    async fn sessions_waiting_for_a_listing_in_flight_use_its_answer() {
        let fake = Fake::new(Ok(vec![profile("QOS_L", ProfileStatus::Active)]));
        let api: Arc<dyn ProfileApi> = fake.clone();
        let catalog = Arc::new(catalog());
        // The sync's listing and several sessions' checks, all before anything was listed.
        let checks = (0..4).map(|_| {
            let (catalog, api) = (Arc::clone(&catalog), Arc::clone(&api));
            tokio::spawn(async move { catalog.check("default", &api, "QOS_L").await })
        });
        let listing = catalog.refresh("default", &api);
        let (_, verdicts) = tokio::join!(listing, futures::future::join_all(checks));
        for verdict in verdicts {
            assert!(matches!(verdict.unwrap(), Verdict::Usable(_)));
        }
        assert!(fake.calls() <= 2, "{} listings", fake.calls());
    }
}
