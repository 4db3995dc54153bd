// Command terratask-bench measures terratask against bare Terraform and bare
// Temporal and prints one table: each figure beside its baseline from the
// same run, as a ratio. It builds cmd/terratask, starts `terratask dev` on
// temporary dirs and free ports as a child process, and drives it over HTTP.
//
//	go run ./cmd/terratask-bench            # the full run (make bench)
//	go run ./cmd/terratask-bench -quick     # a 2-3 minute smoke run (BENCH_QUICK=1)
//
// It writes bench/results.json (the latest run) and adds a dated section to
// the top of bench/RESULTS.md; -out changes the directory, -no-write skips
// both. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/terratask/terratask/bench"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func envBool(name string) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func run(args []string) int {
	fs := flag.NewFlagSet("terratask-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", envBool("BENCH_QUICK"), "smoke run: fewer samples and tasks (default from BENCH_QUICK)")
	// Sizes default to the chosen mode's; a flag given explicitly wins.
	tasks := fs.Int("tasks", 0, "throughput: tasks created at once (full 200, quick 40)")
	clients := fs.Int("clients", 0, "throughput: concurrent clients, and the bare loop's parallelism (20)")
	tputRuns := fs.Int("throughput-runs", 0, "throughput: runs, median taken (full 3, quick 1)")
	overheadRuns := fs.Int("overhead-runs", 0, "task overhead: samples per small fixture (full 9, quick 3)")
	slowRuns := fs.Int("slow-runs", 0, "task overhead: samples of the ~5 s apply (full 3, quick 1)")
	seedTasks := fs.Int("seed-tasks", 0, "API: tasks seeded into the store (100000)")
	seedLogs := fs.Int("seed-logs", 0, "API: log entries seeded for one task (100000)")
	samples := fs.Int("samples", 0, "API: sequential requests per read route (full 2000, quick 300)")
	createSamples := fs.Int("create-samples", 0, "API: POST and StartWorkflow samples each (full 300, quick 50)")
	rpsSeconds := fs.Float64("rps-seconds", 0, "API: seconds of the sustained GET load (full 5, quick 2)")
	rpsClients := fs.Int("rps-clients", 0, "API: clients of the sustained GET load (50)")
	breakdownRuns := fs.Int("breakdown-runs", -1, "timeline: 5-resource tasks traced through a terraform wrapper (full 5, quick 2; 0 skips)")
	profileTasks := fs.Int("profile-tasks", -1, "profile: tasks of the burst recorded with perf (full 40, quick 10; 0 skips)")
	policyEvals := fs.Int("policy-evals", 0, "policy: evaluations of the 20-module set, each beside a parse of the plan alone (full 500, quick 100)")
	policyRuns := fs.Int("policy-runs", 0, "policy: pairs of one-resource tasks with the 20 policies and without (full 15, quick 4)")
	only := fs.String("only", "", "comma list of phases to run: "+strings.Join(bench.AllPhases, ", ")+" (default all)")
	out := fs.String("out", "", "directory of results.json and RESULTS.md (default bench/ of the module)")
	noWrite := fs.Bool("no-write", false, "print the table only; write no files")
	bin := fs.String("bin", "", "use this terratask binary instead of building one")
	keep := fs.Bool("keep", false, "keep the work dir (data dirs, binary) for inspection")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	root, err := bench.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "terratask-bench:", err)
		return 2
	}
	cfg := bench.DefaultConfig(*quick)
	cfg.Root, cfg.Bin, cfg.Keep, cfg.Log = root, *bin, *keep, os.Stderr
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setInt(&cfg.Tasks, *tasks)
	setInt(&cfg.Clients, *clients)
	setInt(&cfg.ThroughputRuns, *tputRuns)
	setInt(&cfg.OverheadRuns, *overheadRuns)
	setInt(&cfg.SlowRuns, *slowRuns)
	setInt(&cfg.SeedTasks, *seedTasks)
	setInt(&cfg.SeedLogs, *seedLogs)
	setInt(&cfg.LatencySamples, *samples)
	setInt(&cfg.CreateSamples, *createSamples)
	setInt(&cfg.RPSClients, *rpsClients)
	setInt(&cfg.PolicyEvals, *policyEvals)
	setInt(&cfg.PolicyRuns, *policyRuns)
	if *rpsSeconds > 0 {
		cfg.RPSDuration = time.Duration(*rpsSeconds * float64(time.Second))
	}
	if *breakdownRuns >= 0 {
		cfg.BreakdownRuns = *breakdownRuns
	}
	if *profileTasks >= 0 {
		cfg.ProfileTasks = *profileTasks
	}
	if *only != "" {
		cfg.Phases = map[string]bool{}
		known := map[string]bool{}
		for _, p := range bench.AllPhases {
			known[p] = true
		}
		for _, p := range strings.Split(*only, ",") {
			p = strings.TrimSpace(p)
			if !known[p] {
				fmt.Fprintf(os.Stderr, "terratask-bench: unknown phase %q (phases: %s)\n", p, strings.Join(bench.AllPhases, ", "))
				return 2
			}
			cfg.Phases[p] = true
		}
	}
	outDir := *out
	if outDir == "" {
		outDir = root + "/bench"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if res == nil {
		fmt.Fprintln(os.Stderr, "terratask-bench:", err)
		return 1
	}
	fmt.Println("## " + bench.Heading(res))
	fmt.Println()
	fmt.Print(bench.Table(res.Rows))
	fmt.Println()
	fmt.Print(bench.Details(res))
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "terratask-bench: interrupted; no results written")
		return 1
	}
	if !*noWrite {
		if werr := bench.WriteResults(outDir, res); werr != nil {
			fmt.Fprintln(os.Stderr, "terratask-bench: writing results:", werr)
			return 1
		}
		fmt.Fprintf(os.Stderr, "wrote %s/results.json and %s/RESULTS.md\n", outDir, outDir)
	}
	if err != nil {
		if errors.Is(err, bench.ErrPhases) {
			fmt.Fprintln(os.Stderr, "terratask-bench:", err)
		}
		return 1
	}
	return 0
}
