//! The application server as a Service (`spec.applicationServer.serviceRef`), as users set it
//! up with kubectl (deploy/examples/service/): the session waits for the Service's external
//! address, is created with it, replaced when it changes (IPv4 and IPv6 from the load balancer, a
//! load balancer hostname resolved through DNS, externalIPs), and deleted while the Service is
//! gone; no provider call is made while there is no address.

use qod_test_support::{eventually, simulator::provider_calls};
use serde_json::Value;

use crate::{
    providers::{READY_REASON, field, held_for, wait_field},
    world::{WAIT, World},
};

/// Waits until the resource's one session at the simulator has `ipv4`/`ipv6` as its
/// application server, and returns that session.
async fn held_with(world: &World, name: &str, ipv4: Option<&str>, ipv6: Option<&str>) -> Value {
    eventually(
        &format!("{name} at the provider with {ipv4:?} {ipv6:?}"),
        WAIT,
        || async {
            let held = held_for(world, name).await;
            let [session] = held.as_slice() else {
                return None;
            };
            let server = &session["applicationServer"];
            (server["ipv4Address"].as_str() == ipv4 && server["ipv6Address"].as_str() == ipv6)
                .then(|| session.clone())
        },
    )
    .await
}

async fn set_load_balancer(world: &World, ingress: &str) {
    world
        .kubectl(&[
            "patch",
            "service",
            "game-server",
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status":{{"loadBalancer":{{"ingress":{ingress}}}}}}}"#),
        ])
        .await;
}

async fn creates(world: &World) -> u64 {
    provider_calls(&world.provider_stats().await, "create")
}

#[tokio::test]
async fn a_session_follows_the_address_of_the_service_it_names() {
    let world = World::start("service-ref").await;
    world.install_crd().await;
    let _operator = world.leading_operator("op-service-ref").await;

    // The example: a LoadBalancer Service without an address yet, and a session naming it.
    world
        .kubectl(&["apply", "-f", "deploy/examples/service/"])
        .await;
    wait_field(
        &world,
        "qod/game-stream",
        READY_REASON,
        "WaitingForServiceAddress",
    )
    .await;
    assert_eq!(creates(&world).await, 0, "no call without an address");

    // The load balancer gets an IPv4 and an IPv6 address: the session is made with both.
    set_load_balancer(&world, r#"[{"ip":"198.51.100.20"},{"ip":"2001:db8::20"}]"#).await;
    let first = held_with(
        &world,
        "game-stream",
        Some("198.51.100.20"),
        Some("2001:db8::20"),
    )
    .await;
    wait_field(&world, "qod/game-stream", ".status.qosStatus", "AVAILABLE").await;
    assert_eq!(
        field(
            &world,
            "qod/game-stream",
            ".status.applicationServer.ipv4Address"
        )
        .await,
        "198.51.100.20"
    );
    assert_eq!(
        field(
            &world,
            "qod/game-stream",
            ".status.applicationServer.ipv6Address"
        )
        .await,
        "2001:db8::20"
    );

    // The address changes: the session is replaced (one live session, a new id).
    set_load_balancer(&world, r#"[{"ip":"198.51.100.21"}]"#).await;
    let second = held_with(&world, "game-stream", Some("198.51.100.21"), None).await;
    assert_ne!(first["sessionId"], second["sessionId"]);

    // Only a hostname: resolved through DNS, and status says so.
    set_load_balancer(&world, r#"[{"hostname":"localhost"}]"#).await;
    eventually("the hostname's address in use", WAIT, || async {
        let source = field(
            &world,
            "qod/game-stream",
            ".status.applicationServer.source",
        )
        .await;
        (source.contains("localhost") && source.contains("DNS")).then_some(())
    })
    .await;
    let held = held_for(&world, "game-stream").await;
    assert_eq!(held.len(), 1, "{held:#?}");
    let server = &held[0]["applicationServer"];
    assert!(
        server["ipv4Address"] == "127.0.0.1" || server["ipv6Address"] == "::1",
        "{server}"
    );

    // The Service goes: so does the session, and the resource says why.
    world.kubectl(&["delete", "service", "game-server"]).await;
    wait_field(&world, "qod/game-stream", READY_REASON, "ServiceNotFound").await;
    eventually("no session left at the provider", WAIT, || async {
        held_for(&world, "game-stream")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let made = creates(&world).await;

    // It comes back with externalIPs only: a new session with that address.
    world
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "game-server",
            "--tcp=443:8443",
        ])
        .await;
    wait_field(
        &world,
        "qod/game-stream",
        READY_REASON,
        "WaitingForServiceAddress",
    )
    .await;
    assert_eq!(
        creates(&world).await,
        made,
        "no call while it has no address"
    );
    world
        .kubectl(&[
            "patch",
            "service",
            "game-server",
            "--type=merge",
            "-p",
            r#"{"spec":{"externalIPs":["192.0.2.30"]}}"#,
        ])
        .await;
    held_with(&world, "game-stream", Some("192.0.2.30"), None).await;
    assert_eq!(creates(&world).await, made + 1);

    world.kubectl(&["delete", "qod", "game-stream"]).await;
    assert!(world.provider_sessions().await.is_empty());
    world.stop().await;
}
