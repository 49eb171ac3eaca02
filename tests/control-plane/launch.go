package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const apiserverMode = "kube-apiserver"

// ports are kept in the data folder so a restart on it serves where clients already point.
type ports struct {
	API        int `json:"api"`
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
}

type options struct {
	kubeconfig string
	dataDir    string
	port       int
	stdinBound bool
	extraArgs  []string
}

func parseOptions(args []string) (*options, error) {
	fs := flag.NewFlagSet("control-plane", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig once /readyz answers (required)")
	fs.StringVar(&o.dataDir, "data-dir", "", "keep etcd data, certificates and credentials here across runs (default: a temporary folder removed on exit)")
	fs.IntVar(&o.port, "port", 0, "serve the API on this 127.0.0.1 port (default: the port kept in --data-dir, else a free one)")
	fs.BoolVar(&o.stdinBound, "stop-on-stdin-eof", false, "stop as on SIGTERM when stdin closes (a test process that holds the pipe exits, however it exits)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: run --kubeconfig PATH [--data-dir DIR] [--port N] [--stop-on-stdin-eof] [-- KUBE-APISERVER-FLAGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.extraArgs = fs.Args()
	if o.kubeconfig == "" {
		return nil, errors.New("--kubeconfig is required")
	}
	if o.port < 0 || o.port > 65535 {
		return nil, fmt.Errorf("--port %d is not a TCP port", o.port)
	}
	return o, nil
}

func launch(args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	keep := o.dataDir != ""
	if !keep {
		if o.dataDir, err = os.MkdirTemp("", "control-plane-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dataDir)
	} else if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	// A reader of our stdout that is gone (a test binary that ended) must not kill us with
	// SIGPIPE on the "stopping" line before the data is removed.
	signal.Ignore(syscall.SIGPIPE)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	if o.stdinBound {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			signals <- syscall.SIGHUP
		}()
	}

	creds, err := loadOrCreateCredentials(o.dataDir)
	if err != nil {
		return fmt.Errorf("credentials in %s: %w", o.dataDir, err)
	}
	kept, err := readPorts(o.dataDir)
	if err != nil {
		return err
	}
	e, err := startEtcd(o.dataDir, kept.EtcdClient, kept.EtcdPeer)
	if err != nil {
		return err
	}
	defer e.Close()
	current := kept
	current.EtcdClient, current.EtcdPeer = etcdPorts(e)

	api, err := startReadyAPIServer(o, creds, &current, kept.API, signals)
	if err != nil {
		return err
	}
	if err := writePorts(o.dataDir, current); err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", current.API)
	if err := writeKubeconfig(o.kubeconfig, server, creds); err != nil {
		return err
	}
	fmt.Printf("control-plane: ready at %s, kubeconfig %s, data %s\n", server, o.kubeconfig, o.dataDir)

	select {
	case sig := <-signals:
		fmt.Printf("control-plane: %v: stopping\n", sig)
		api.stop()
		return nil
	case err := <-api.exited:
		return fmt.Errorf("kube-apiserver exited (%v); its log: %s", err, tail(api.log))
	case err := <-e.Err():
		api.stop()
		return fmt.Errorf("etcd failed: %w", err)
	}
}

// startReadyAPIServer starts kube-apiserver and waits for /readyz. A port the kernel chose for us
// may be taken by someone else before kube-apiserver binds it: then it tries another.
func startReadyAPIServer(o *options, creds *credentials, current *ports, keptAPI int, signals chan os.Signal) (*apiserver, error) {
	fixed := o.port != 0 || keptAPI != 0
	for attempt := 1; ; attempt++ {
		switch {
		case o.port != 0:
			current.API = o.port
		case keptAPI != 0:
			current.API = keptAPI
		default:
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			current.API = port
		}
		api, err := startAPIServer(o, creds, *current)
		if err != nil {
			return nil, err
		}
		err = waitReady(api, creds, current.API, signals)
		if err == nil {
			return api, nil
		}
		api.stop()
		var exit *earlyExit
		if fixed || attempt == 3 || !errors.As(err, &exit) || !strings.Contains(exit.log, "address already in use") {
			return nil, err
		}
	}
}

type apiserver struct {
	process *os.Process
	exited  chan error
	log     string
}

func startAPIServer(o *options, creds *credentials, p ports) (*apiserver, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.dataDir, "kube-apiserver.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		apiserverMode,
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", p.EtcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.API),
		"--cert-dir=" + creds.dir,
		"--tls-cert-file=" + creds.servingCrt,
		"--tls-private-key-file=" + creds.servingKey,
		"--client-ca-file=" + creds.caCert,
		"--token-auth-file=" + creds.tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + creds.saPub,
		"--service-account-signing-key-file=" + creds.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// Nothing here runs Endpoints for the "kubernetes" Service; skip rewriting them.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}, o.extraArgs...)
	cmd := exec.Command(self, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// The kernel kills kube-apiserver when the thread that started it ends: a SIGKILL of this
	// launcher takes it down too, so no stray server keeps the port. That thread must live as
	// long as the child, hence the locked goroutine that also waits for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
		logFile.Close()
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting kube-apiserver: %w", err)
	}
	return &apiserver{process: cmd.Process, exited: exited, log: logPath}, nil
}

// stop asks kube-apiserver to shut down and waits for it (SIGKILL after 20 s).
func (a *apiserver) stop() {
	_ = a.process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		_ = a.process.Kill()
		<-a.exited
	}
}

type earlyExit struct {
	err error
	log string
}

func (e *earlyExit) Error() string {
	return fmt.Sprintf("kube-apiserver exited before it was ready (%v); its log: %s", e.err, e.log)
}

func waitReady(api *apiserver, creds *credentials, port int, signals chan os.Signal) error {
	pem, err := os.ReadFile(creds.caCert)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", port)
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-api.exited:
			api.exited <- err // stop() waits on it
			return &earlyExit{err: err, log: tail(api.log)}
		case sig := <-signals:
			signals <- sig
			return fmt.Errorf("%v before kube-apiserver was ready", sig)
		case <-time.After(100 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+creds.adminToken)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("kube-apiserver was not ready within 120 s; its log: %s", tail(api.log))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return portOf(l.Addr()), nil
}

func readPorts(dataDir string) (ports, error) {
	var p ports
	raw, err := os.ReadFile(filepath.Join(dataDir, "ports.json"))
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("%s/ports.json: %w", dataDir, err)
	}
	return p, nil
}

func writePorts(dataDir string, p ports) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeAtomically(filepath.Join(dataDir, "ports.json"), raw)
}

func writeKubeconfig(path, server string, creds *credentials) error {
	ca, err := os.ReadFile(creds.caCert)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: control-plane
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: control-plane
  context:
    cluster: control-plane
    user: admin
    namespace: default
current-context: control-plane
`, server, base64.StdEncoding.EncodeToString(ca), creds.adminToken)
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return writeAtomically(path, []byte(config))
}

// writeAtomically replaces path in one rename, so a reader never sees half a file.
func writeAtomically(path string, content []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tail is the end of a log, for error messages.
func tail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	const keep = 4000
	if len(raw) > keep {
		raw = raw[len(raw)-keep:]
	}
	return "\n" + string(raw)
}
