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

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/worker"
)

// onDemand lets `terratask dev` serve any runner ID: it watches for open
// tasks that name a runner this process does not serve yet and starts a
// local runner for each. Runner IDs are per org: org B's task naming runner
// "local" gets a runner of its own, holding org B's key, never dev's own
// "local" (which belongs to dev's admin key's org). Each org gets at most
// max of them (--max-on-demand-runners); a task beyond that waits for its
// runner like a task naming a runner nobody serves.
//
// It asks Temporal's visibility (TerrataskOrg and TerrataskRunner of open
// task workflows) every second rather than hooking the API's create path:
// Temporal is the source of truth, so one query also finds tasks created
// before a restart and tasks other Temporal applications started as child
// workflows, which never pass through the API. A second of delay is
// nothing beside a Terraform run.
type onDemand struct {
	c         client.Client
	namespace string
	start     func(org, id string) ([]sdkworker.Worker, error)
	log       *zap.Logger
	interval  time.Duration
	max       int

	mu      sync.Mutex
	served  map[orgRunner]bool
	perOrg  map[string]int
	workers [][]sdkworker.Worker
	wg      sync.WaitGroup
}

// orgRunner names a runner: its org and ID.
type orgRunner struct{ org, id string }

// defaultMaxOnDemandRunners is how many runners dev starts by itself for
// one org, unless --max-on-demand-runners says otherwise.
const defaultMaxOnDemandRunners = 8

// runnerIDPattern is the API's runner ID syntax; anything else (a child
// workflow may name any string) is never made a directory.
var runnerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

func newOnDemand(c client.Client, namespace, org string, served []string, max int, start func(org, id string) ([]sdkworker.Worker, error), log *zap.Logger) *onDemand {
	if max <= 0 {
		max = defaultMaxOnDemandRunners
	}
	d := &onDemand{c: c, namespace: namespace, start: start, log: log, interval: time.Second, max: max,
		served: map[orgRunner]bool{}, perOrg: map[string]int{}}
	for _, id := range served {
		d.served[orgRunner{org, id}] = true
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

// query lists open tasks of runners not served yet (nor refused).
func (d *onDemand) query() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	rs := make([]orgRunner, 0, len(d.served))
	for r := range d.served {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].org != rs[j].org {
			return rs[i].org < rs[j].org
		}
		return rs[i].id < rs[j].id
	})
	var b strings.Builder
	fmt.Fprintf(&b, "WorkflowType = '%s' AND ExecutionStatus = 'Running'", task.WorkflowType)
	for _, r := range rs {
		// Not (this org and this runner). Names are checked before they
		// are served: no quotes.
		fmt.Fprintf(&b, " AND (%s != '%s' OR %s != '%s')", task.SearchAttrOrg, r.org, task.SearchAttrRunner, r.id)
	}
	return b.String()
}

// maxKnownRunners bounds the runners the watcher knows (served or refused),
// and so the length of its query: past it, it starts no more.
const maxKnownRunners = 256

func (d *onDemand) scan(ctx context.Context) {
	for {
		if d.known() >= maxKnownRunners {
			return
		}
		resp, err := d.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: d.namespace, PageSize: 20, Query: d.query()})
		if err != nil {
			if ctx.Err() == nil {
				d.log.Debug("listing open tasks for on-demand runners", zap.Error(err))
			}
			return
		}
		changed := false
		for _, ex := range resp.GetExecutions() {
			var r orgRunner
			fields := ex.GetSearchAttributes().GetIndexedFields()
			p, o := fields[task.SearchAttrRunner], fields[task.SearchAttrOrg]
			if p == nil || o == nil || converter.GetDefaultDataConverter().FromPayload(p, &r.id) != nil ||
				converter.GetDefaultDataConverter().FromPayload(o, &r.org) != nil {
				continue
			}
			if d.serve(ctx, r) {
				changed = true
			}
		}
		if !changed { // nothing new: done until the next tick
			return
		}
	}
}

func (d *onDemand) known() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.served)
}

// serve starts a runner for r unless it is served or refused; it reports
// whether r is now known (started or refused), so the next query skips it.
func (d *onDemand) serve(ctx context.Context, r orgRunner) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.served[r] || ctx.Err() != nil {
		return false
	}
	d.served[r] = true // once: a runner that cannot start is not retried every second
	log := d.log.With(zap.String("org", r.org), zap.String("runner", r.id))
	if !runnerIDPattern.MatchString(r.id) || r.id == "." || r.id == ".." || !auth.ValidName(r.org) || strings.ContainsRune(r.org, '\'') {
		log.Warn("a task names a runner dev will not serve")
		return true
	}
	if d.perOrg[r.org] >= d.max {
		log.Warn("a task names a runner beyond the org's on-demand runners (--max-on-demand-runners): it waits for a runner of its own", zap.Int("max", d.max))
		return true
	}
	ws, err := d.start(r.org, r.id)
	if err != nil {
		log.Error("starting an on-demand runner", zap.Error(err))
		return true
	}
	d.perOrg[r.org]++
	d.workers = append(d.workers, ws)
	log.Info("started a local runner on demand")
	return true
}
