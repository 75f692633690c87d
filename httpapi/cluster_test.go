package httpapi_test

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// TestClusterReportsHTTPAddrs: nodes given only their own HTTP address
// (Config.HTTPAddr, as the node program's --http-addr) learn each other's
// over the peer port, and GET /v1/cluster on every node reports every
// member's.
func TestClusterReportsHTTPAddrs(t *testing.T) {
	const n = 3
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", testcluster.FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	c := testcluster.New(t, n, func(i int, cfg *abacus.Config) { cfg.HTTPAddr = lns[i].Addr().String() })
	want := map[string]string{}
	for i, node := range c.Nodes {
		want[node.ID()] = lns[i].Addr().String()
		srv := &http.Server{Handler: httpapi.New(node, httpapi.WithLogger(testcluster.Logger()))}
		go func() { _ = srv.Serve(lns[i]) }()
		t.Cleanup(func() { srv.Close() })
	}

	deadline := time.Now().Add(20 * time.Second)
	for i := range c.Nodes {
		url := "http://" + lns[i].Addr().String() + "/v1/cluster"
		for {
			got, err := clusterAddrs(url)
			if err == nil && equalMaps(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: http_addrs %v (%v), want %v", url, got, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func clusterAddrs(url string) (map[string]string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st wire.ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range st.Members {
		out[m.ID] = m.HTTPAddr
	}
	return out, nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
