package server

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

// addEngines lays the engines runner hosts published in the store over a
// runner's view: each polling host gets its own row's engines (matched by
// worker identity), and the runner those of every host that refreshed its
// row recently, merged.
func (s *Server) addEngines(ctx context.Context, org string, v *api.Runner) error {
	hosts, err := s.opts.Store.RunnerHosts(ctx, org, v.ID)
	if err != nil {
		return err
	}
	byIdentity := map[string][]task.EngineInfo{}
	var live [][]task.EngineInfo
	for _, h := range hosts {
		byIdentity[h.Identity] = h.Engines
		if time.Since(h.UpdatedAt) <= runnerOnlineWithin {
			live = append(live, h.Engines)
		}
	}
	for i := range v.Hosts {
		if e, ok := byIdentity[v.Hosts[i].Identity]; ok {
			v.Hosts[i].Engines = e
		}
	}
	v.Engines = mergeEngines(live)
	return nil
}

// mergeEngines merges hosts' engines: per engine (in task.Engines order),
// every version of any host, highest first; download if any host downloads.
func mergeEngines(hosts [][]task.EngineInfo) []task.EngineInfo {
	out := []task.EngineInfo{}
	for _, engine := range task.Engines {
		seen := map[string]bool{}
		merged := task.EngineInfo{Engine: engine, Versions: []string{}}
		found := false
		for _, h := range hosts {
			for _, e := range h {
				if e.Engine != engine {
					continue
				}
				found = true
				merged.Download = merged.Download || e.Download
				for _, v := range e.Versions {
					if !seen[v] {
						seen[v] = true
						merged.Versions = append(merged.Versions, v)
					}
				}
			}
		}
		if found {
			sortVersions(merged.Versions)
			out = append(out, merged)
		}
	}
	return out
}

// sortVersions orders versions highest first; what does not parse sorts
// last, as text.
func sortVersions(vs []string) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, errA := version.NewVersion(vs[i])
		b, errB := version.NewVersion(vs[j])
		switch {
		case errA == nil && errB == nil:
			return a.GreaterThan(b)
		case errA == nil:
			return true
		case errB == nil:
			return false
		}
		return vs[i] < vs[j]
	})
}
