package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
)

// Delivery outcomes, as reported to Deliverer.Observe (the label of the
// deliveries-by-outcome metric).
const (
	OutcomeDelivered = "delivered" // the receiver answered 2xx
	OutcomeFailed    = "failed"    // no 2xx; the attempt is retried
	OutcomeSkipped   = "skipped"   // nothing to do: delivered before, or the webhook or event is gone
)

// Deliverer runs the delivery activity on the control-plane worker: one
// attempt to deliver an event to a webhook or a task's notify URL, recorded
// in the delivery log. Temporal retries a failed attempt (see
// workflows.Delivery).
type Deliverer struct {
	Store   store.Store
	Secrets *secret.Box
	// Sender delivers to webhooks (through a guard of --webhook-allow),
	// NotifySender to tasks' notify URLs (--notify-allow; nil: Sender).
	Sender       *events.Sender
	NotifySender *events.Sender
	Logger       *zap.Logger
	// Observe, when set, is called with each attempt's outcome (Outcome*)
	// and the event's type: the hook of the deliveries-by-outcome metric.
	Observe func(outcome string, eventType string)
}

// Deliver makes one attempt to deliver in.EventID to in's target. A failed
// attempt returns a retryable error that names the receiver's status (never
// a secret or the receiver's body).
func (d *Deliverer) Deliver(ctx context.Context, in events.DeliverInput) error {
	done, err := d.Store.Delivered(ctx, in.Org, in.EventID, in.Target)
	if err != nil {
		return err
	}
	if done {
		d.observe(OutcomeSkipped, "")
		return nil
	}
	ev, err := d.Store.GetEvent(ctx, in.Org, in.EventID)
	if errors.Is(err, store.ErrNotFound) {
		d.logger().Warn("event to deliver is gone", zap.String("event", in.EventID))
		d.observe(OutcomeSkipped, "")
		return nil
	}
	if err != nil {
		return err
	}
	msg := events.Message{URL: in.URL, Type: ev.Type, ID: ev.ID, Body: ev.Body}
	if in.Target == store.NotifyTarget {
		msg.Secret = []byte(d.Secrets.SigningSecret(in.Org))
	} else {
		hook, err := d.Store.GetWebhook(ctx, in.Org, in.Target)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted since: its deliveries stop.
			d.observe(OutcomeSkipped, string(ev.Type))
			return nil
		}
		if err != nil {
			return err
		}
		plain, err := d.Secrets.OpenBytes(hook.SealedSecret, secret.WebhookSecretContext(hook.Org, hook.ID))
		if err != nil {
			return temporal.NewNonRetryableApplicationError("cannot open the webhook's secret: the secret key changed", "secret", nil)
		}
		msg.URL, msg.Secret = hook.URL, plain
	}
	attempt := int(activity.GetInfo(ctx).Attempt)
	sender := d.Sender
	if in.Target == store.NotifyTarget && d.NotifySender != nil {
		sender = d.NotifySender
	}
	out := sender.Send(ctx, msg)
	rec := store.Delivery{
		Org: in.Org, EventID: ev.ID, EventType: ev.Type, TaskID: ev.TaskID, Target: in.Target, Attempt: attempt,
		StatusCode: out.StatusCode, Latency: out.Latency, Succeeded: out.Delivered(), At: time.Now(),
	}
	if out.Err != nil {
		rec.Error = out.Err.Error()
	}
	if err := d.Store.AddDelivery(context.WithoutCancel(ctx), rec); err != nil {
		d.logger().Warn("recording a delivery attempt", zap.String("event", ev.ID), zap.Error(err))
	}
	if out.Err != nil {
		d.observe(OutcomeFailed, string(ev.Type))
		return temporal.NewApplicationError(fmt.Sprintf("delivering %s (attempt %d): %s", ev.ID, attempt, out.Err), "delivery_failed")
	}
	d.observe(OutcomeDelivered, string(ev.Type))
	return nil
}

func (d *Deliverer) observe(outcome, eventType string) {
	if d.Observe != nil {
		d.Observe(outcome, eventType)
	}
}

func (d *Deliverer) logger() *zap.Logger {
	if d.Logger == nil {
		return zap.NewNop()
	}
	return d.Logger
}
