package main

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs etcd inside this process on 127.0.0.1, on the ports it had before when its data
// was kept, else on free ones. etcd dials its own advertised address, so port 0 will not do; a
// free port taken by someone else before etcd binds it means another try.
func startEtcd(dataDir string, clientPort, peerPort int) (*embed.Etcd, error) {
	if clientPort != 0 && peerPort != 0 {
		return startEtcdOn(dataDir, clientPort, peerPort)
	}
	for attempt := 1; ; attempt++ {
		client, err := freePort()
		if err != nil {
			return nil, err
		}
		peer, err := freePort()
		if err != nil {
			return nil, err
		}
		e, err := startEtcdOn(dataDir, client, peer)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return e, err
		}
	}
}

func startEtcdOn(dataDir string, clientPort, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "control-plane"
	cfg.Dir = filepath.Join(dataDir, "etcd")
	cfg.LogLevel = "error"
	client := localURL(clientPort)
	peer := localURL(peerPort)
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Tests write in bursts; the default 100 MB quota and hourly snapshots are irrelevant here,
	// but unbounded history would be: kube-apiserver compacts it (--etcd-compaction-interval).
	cfg.SnapshotCount = 10000
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd was not ready within 60 s")
	}
}

func localURL(port int) url.URL {
	return url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}

func etcdPorts(e *embed.Etcd) (client, peer int) {
	return portOf(e.Clients[0].Addr()), portOf(e.Peers[0].Listener.Addr())
}

func portOf(addr net.Addr) int {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.Port
	}
	return 0
}
