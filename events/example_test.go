package events_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
)

// A receiver checks each delivery's signature on the raw body before it
// decodes it, refuses signatures older than 5 minutes (Verify does), and
// deduplicates on the delivery ID: a delivery may be retried after the
// receiver took it (when its 2xx got lost).
func ExampleVerify() {
	secret := []byte("whsec_my-webhook-secret")
	seen := map[string]bool{} // a real receiver keeps this in its database
	http.HandleFunc("/terratask", func(w http.ResponseWriter, r *http.Request) {
		body, err := events.VerifyRequest(r, secret, 0)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if id := r.Header.Get(events.HeaderDelivery); seen[id] {
			return // delivered before: 200 again, do nothing
		} else {
			seen[id] = true
		}
		var ev api.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if ev.Task != nil {
			log.Printf("%s: task %s is %s", ev.Type, ev.Task.ID, ev.Task.Status)
		}
	})

	// Verify itself, on a body signed now and on one signed an hour ago:
	body := []byte(`{"id":"evt-task-1-9","type":"task.completed"}`)
	now := time.Now()
	fmt.Println(events.Verify(secret, events.Sign(secret, body, now), body, now, 0))
	fmt.Println(events.Verify(secret, events.Sign(secret, body, now.Add(-time.Hour)), body, now, 0))
	fmt.Println(events.Verify([]byte("another secret"), events.Sign(secret, body, now), body, now, 0))
	// Output:
	// <nil>
	// signature timestamp is outside the tolerance
	// signature does not match
}
