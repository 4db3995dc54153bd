package app

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/worker"
)

// onDemand lets `terratask dev` serve any runner ID: it watches for open
// tasks that name a runner ID this process does not serve yet and starts a
// local runner for each.
//
// It asks Temporal's visibility (TerrataskRunner of open task workflows)
// every second rather than hooking the API's create path: Temporal is the
// source of truth, so one query also finds tasks created before a restart
// and tasks other Temporal applications started as child workflows, which
// never pass through the API. A second of delay is nothing beside a
// Terraform run.
type onDemand struct {
	c         client.Client
	namespace string
	start     func(id string) ([]sdkworker.Worker, error)
	log       *zap.Logger
	interval  time.Duration

	mu      sync.Mutex
	served  map[string]bool
	workers [][]sdkworker.Worker
	wg      sync.WaitGroup
}

// maxOnDemandRunners bounds the runners dev starts by itself.
const maxOnDemandRunners = 64

// runnerIDPattern is the API's runner ID syntax; anything else (a child
// workflow may name any string) is never made a directory.
var runnerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

func newOnDemand(c client.Client, namespace string, served []string, start func(string) ([]sdkworker.Worker, error), log *zap.Logger) *onDemand {
	d := &onDemand{c: c, namespace: namespace, start: start, log: log, interval: time.Second, served: map[string]bool{}}
	for _, id := range served {
		d.served[id] = true
	}
	return d
}

// run watches until ctx ends.
func (d *onDemand) run(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(d.interval)
		defer t.Stop()
		for {
			d.scan(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// stop waits for the watcher and stops the runners it started.
func (d *onDemand) stop() error {
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ws := range d.workers {
		worker.StopAll(ws)
	}
	d.workers = nil
	return nil
}

// query lists open tasks of runners not served yet.
func (d *onDemand) query() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.served))
	for id := range d.served {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	fmt.Fprintf(&b, "WorkflowType = '%s' AND ExecutionStatus = 'Running'", task.WorkflowType)
	for _, id := range ids {
		fmt.Fprintf(&b, " AND %s != '%s'", task.SearchAttrRunner, id) // IDs are validated: no quotes
	}
	return b.String()
}

func (d *onDemand) scan(ctx context.Context) {
	for {
		if d.count() >= maxOnDemandRunners {
			return
		}
		resp, err := d.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: d.namespace, PageSize: 20, Query: d.query()})
		if err != nil {
			if ctx.Err() == nil {
				d.log.Debug("listing open tasks for on-demand runners", zap.Error(err))
			}
			return
		}
		started := false
		for _, ex := range resp.GetExecutions() {
			var id string
			p := ex.GetSearchAttributes().GetIndexedFields()[task.SearchAttrRunner]
			if p == nil || converter.GetDefaultDataConverter().FromPayload(p, &id) != nil {
				continue
			}
			if d.serve(ctx, id) {
				started = true
			}
		}
		if !started { // nothing new: done until the next tick
			return
		}
	}
}

func (d *onDemand) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.workers)
}

// serve starts a runner for id unless it is served; it reports whether one
// started.
func (d *onDemand) serve(ctx context.Context, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.served[id] || ctx.Err() != nil {
		return false
	}
	d.served[id] = true // once: a runner that cannot start is not retried every second
	if !runnerIDPattern.MatchString(id) || id == "." || id == ".." {
		d.log.Warn("a task names a runner ID dev will not serve", zap.String("runner", id))
		return false
	}
	ws, err := d.start(id)
	if err != nil {
		d.log.Error("starting an on-demand runner", zap.String("runner", id), zap.Error(err))
		return false
	}
	d.workers = append(d.workers, ws)
	d.log.Info("started a local runner on demand", zap.String("runner", id))
	return true
}
