// etcd-member runs one etcd member from go.etcd.io/etcd/server/v3/embed: the etcd that the
// saga-log tests (test/helpers/etcd.ts) and the demo start on loopback. It is etcd itself, built
// from the Go module proxy at the version pinned in go.mod; only the flags sagamesh needs are here.
package main

import (
	"context"
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
)

func urls(flagName, value string) []url.URL {
	var out []url.URL
	for _, s := range strings.Split(value, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil {
			log.Fatalf("etcd-member: --%s: %v", flagName, err)
		}
		out = append(out, *u)
	}
	return out
}

func main() {
	name := flag.String("name", "default", "member name")
	dataDir := flag.String("data-dir", "", "data directory (required)")
	clientURLs := flag.String("listen-client-urls", "http://127.0.0.1:2379", "client URLs (comma-separated)")
	peerURLs := flag.String("listen-peer-urls", "http://127.0.0.1:2380", "peer URLs (comma-separated)")
	initialCluster := flag.String("initial-cluster", "", "name=peerURL,… (default: this member alone)")
	clusterState := flag.String("initial-cluster-state", "new", "new or existing")
	clusterToken := flag.String("initial-cluster-token", "sagamesh", "cluster token")
	certFile := flag.String("cert-file", "", "client TLS certificate (with --key-file)")
	keyFile := flag.String("key-file", "", "client TLS key")
	trustedCA := flag.String("trusted-ca-file", "", "CA that client certificates must be signed by (client cert auth)")
	authToken := flag.String("auth-token", "simple", "auth token type: simple or jwt,…")
	heartbeatMs := flag.Uint("heartbeat-interval", 100, "Raft heartbeat (ms)")
	electionMs := flag.Uint("election-timeout", 1000, "Raft election timeout (ms)")
	quotaBytes := flag.Int64("quota-backend-bytes", 0, "backend quota (0: etcd's default)")
	authTokenTTL := flag.Uint("auth-token-ttl", 300, "lifetime of a simple auth token (s)")
	rootPassword := flag.String("bootstrap-root-password", "", "once ready: add user root with this password and enable auth (give it to one member only)")
	flag.Parse()
	if *dataDir == "" {
		log.Fatal("etcd-member: --data-dir is required")
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = urls("listen-client-urls", *clientURLs)
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	cfg.ListenPeerUrls = urls("listen-peer-urls", *peerURLs)
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	if *initialCluster == "" {
		*initialCluster = *name + "=" + cfg.AdvertisePeerUrls[0].String()
	}
	cfg.InitialCluster = *initialCluster
	cfg.ClusterState = *clusterState
	cfg.InitialClusterToken = *clusterToken
	cfg.TickMs = *heartbeatMs
	cfg.ElectionMs = *electionMs
	cfg.AuthToken = *authToken
	cfg.AuthTokenTTL = *authTokenTTL
	cfg.LogLevel = "warn"
	if *quotaBytes > 0 {
		cfg.QuotaBackendBytes = *quotaBytes
	}
	if *certFile != "" {
		cfg.ClientTLSInfo.CertFile = *certFile
		cfg.ClientTLSInfo.KeyFile = *keyFile
		if *trustedCA != "" {
			cfg.ClientTLSInfo.TrustedCAFile = *trustedCA
			cfg.ClientTLSInfo.ClientCertAuth = true
		}
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("etcd-member: %v", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		log.Printf("etcd-member %s ready on %s", *name, *clientURLs)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		log.Fatal("etcd-member: not ready after 60s")
	}

	if *rootPassword != "" {
		// Through Raft like etcdctl's user add / user grant-role / auth enable, so every member has it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := e.Server.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: *rootPassword})
		if err == nil {
			_, err = e.Server.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
		}
		if err == nil {
			_, err = e.Server.AuthEnable(ctx, &pb.AuthEnableRequest{})
		}
		cancel()
		if err != nil {
			log.Fatalf("etcd-member: enabling auth: %v", err)
		}
		log.Printf("etcd-member %s: auth enabled (user root)", *name)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-e.Err():
		log.Fatalf("etcd-member: %v", err)
	case <-stop:
	}
}
