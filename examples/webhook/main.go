// Command webhook is a receiver of opsbot's signed webhooks
// (docs/notifications.md): it checks each request's signature and
// timestamp with the secret opsbot notifications create printed, prints
// the event once (a delivery may come twice: it keeps the ids of the
// replay window), and answers 204 (401 for a request it cannot verify,
// which the server retries and logs).
//
//	BOTE_WEBHOOK_SECRET=whsec_... go run ./webhook -addr 127.0.0.1:8099
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/notify"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "address to listen on")
	flag.Parse()
	secret := os.Getenv("BOTE_WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("set BOTE_WEBHOOK_SECRET to the secret opsbot notifications create printed")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s/\n", ln.Addr())
	var mu sync.Mutex
	seen := map[string]time.Time{} // delivery ids of the replay window
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := notify.Verify(secret, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, time.Now()); err != nil {
			fmt.Printf("refused %s: %v\n", r.Header.Get(notify.HeaderID), err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		id, now := r.Header.Get(notify.HeaderID), time.Now()
		maps.DeleteFunc(seen, func(_ string, at time.Time) bool { return now.Sub(at) > 2*notify.ReplayWindow })
		_, dup := seen[id]
		seen[id] = now
		mu.Unlock()
		if dup {
			fmt.Printf("duplicate %s\n", id)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var ev notify.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Printf("%s %s/%s: %s\n", ev.Type, ev.Tenant, ev.Workspace, ev.Message)
		w.WriteHeader(http.StatusNoContent)
	})}
	log.Fatal(srv.Serve(ln))
}
