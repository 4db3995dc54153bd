package client

import (
	"context"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

// WaitOption configures Wait and Follow.
type WaitOption func(*waitConfig)

type waitConfig struct {
	onStatus func(api.Status)
	min, max time.Duration
	levels   []task.Level
}

func newWaitConfig(opts []WaitOption) waitConfig {
	cfg := waitConfig{min: 250 * time.Millisecond, max: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.min <= 0 {
		cfg.min = 250 * time.Millisecond
	}
	cfg.max = max(cfg.max, cfg.min)
	return cfg
}

// OnStatus calls fn with every status Wait and Follow read (from the
// goroutine that called them), for a progress view.
func OnStatus(fn func(api.Status)) WaitOption { return func(c *waitConfig) { c.onStatus = fn } }

// PollInterval sets the polling backoff: from min while the task moves, up
// to max while it does not (default 250ms to 2s).
func PollInterval(min, max time.Duration) WaitOption {
	return func(c *waitConfig) { c.min, c.max = min, max }
}

// Levels makes Follow deliver only entries of these levels.
func Levels(levels ...task.Level) WaitOption { return func(c *waitConfig) { c.levels = levels } }

// poller paces status reads: short while the task moves, backing off while
// it does not.
type poller struct {
	cfg      waitConfig
	interval time.Duration
	last     api.Status
	seen     bool
}

// observe records a status and reports nothing; the next sleep depends on
// whether it moved.
func (p *poller) observe(st api.Status) {
	moved := !p.seen || st.Status != p.last.Status || st.Progress != p.last.Progress ||
		st.Metadata["current_step"] != p.last.Metadata["current_step"] || st.Metadata["changes_done"] != p.last.Metadata["changes_done"]
	switch {
	case moved || p.interval == 0:
		p.interval = p.cfg.min
	default:
		p.interval = min(p.interval*3/2, p.cfg.max)
	}
	p.last, p.seen = st, true
	if p.cfg.onStatus != nil {
		p.cfg.onStatus(st)
	}
}

func (p *poller) sleep(ctx context.Context) error { return sleepCtx(ctx, max(p.interval, p.cfg.min)) }

// Wait polls the task's status until it is terminal (completed, failed,
// cancelled or rejected) and returns the task with its result. A task that
// waits for approval keeps Wait waiting: bound it with ctx. When ctx ends
// first, Wait returns ctx's error.
func (c *Client) Wait(ctx context.Context, id string, opts ...WaitOption) (api.Task, error) {
	p := &poller{cfg: newWaitConfig(opts)}
	for {
		st, err := c.GetStatus(ctx, id)
		if err != nil {
			return api.Task{}, err
		}
		p.observe(st)
		if st.Status.Terminal() {
			return c.GetTask(ctx, id)
		}
		if err := p.sleep(ctx); err != nil {
			return api.Task{}, err
		}
	}
}

// followPage is the page size Follow reads: a full page moves the cursor,
// and a partial one is read again from the same cursor on the next poll
// (the API sets X-Next-Cursor on full pages only), so it stays small.
const followPage = 200

// followPages follows by paging the logs route with the cursor and polling
// the status between pages (servers without the log stream).
func (c *Client) followPages(ctx context.Context, id string, fn func(api.LogEntry) error, cfg waitConfig) error {
	p := &poller{cfg: cfg}
	cursor, skip := "", 0
	ended := false
	for {
		page, err := c.GetLogs(ctx, id, LogOptions{Cursor: cursor, Limit: followPage, Levels: p.cfg.levels})
		if err != nil {
			return err
		}
		for i := skip; i < len(page.Logs.Logs); i++ {
			if err := fn(page.Logs.Logs[i]); err != nil {
				return err
			}
		}
		if page.NextCursor != "" {
			cursor, skip = page.NextCursor, 0
			continue
		}
		skip = max(skip, len(page.Logs.Logs))
		if ended {
			return nil
		}
		st, err := c.GetStatus(ctx, id)
		if err != nil {
			return err
		}
		p.observe(st)
		if st.Status.Terminal() {
			// Its last entries were stored before it ended: one more read
			// delivers them.
			ended = true
			continue
		}
		if err := p.sleep(ctx); err != nil {
			return err
		}
	}
}
