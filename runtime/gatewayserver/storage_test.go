package gatewayserver

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStorageKeepsFanOutConnections: the gateway's storage clients keep a
// connection for each of the router's enqueues in flight, so a second wave
// of as many requests opens none (the SDK's default transport kept 10 and
// opened FanOut-10 new ones per wave).
func TestStorageKeepsFanOutConnections(t *testing.T) {
	const fanOut = 64
	var opened atomic.Int64
	var arrived sync.WaitGroup
	all := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-all // every request of the wave in flight at once, each on a connection of its own
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	st, err := openStorage(&Config{FanOut: fanOut, StorageConnectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
		"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
		"BlobEndpoint=" + srv.URL + "/devstoreaccount1;QueueEndpoint=" + srv.URL + "/devstoreaccount1;TableEndpoint=" + srv.URL + "/devstoreaccount1;"})
	require.NoError(t, err)
	wave := func() {
		arrived.Add(fanOut)
		all = make(chan struct{})
		var done sync.WaitGroup
		for range fanOut {
			done.Add(1)
			go func() {
				defer done.Done()
				_, _ = st.queues.NewQueueClient("q").GetProperties(context.Background(), nil)
			}()
		}
		arrived.Wait()
		close(all)
		done.Wait()
	}
	wave()
	require.EqualValues(t, fanOut, opened.Load(), "first wave: a connection per request")
	wave()
	assert.EqualValues(t, fanOut, opened.Load(), "second wave: the same connections again")
}
