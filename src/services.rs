//! Application servers given as a Service (`spec.applicationServer.serviceRef`): one watch of
//! the Services in the operator's scope keeps each one's external addresses in memory (a few
//! bytes per Service, not the objects), so a reconcile pass resolves a reference without a
//! request; a change of a Service sends back exactly the QodSessions that name it (the session
//! cache indexes them by reference).
//!
//! The addresses are the load balancer's ingress IPs (one IPv4, one IPv6), else the Service's
//! `spec.externalIPs`. A load balancer that gives only a hostname is resolved through DNS the
//! first time a session needs it after each change, and the status says so.
//!
//! RBAC: get, list and watch on `services`.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cache::SessionCache;

/// How long one DNS lookup of a load balancer's hostname may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// What a Service offers as an application server's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// IPs from the load balancer or `spec.externalIPs`.
    Addresses(Addresses),
    /// Only a load balancer hostname: resolved through DNS when needed.
    Hostname(String),
    /// No external address yet.
    Nothing,
}

/// At most one address of each family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

impl Addresses {
    fn from_ips(ips: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut addresses = Self::default();
        for ip in ips {
            match ip {
                IpAddr::V4(v4) if addresses.ipv4.is_none() => {
                    addresses.ipv4 = Some(v4.to_string());
                }
                IpAddr::V6(v6) if addresses.ipv6.is_none() => {
                    addresses.ipv6 = Some(v6.to_string());
                }
                _ => {}
            }
        }
        addresses
    }

    pub fn is_empty(&self) -> bool {
        self.ipv4.is_none() && self.ipv6.is_none()
    }
}

/// What `service` offers: its load balancer's IPs, else its external IPs, else its load
/// balancer's hostname. Entries that are not IPs are skipped.
pub fn offer_of(service: &Service) -> Offer {
    let ingress = service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let from_lb = Addresses::from_ips(
        ingress
            .iter()
            .filter_map(|entry| entry.ip.as_deref()?.parse().ok()),
    );
    if !from_lb.is_empty() {
        return Offer::Addresses(from_lb);
    }
    let external = Addresses::from_ips(
        service
            .spec
            .as_ref()
            .and_then(|spec| spec.external_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok()),
    );
    if !external.is_empty() {
        return Offer::Addresses(external);
    }
    match ingress.iter().find_map(|entry| entry.hostname.clone()) {
        Some(hostname) => Offer::Hostname(hostname),
        None => Offer::Nothing,
    }
}

/// How a session's `serviceRef` resolves now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The Services have not been listed yet.
    NotSynced,
    /// No such Service in the session's namespace.
    NotFound { name: String },
    /// The Service has no external address (or its hostname does not resolve).
    NoAddress { why: String },
    /// The addresses to use; `via` says where they came from.
    Found { addresses: Addresses, via: String },
}

#[derive(Clone, Debug)]
struct Known {
    offer: Offer,
    /// The hostname's lookup, once done for this offer.
    looked_up: Option<Result<Addresses, String>>,
}

#[derive(Debug, Default)]
struct ServicesState {
    services: HashMap<(String, String), Known>,
    synced: bool,
    relisting: Option<HashMap<(String, String), Known>>,
}

/// The external addresses of every Service in scope, kept by [`ServiceAddresses::run`].
#[derive(Debug, Default)]
pub struct ServiceAddresses {
    state: RwLock<ServicesState>,
}

impl ServiceAddresses {
    /// How `name` in `namespace` resolves now; a hostname is looked up once per change.
    pub async fn resolve(&self, namespace: &str, name: &str) -> Resolution {
        let key = (namespace.to_owned(), name.to_owned());
        let known = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if !state.synced {
                return Resolution::NotSynced;
            }
            match state.services.get(&key) {
                Some(known) => known.clone(),
                None => {
                    return Resolution::NotFound {
                        name: name.to_owned(),
                    };
                }
            }
        };
        match (known.offer, known.looked_up) {
            (Offer::Addresses(addresses), _) => Resolution::Found {
                addresses,
                via: format!("Service {name}"),
            },
            (Offer::Nothing, _) => Resolution::NoAddress {
                why: format!("Service {name} has no external address yet"),
            },
            (Offer::Hostname(hostname), Some(looked_up)) => {
                found_by_dns(name, &hostname, looked_up)
            }
            (Offer::Hostname(hostname), None) => {
                let looked_up = lookup(&hostname).await;
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                // Kept only if the Service still offers that hostname.
                if let Some(known) = state.services.get_mut(&key)
                    && known.offer == Offer::Hostname(hostname.clone())
                {
                    known.looked_up = Some(looked_up.clone());
                }
                found_by_dns(name, &hostname, looked_up)
            }
        }
    }

    fn apply(&self, service: &Service) {
        let key = (service.namespace().unwrap_or_default(), service.name_any());
        let offer = offer_of(service);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let target = match state.relisting.as_mut() {
            Some(relisting) => relisting,
            None => &mut state.services,
        };
        let looked_up = target
            .get(&key)
            .filter(|known| known.offer == offer)
            .and_then(|known| known.looked_up.clone());
        target.insert(key, Known { offer, looked_up });
    }

    fn delete(&self, service: &Service) {
        let key = (service.namespace().unwrap_or_default(), service.name_any());
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.services.remove(&key);
    }

    /// Runs the watch until `stop`, sending back to the controller the sessions that name a
    /// Service that changed.
    pub async fn run(
        self: Arc<Self>,
        client: Client,
        namespace: Option<&str>,
        sessions: SessionCache,
        stop: CancellationToken,
    ) {
        let api: Api<Service> = match namespace {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::all(client),
        };
        let events = watcher(api, watcher::Config::default()).default_backoff();
        let mut events = std::pin::pin!(events.take_until(stop.cancelled_owned()));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => {
                    self.state
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .relisting = Some(HashMap::new());
                }
                Ok(watcher::Event::InitApply(service)) => self.apply(&service),
                Ok(watcher::Event::InitDone) => {
                    {
                        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                        if let Some(listed) = state.relisting.take() {
                            state.services = listed;
                        }
                        state.synced = true;
                    }
                    info!("Services listed");
                    sessions
                        .retrigger(|session| session.spec.application_server.service_ref.is_some());
                }
                Ok(watcher::Event::Apply(service)) => {
                    self.apply(&service);
                    retrigger(&sessions, &service);
                }
                Ok(watcher::Event::Delete(service)) => {
                    self.delete(&service);
                    retrigger(&sessions, &service);
                }
                Err(error) => warn!(error = %error, "watching Services failed; retrying"),
            }
        }
    }
}

fn retrigger(sessions: &SessionCache, service: &Service) {
    sessions.retrigger_referencing(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    );
}

fn found_by_dns(name: &str, hostname: &str, looked_up: Result<Addresses, String>) -> Resolution {
    match looked_up {
        Ok(addresses) => Resolution::Found {
            addresses,
            via: format!("Service {name}: load balancer hostname {hostname}, resolved by DNS"),
        },
        Err(why) => Resolution::NoAddress {
            why: format!(
                "Service {name}: load balancer hostname {hostname} does not resolve: {why}"
            ),
        },
    }
}

async fn lookup(hostname: &str) -> Result<Addresses, String> {
    match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((hostname, 0))).await {
        Ok(Ok(found)) => {
            let addresses = Addresses::from_ips(found.map(|socket| socket.ip()));
            if addresses.is_empty() {
                Err("no address".to_owned())
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {DNS_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn addresses(ipv4: Option<&str>, ipv6: Option<&str>) -> Offer {
        Offer::Addresses(Addresses {
            ipv4: ipv4.map(Into::into),
            ipv6: ipv6.map(Into::into),
        })
    }

    #[test]
    fn load_balancer_ips_first_then_external_ips_then_a_hostname() {
        let lb = service(json!({
            "spec": {"externalIPs": ["192.0.2.9"]},
            "status": {"loadBalancer": {"ingress": [
                {"hostname": "lb.example.com"}, {"ip": "2001:db8::7"}, {"ip": "198.51.100.7"},
                {"ip": "198.51.100.8"}
            ]}}
        }));
        assert_eq!(
            offer_of(&lb),
            addresses(Some("198.51.100.7"), Some("2001:db8::7"))
        );
        let external = service(json!({"spec": {"externalIPs": ["not-an-ip", "192.0.2.9"]}}));
        assert_eq!(offer_of(&external), addresses(Some("192.0.2.9"), None));
        let hostname = service(json!({
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
        }));
        assert_eq!(
            offer_of(&hostname),
            Offer::Hostname("lb.example.com".into())
        );
        assert_eq!(
            offer_of(&service(json!({"spec": {"type": "ClusterIP"}}))),
            Offer::Nothing
        );
    }

    fn named(namespace: &str, name: &str, value: serde_json::Value) -> Service {
        let mut service = service(value);
        service.metadata.namespace = Some(namespace.into());
        service.metadata.name = Some(name.into());
        service
    }

    #[tokio::test]
    async fn nothing_resolves_before_the_first_list_and_a_hostname_is_looked_up_once() {
        let addresses = ServiceAddresses::default();
        assert_eq!(
            addresses.resolve("apps", "web").await,
            Resolution::NotSynced
        );
        {
            let mut state = addresses.state.write().unwrap();
            state.synced = true;
        }
        assert_eq!(
            addresses.resolve("apps", "web").await,
            Resolution::NotFound { name: "web".into() }
        );
        addresses.apply(&named("apps", "web", json!({})));
        assert!(matches!(
            addresses.resolve("apps", "web").await,
            Resolution::NoAddress { why } if why.contains("web")
        ));
        addresses.apply(&named(
            "apps",
            "web",
            json!({"status": {"loadBalancer": {"ingress": [{"hostname": "localhost"}]}}}),
        ));
        let Resolution::Found {
            addresses: found,
            via,
        } = addresses.resolve("apps", "web").await
        else {
            panic!("localhost resolves");
        };
        assert!(found.ipv4.is_some() || found.ipv6.is_some(), "{found:?}");
        assert!(via.contains("localhost") && via.contains("DNS"), "{via}");
        // Kept for this offer: the same Service again keeps the lookup.
        addresses.apply(&named(
            "apps",
            "web",
            json!({"status": {"loadBalancer": {"ingress": [{"hostname": "localhost"}]}}}),
        ));
        assert!(
            addresses.state.read().unwrap().services[&("apps".into(), "web".into())]
                .looked_up
                .is_some()
        );
        addresses.delete(&named("apps", "web", json!({})));
        assert!(matches!(
            addresses.resolve("apps", "web").await,
            Resolution::NotFound { .. }
        ));
    }
}
