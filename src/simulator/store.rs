//! The session store: every session the simulator holds, its state machine, and the flow
//! overlap rule behind 409 CONFLICT.
//!
//! Lifecycle (section 5 of the API notes): a session is REQUESTED on create and becomes
//! AVAILABLE after the configured delay; when its duration runs out it turns UNAVAILABLE with
//! DURATION_EXPIRED and is removed. A network termination (test control) turns it UNAVAILABLE
//! with NETWORK_TERMINATED and keeps it for a retention period, still occupying its flow, until
//! the client deletes it. Each status change is queued to the session's notifier. Removed
//! sessions are kept in a short history so tests can inspect their deliveries.

use std::{
    collections::{HashMap, VecDeque},
    net::{Ipv4Addr, Ipv6Addr},
    sync::Arc,
    time::Duration,
};

use jiff::Timestamp;
use tokio::{sync::mpsc::UnboundedSender, time::Instant};
use uuid::Uuid;

use super::{
    clock::{self, Clock},
    notifier::{Callback, Delivery, Outgoing},
    profiles::QosProfile,
    reply::{ApiVersion, Dialect},
    validation::{parse_ipv4_network, parse_ipv6_network},
};
use crate::qod::{
    event::NotificationFormat,
    model::{ApplicationServer, Device, PortsSpec, QosStatus, StatusInfo},
};

/// How many removed sessions the history keeps.
const REMOVED_HISTORY: usize = 8192;

/// One QoS session.
#[derive(Debug)]
pub struct Session {
    pub id: Uuid,
    /// The API shape it was created with.
    pub version: ApiVersion,
    pub dialect: Dialect,
    pub device: Option<Device>,
    pub application_server: ApplicationServer,
    pub device_ports: Option<PortsSpec>,
    pub application_server_ports: Option<PortsSpec>,
    /// The profile as it was when the session was created (later changes do not apply).
    pub profile: Arc<QosProfile>,
    /// Granted duration while REQUESTED, total (with extensions) afterwards.
    pub duration: u32,
    pub callback: Option<Callback>,
    pub format: NotificationFormat,
    pub status: QosStatus,
    pub status_info: Option<StatusInfo>,
    pub created_at: Timestamp,
    /// Creation order, assigned by [`Store::insert`]: sessions created within one clock tick
    /// still list in a stable order.
    pub seq: u64,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// The next transition: REQUESTED -> AVAILABLE, AVAILABLE -> expired, UNAVAILABLE -> removed.
    pub deadline: Option<Instant>,
    pub deliveries: Vec<Delivery>,
    /// `GET`s of this session answered so far, so tests can tell which sessions were re-read.
    pub reads: u64,
    /// Feeds the session's notifier; dropped when the session is removed.
    pub outbox: Option<UnboundedSender<Outgoing>>,
    pub removed_at: Option<Timestamp>,
}

/// What a new session is made of (the checked request plus the simulator's choices).
pub struct NewSession {
    pub id: Uuid,
    pub version: ApiVersion,
    pub dialect: Dialect,
    pub device: Option<Device>,
    pub application_server: ApplicationServer,
    pub device_ports: Option<PortsSpec>,
    pub application_server_ports: Option<PortsSpec>,
    pub profile: Arc<QosProfile>,
    pub duration: u32,
    pub callback: Option<Callback>,
    pub format: NotificationFormat,
    pub outbox: Option<UnboundedSender<Outgoing>>,
}

impl Session {
    /// A REQUESTED session that turns AVAILABLE after `available_after` (at once when zero).
    pub fn create(new: NewSession, now: Instant, clock: &Clock, available_after: Duration) -> Self {
        let mut session = Self {
            id: new.id,
            version: new.version,
            dialect: new.dialect,
            device: new.device,
            application_server: new.application_server,
            device_ports: new.device_ports,
            application_server_ports: new.application_server_ports,
            profile: new.profile,
            duration: new.duration,
            callback: new.callback,
            format: new.format,
            status: QosStatus::Requested,
            status_info: None,
            created_at: clock.wall(now),
            seq: 0,
            started_at: None,
            ended_at: None,
            deadline: Some(now + available_after),
            deliveries: Vec::new(),
            reads: 0,
            outbox: new.outbox,
            removed_at: None,
        };
        if available_after.is_zero() {
            session.make_available(now, clock);
        }
        session
    }

    /// When the session ends (AVAILABLE: as scheduled; UNAVAILABLE: when it ended).
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self.status {
            QosStatus::Available => self
                .started_at
                .map(|start| clock::add_seconds(start, self.duration)),
            _ => self.ended_at,
        }
    }

    /// The duration the API reports: granted, total, or effectively used once UNAVAILABLE.
    pub fn reported_duration(&self) -> u32 {
        match (&self.status, self.started_at, self.ended_at) {
            (QosStatus::Unavailable, Some(start), Some(end)) => {
                let used = end.duration_since(start).as_secs_f64().round();
                // At least one second (the schema's minimum), at most what was granted.
                used.clamp(1.0, f64::from(self.duration.max(1))) as u32
            }
            _ => self.duration,
        }
    }

    /// REQUESTED -> AVAILABLE at `at`; the expiry is `at` + duration.
    pub fn make_available(&mut self, at: Instant, clock: &Clock) {
        self.status = QosStatus::Available;
        self.status_info = None;
        self.started_at = Some(clock.wall(at));
        self.deadline = Some(at + Duration::from_secs(u64::from(self.duration)));
        self.notify(QosStatus::Available, None, clock.wall_now());
    }

    /// AVAILABLE -> UNAVAILABLE/DURATION_EXPIRED; it ended when it was scheduled to.
    fn expire(&mut self, clock: &Clock) {
        self.status = QosStatus::Unavailable;
        self.status_info = Some(StatusInfo::DurationExpired);
        self.ended_at = self.expires_at_when_available();
        self.deadline = None;
        self.notify(
            QosStatus::Unavailable,
            Some(StatusInfo::DurationExpired),
            clock.wall_now(),
        );
    }

    fn expires_at_when_available(&self) -> Option<Timestamp> {
        self.started_at
            .map(|start| clock::add_seconds(start, self.duration))
    }

    /// The network ends the session: UNAVAILABLE/NETWORK_TERMINATED, kept for `retention`.
    /// Returns false when it was already UNAVAILABLE.
    pub fn terminate(&mut self, now: Instant, clock: &Clock, retention: Duration) -> bool {
        if self.status == QosStatus::Unavailable {
            return false;
        }
        let at = clock.wall(now);
        self.status = QosStatus::Unavailable;
        self.status_info = Some(StatusInfo::NetworkTerminated);
        self.ended_at = Some(at);
        self.deadline = Some(now + retention);
        self.notify(
            QosStatus::Unavailable,
            Some(StatusInfo::NetworkTerminated),
            at,
        );
        true
    }

    /// The client deletes the session: unless it was already UNAVAILABLE, it turns
    /// UNAVAILABLE/DELETE_REQUESTED and the sink hears about it.
    pub fn delete(&mut self, clock: &Clock) {
        if self.status == QosStatus::Unavailable {
            return;
        }
        let at = clock.wall_now();
        self.status = QosStatus::Unavailable;
        self.status_info = Some(StatusInfo::DeleteRequested);
        self.ended_at = Some(at);
        self.deadline = None;
        self.notify(
            QosStatus::Unavailable,
            Some(StatusInfo::DeleteRequested),
            at,
        );
    }

    /// Adds `seconds` to an AVAILABLE session's total duration and moves its expiry.
    pub fn extend_by(&mut self, seconds: u32) {
        self.duration = self.duration.saturating_add(seconds);
        if let Some(deadline) = self.deadline.as_mut() {
            *deadline += Duration::from_secs(u64::from(seconds));
        }
    }

    /// Queues a status change for the sink and records it as a pending delivery.
    fn notify(&mut self, qos_status: QosStatus, status_info: Option<StatusInfo>, time: Timestamp) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        let event = Outgoing {
            event_id: Uuid::new_v4().to_string(),
            qos_status,
            status_info,
            time,
        };
        let mut delivery = Delivery::pending(&event, false);
        if outbox.send(event).is_err() {
            delivery.fail("the notifier has stopped");
        }
        self.deliveries.push(delivery);
    }

    /// True when both sessions are for the same device and their flows share any packet.
    pub fn overlaps(
        &self,
        device: Option<&Device>,
        server: &ApplicationServer,
        device_ports: Option<&PortsSpec>,
        server_ports: Option<&PortsSpec>,
    ) -> bool {
        let same_device = match (self.device.as_ref(), device) {
            (Some(a), Some(b)) => same_device(a, b),
            _ => false,
        };
        same_device
            && servers_overlap(&self.application_server, server)
            && ports_overlap(self.device_ports.as_ref(), device_ports)
            && ports_overlap(self.application_server_ports.as_ref(), server_ports)
    }
}

/// Every session, live and recently removed.
#[derive(Debug, Default)]
pub struct Store {
    live: HashMap<Uuid, Session>,
    removed: VecDeque<Session>,
    created: u64,
}

impl Store {
    pub fn insert(&mut self, mut session: Session) {
        self.created += 1;
        session.seq = self.created;
        self.live.insert(session.id, session);
    }

    #[cfg(test)]
    pub fn get(&self, id: &Uuid) -> Option<&Session> {
        self.live.get(id)
    }

    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut Session> {
        self.live.get_mut(id)
    }

    /// A live or removed session, for recording deliveries.
    pub fn any_mut(&mut self, id: &Uuid) -> Option<&mut Session> {
        match self.live.get_mut(id) {
            Some(session) => Some(session),
            None => self.removed.iter_mut().find(|s| s.id == *id),
        }
    }

    /// Takes a session out of the API's view (GET answers 404 from now on).
    pub fn remove(&mut self, id: &Uuid, at: Timestamp) -> Option<&Session> {
        let mut session = self.live.remove(id)?;
        session.removed_at = Some(at);
        // Dropping the sender lets the notifier finish what is queued and stop.
        session.outbox = None;
        if self.removed.len() == REMOVED_HISTORY {
            self.removed.pop_front();
        }
        self.removed.push_back(session);
        self.removed.back()
    }

    /// The first live session whose flow overlaps the given one.
    pub fn conflicting(
        &self,
        device: Option<&Device>,
        server: &ApplicationServer,
        device_ports: Option<&PortsSpec>,
        server_ports: Option<&PortsSpec>,
    ) -> Option<&Session> {
        self.live
            .values()
            .filter(|s| s.overlaps(device, server, device_ports, server_ports))
            .min_by_key(|s| s.seq)
    }

    /// Live sessions of `device`, oldest first.
    pub fn of_device(&self, device: &Device) -> Vec<&Session> {
        let mut sessions: Vec<&Session> = self
            .live
            .values()
            .filter(|s| s.device.as_ref().is_some_and(|d| same_device(d, device)))
            .collect();
        sessions.sort_by_key(|s| s.seq);
        sessions
    }

    /// Live sessions (and, with `with_removed`, the removed ones), oldest first.
    pub fn all(&self, with_removed: bool) -> Vec<&Session> {
        let mut sessions: Vec<&Session> = self.live.values().collect();
        if with_removed {
            sessions.extend(self.removed.iter());
        }
        sessions.sort_by_key(|s| s.seq);
        sessions
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Forgets everything (no notifications are sent).
    pub fn clear(&mut self) {
        self.live.clear();
        self.removed.clear();
    }

    /// Applies every transition due at `now`: activation, expiry (the session is removed) and
    /// the end of a terminated session's retention (removed without an event).
    pub fn advance(&mut self, now: Instant, clock: &Clock) {
        let mut gone = Vec::new();
        for session in self.live.values_mut() {
            while let Some(deadline) = session.deadline {
                if deadline > now {
                    break;
                }
                match session.status {
                    QosStatus::Requested => session.make_available(deadline, clock),
                    QosStatus::Available => {
                        session.expire(clock);
                        gone.push(session.id);
                        break;
                    }
                    _ => {
                        session.deadline = None;
                        gone.push(session.id);
                        break;
                    }
                }
            }
        }
        let at = clock.wall(now);
        for id in gone {
            self.remove(&id, at);
        }
    }

    /// The earliest pending transition.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.live.values().filter_map(|s| s.deadline).min()
    }
}

/// Two device descriptions name the same device when any identifier given in both matches.
pub fn same_device(a: &Device, b: &Device) -> bool {
    fn both<T: PartialEq>(a: Option<&T>, b: Option<&T>) -> bool {
        matches!((a, b), (Some(a), Some(b)) if a == b)
    }
    let ipv4 = match (&a.ipv4_address, &b.ipv4_address) {
        (Some(a), Some(b)) => {
            a.public_address == b.public_address
                && (both(a.private_address.as_ref(), b.private_address.as_ref())
                    || both(a.public_port.as_ref(), b.public_port.as_ref()))
        }
        _ => false,
    };
    ipv4 || both(a.phone_number.as_ref(), b.phone_number.as_ref())
        || both(
            a.network_access_identifier.as_ref(),
            b.network_access_identifier.as_ref(),
        )
        || match (&a.ipv6_address, &b.ipv6_address) {
            (Some(a), Some(b)) => match (a.parse::<Ipv6Addr>(), b.parse::<Ipv6Addr>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            },
            _ => false,
        }
}

/// Whether the application server address blocks intersect (v4 with v4, v6 with v6).
pub fn servers_overlap(a: &ApplicationServer, b: &ApplicationServer) -> bool {
    let v4 = match (&a.ipv4_address, &b.ipv4_address) {
        (Some(a), Some(b)) => match (parse_ipv4_network(a), parse_ipv4_network(b)) {
            (Some(a), Some(b)) => ipv4_networks_overlap(a, b),
            _ => a == b,
        },
        _ => false,
    };
    let v6 = match (&a.ipv6_address, &b.ipv6_address) {
        (Some(a), Some(b)) => match (parse_ipv6_network(a), parse_ipv6_network(b)) {
            (Some(a), Some(b)) => ipv6_networks_overlap(a, b),
            _ => a == b,
        },
        _ => false,
    };
    v4 || v6
}

fn ipv4_networks_overlap((a, a_len): (Ipv4Addr, u8), (b, b_len): (Ipv4Addr, u8)) -> bool {
    let len = u32::from(a_len.min(b_len));
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn ipv6_networks_overlap((a, a_len): (Ipv6Addr, u8), (b, b_len): (Ipv6Addr, u8)) -> bool {
    let len = u32::from(a_len.min(b_len));
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(a) & mask == u128::from(b) & mask
}

/// Whether two port selections share a port; no selection means every port.
pub fn ports_overlap(a: Option<&PortsSpec>, b: Option<&PortsSpec>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let a = intervals(a);
    let b = intervals(b);
    a.iter().any(|(a_from, a_to)| {
        b.iter()
            .any(|(b_from, b_to)| a_from <= b_to && b_from <= a_to)
    })
}

fn intervals(spec: &PortsSpec) -> Vec<(u16, u16)> {
    let ranges = spec.ranges.iter().flatten().map(|r| (r.from, r.to));
    let ports = spec.ports.iter().flatten().map(|p| (*p, *p));
    ranges.chain(ports).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{qod::model::DeviceIpv4Address, simulator::profiles};
    use serde_json::json;

    fn device(value: serde_json::Value) -> Device {
        serde_json::from_value(value).unwrap()
    }

    fn server(v4: &str) -> ApplicationServer {
        ApplicationServer {
            ipv4_address: Some(v4.into()),
            ipv6_address: None,
        }
    }

    fn ports(value: serde_json::Value) -> PortsSpec {
        serde_json::from_value(value).unwrap()
    }

    fn new_session(id: Uuid, phone: &str, app: &str) -> NewSession {
        NewSession {
            id,
            version: ApiVersion::V1,
            dialect: Dialect::Camara,
            device: Some(device(json!({"phoneNumber": phone}))),
            application_server: server(app),
            device_ports: None,
            application_server_ports: None,
            profile: profiles::Table::builtin().find("QOS_E").unwrap(),
            duration: 10,
            callback: None,
            format: NotificationFormat::V1,
            outbox: None,
        }
    }

    #[test]
    fn devices_match_on_any_shared_identifier() {
        let phone = device(json!({"phoneNumber": "+15550000001"}));
        let both = device(json!({"phoneNumber": "+15550000001", "ipv6Address": "2001:db8::1"}));
        let v6 = device(json!({"ipv6Address": "2001:DB8:0::1"}));
        assert!(same_device(&phone, &both));
        assert!(same_device(&both, &v6), "IPv6 compared as addresses");
        assert!(!same_device(&phone, &v6));
        let nat_a = Device {
            ipv4_address: Some(DeviceIpv4Address {
                public_address: "198.51.100.7".into(),
                private_address: None,
                public_port: Some(40001),
            }),
            ..Device::default()
        };
        let mut nat_b = nat_a.clone();
        assert!(same_device(&nat_a, &nat_b));
        if let Some(v4) = nat_b.ipv4_address.as_mut() {
            v4.public_port = Some(40002);
        }
        assert!(!same_device(&nat_a, &nat_b), "another port behind the NAT");
    }

    #[test]
    fn address_blocks_and_ports_overlap() {
        assert!(servers_overlap(
            &server("203.0.113.0/24"),
            &server("203.0.113.10")
        ));
        assert!(!servers_overlap(
            &server("203.0.113.0/25"),
            &server("203.0.113.200")
        ));
        assert!(servers_overlap(&server("0.0.0.0/0"), &server("8.8.8.8")));
        let v6 = |a: &str| ApplicationServer {
            ipv4_address: None,
            ipv6_address: Some(a.into()),
        };
        assert!(servers_overlap(&v6("2001:db8::/32"), &v6("2001:db8:1::5")));
        assert!(!servers_overlap(&v6("2001:db8::/32"), &server("1.2.3.4")));

        let range = ports(json!({"ranges": [{"from": 5000, "to": 5010}]}));
        let inside = ports(json!({"ports": [5010]}));
        let outside = ports(json!({"ports": [5011, 80]}));
        assert!(ports_overlap(Some(&range), Some(&inside)));
        assert!(!ports_overlap(Some(&range), Some(&outside)));
        assert!(ports_overlap(None, Some(&outside)), "no ports = every port");
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_runs_on_the_clock() {
        let start: Timestamp = "2025-01-02T03:00:00Z".parse().unwrap();
        let clock = Clock::starting_at(start);
        let mut store = Store::default();
        let id = Uuid::new_v4();
        let now = clock.now();
        store.insert(Session::create(
            new_session(id, "+15550000001", "203.0.113.0/24"),
            now,
            &clock,
            Duration::from_secs(1),
        ));
        assert_eq!(store.get(&id).unwrap().status, QosStatus::Requested);
        assert_eq!(store.next_deadline(), Some(now + Duration::from_secs(1)));

        tokio::time::advance(Duration::from_secs(1)).await;
        store.advance(clock.now(), &clock);
        let session = store.get(&id).unwrap();
        assert_eq!(session.status, QosStatus::Available);
        assert_eq!(
            session.started_at,
            Some("2025-01-02T03:00:01Z".parse().unwrap())
        );
        assert_eq!(
            session.expires_at(),
            Some("2025-01-02T03:00:11Z".parse().unwrap())
        );

        store.get_mut(&id).unwrap().extend_by(5);
        tokio::time::advance(Duration::from_secs(10)).await;
        store.advance(clock.now(), &clock);
        assert_eq!(store.get(&id).unwrap().status, QosStatus::Available);
        tokio::time::advance(Duration::from_secs(5)).await;
        store.advance(clock.now(), &clock);
        assert!(store.get(&id).is_none(), "expired sessions are removed");
        let removed = store.all(true);
        assert_eq!(removed[0].status_info, Some(StatusInfo::DurationExpired));
        assert_eq!(removed[0].reported_duration(), 15);
        assert_eq!(store.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn terminated_sessions_are_kept_for_the_retention_then_removed() {
        let clock = Clock::start();
        let mut store = Store::default();
        let id = Uuid::new_v4();
        store.insert(Session::create(
            new_session(id, "+15550000001", "203.0.113.1"),
            clock.now(),
            &clock,
            Duration::ZERO,
        ));
        let session = store.get_mut(&id).unwrap();
        assert_eq!(session.status, QosStatus::Available, "available at once");
        assert!(session.terminate(clock.now(), &clock, Duration::from_secs(360)));
        assert!(!session.terminate(clock.now(), &clock, Duration::from_secs(360)));
        assert_eq!(session.reported_duration(), 1, "schema minimum");

        tokio::time::advance(Duration::from_secs(359)).await;
        store.advance(clock.now(), &clock);
        let kept = store.get(&id).unwrap();
        assert_eq!(kept.status_info, Some(StatusInfo::NetworkTerminated));
        // Still occupies its flow.
        assert!(
            store
                .conflicting(kept.device.as_ref(), &server("203.0.113.0/24"), None, None)
                .is_some()
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        store.advance(clock.now(), &clock);
        assert!(store.get(&id).is_none());
    }

    #[test]
    fn retrieval_by_device_and_conflicts() {
        let clock = Clock::start();
        let mut store = Store::default();
        let a = Uuid::new_v4();
        store.insert(Session::create(
            new_session(a, "+15550000001", "203.0.113.1"),
            clock.now(),
            &clock,
            Duration::from_secs(1),
        ));
        let phone = device(json!({"phoneNumber": "+15550000001"}));
        assert_eq!(store.of_device(&phone).len(), 1);
        assert!(
            store
                .of_device(&device(json!({"phoneNumber": "+15550000002"})))
                .is_empty()
        );
        assert!(
            store
                .conflicting(Some(&phone), &server("203.0.113.2"), None, None)
                .is_none(),
            "another server is another flow"
        );
        store.remove(&a, clock.wall_now());
        assert!(store.of_device(&phone).is_empty());
        assert_eq!(store.all(false).len(), 0);
        assert_eq!(store.all(true).len(), 1);
        assert!(store.any_mut(&a).is_some());
    }
}
