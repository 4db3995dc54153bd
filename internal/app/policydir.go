package app

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store"
)

// parsePolicyDirs parses --policy-dir values (ORG=DIR, or DIR for org
// default).
func parsePolicyDirs(vals []string) ([]server.PolicyDir, error) {
	dirs := make([]server.PolicyDir, 0, len(vals))
	for _, v := range vals {
		d, err := server.ParsePolicyDir(v)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// syncPolicyDirs loads every policy directory into the store: at start, a
// directory that does not load ends the process.
func syncPolicyDirs(ctx context.Context, st store.PolicyStore, dirs []server.PolicyDir, log *zap.Logger) error {
	for _, d := range dirs {
		res, err := server.SyncPolicyDir(ctx, st, d)
		if err != nil {
			return err
		}
		log.Info("policy directory loaded", zap.String("dir", d.Dir), zap.String("org", d.Org),
			zap.Strings("created", res.Created), zap.Strings("updated", res.Updated),
			zap.Strings("deleted", res.Deleted), zap.Int("unchanged", len(res.Unchanged)))
	}
	return nil
}

// watchPolicyDirs reloads the policy directories on each signal; a
// directory that does not load keeps the org's policies as they were.
func watchPolicyDirs(ctx context.Context, ch <-chan os.Signal, st store.PolicyStore, dirs []server.PolicyDir, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			if err := syncPolicyDirs(ctx, st, dirs, log); err != nil {
				log.Error("reloading a policy directory; the org's policies are unchanged", zap.Error(err))
			}
		}
	}
}

// fanOut hands each signal of ch to n channels (SIGHUP reloads the keys
// file and the policy directories).
func fanOut(ctx context.Context, ch <-chan os.Signal, n int) []<-chan os.Signal {
	outs := make([]chan os.Signal, n)
	ro := make([]<-chan os.Signal, n)
	for i := range outs {
		outs[i] = make(chan os.Signal, 1)
		ro[i] = outs[i]
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig, ok := <-ch:
				if !ok {
					for _, o := range outs {
						close(o)
					}
					return
				}
				for _, o := range outs {
					select {
					case o <- sig:
					default: // a reload is already pending there
					}
				}
			}
		}
	}()
	return ro
}
