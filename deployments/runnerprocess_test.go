package deployments

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---- the deployments' runners, run against a real control plane ----

// deployedRunner is a runner container of a deployment: its command line
// (--config mapped to the file in the repository) and the TERRATASK_
// variables the deployment sets.
type deployedRunner struct {
	name string
	args []string
	env  map[string]string
}

// deployedRunners are the compose runner service and the Kubernetes runner
// Deployment's container.
func deployedRunners(t *testing.T) []deployedRunner {
	t.Helper()
	var c composeFile
	readYAML(t, "docker-compose.yml", &c)
	svc := c.Services["terratask-runner-1"]
	compose := deployedRunner{name: "compose", args: withConfig(t, svc.Command, composeMounts(svc)), env: map[string]string{}}
	for k, v := range svc.Environment {
		if strings.HasPrefix(k, "TERRATASK_") {
			compose.env[k] = v
		}
	}

	objs, _ := loadManifests(t)
	ctr := asObject(objs["Deployment/terratask-runner-main"].list("spec", "template", "spec", "containers")[0])
	kube := deployedRunner{name: "kubernetes", env: map[string]string{}}
	for _, a := range ctr.list("args") {
		kube.args = append(kube.args, a.(string))
	}
	for i, a := range kube.args {
		if a == "--config" && i+1 < len(kube.args) {
			base := filepath.Base(kube.args[i+1])
			body, _ := objs["ConfigMap/terratask-config"].get("data", base).(string)
			kube.args[i+1] = writeTemp(t, base, body)
		}
	}
	for _, e := range ctr.list("env") {
		eo := asObject(e)
		if name := eo.str("name"); strings.HasPrefix(name, "TERRATASK_") {
			if eo.get("valueFrom") != nil {
				t.Errorf("kubernetes runner: %s comes from %v; the runner gets no secret but its org key's file", name, eo.get("valueFrom"))
			}
			kube.env[name] = eo.str("value")
		}
	}
	return []deployedRunner{compose, kube}
}

// TestDeployedRunnerRunsATask starts each deployment's runner as a process
// of its own against a real control plane, `terratask dev` serving runner
// local only, with the deployment's command line and config file and only
// the environment the deployment gives it: no store, no secret key, and as
// its key file the org key `terratask keys org --org default` prints. It
// publishes its host row through the server's runner API and runs a task of
// runner main to completion, the task's logs reaching the server. Only what
// differs outside a container is overridden on the command line: the
// addresses of Temporal (with dev's client certificates) and of the server,
// the data dir, the key file's path, the metrics address and the isolation
// (auto: the sandbox where the host allows one).
func TestDeployedRunnerRunsATask(t *testing.T) {
	if testing.Short() {
		t.Skip("starts terratask dev and runners")
	}
	d := startDevInstance(t, filepath.Join(t.TempDir(), "data"))
	// The README's step: the org key, from the control plane's secret key.
	out, err := exec.Command(terratask(t), "keys", "org", "--org", "default",
		"--secret-key-file", filepath.Join(d.dataDir, "secret.key")).Output()
	if err != nil {
		t.Fatalf("terratask keys org: %v", err)
	}
	orgKey := writeTemp(t, "org-default.key", string(out))
	master, err := os.ReadFile(filepath.Join(d.dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(master)) == strings.TrimSpace(string(out)) {
		t.Fatal("terratask keys org printed the secret key itself")
	}
	tlsDir := filepath.Join(d.dataDir, "temporal-tls")

	for _, r := range deployedRunners(t) {
		t.Run(r.name, func(t *testing.T) {
			args := append(append([]string{}, r.args...),
				"--temporal-address", d.temporal,
				"--temporal-tls-ca", filepath.Join(tlsDir, "ca.pem"),
				"--temporal-tls-cert", filepath.Join(tlsDir, "client.pem"),
				"--temporal-tls-key", filepath.Join(tlsDir, "client-key.pem"),
				"--temporal-tls-server-name", "localhost",
				"--server-url", d.api, "--secret-key-file", orgKey,
				"--data-dir", filepath.Join(t.TempDir(), "runner"),
				"--metrics-address", "", "--isolation", "auto", "--log-level", "info")
			// What the runner runs with, the file and the environment, is
			// the deployment's (the config's keys not overridden above).
			cfg := checkConfig(t, args, r.env)
			checkRunnerTrust(t, r.name, r.env, cfg, d.api)
			for _, k := range []string{"org", "id", "grace"} {
				if !strings.HasSuffix(cfg[k], " (file)") {
					t.Errorf("%s: %s is %q, want it from the deployment's config file", r.name, k, cfg[k])
				}
			}
			p := startRunnerProcess(t, args, r.env, filepath.Join(t.TempDir(), "runner.log"))
			ready := p.waitLog(t, "terratask runner ready", 2*time.Minute)
			host, _ := ready["host"].(string)

			files := map[string]any{"main.tf": "resource \"terraform_data\" \"x\" {\n  input = \"deployed\"\n}\noutput \"x\" {\n  value = terraform_data.x.output\n}\n"}
			id := d.create(t, map[string]any{"name": "deployed runner " + r.name, "agent_id": "agent-deployments",
				"runner_id": "main", "parameters": map[string]any{"files": files}})
			if s := d.wait(t, id); s != "completed" {
				t.Fatalf("task %s on the %s runner ended %s\n%s", id, r.name, s, p.output())
			}
			// Its logs went through the runner API to the server's store.
			code, b := d.do(t, http.MethodGet, "/api/v1/tasks/"+id+"/logs", nil)
			var logs struct {
				Logs []json.RawMessage `json:"logs"`
			}
			if code != 200 || json.Unmarshal(b, &logs) != nil || len(logs.Logs) == 0 {
				t.Errorf("logs of task %s: %d %s", id, code, b)
			}
			// Its host row too: the runner's hosts show what it offers.
			code, b = d.do(t, http.MethodGet, "/api/v1/runners/main", nil)
			var runner struct {
				Status string `json:"status"`
				Hosts  []struct {
					Identity string            `json:"identity"`
					Engines  []json.RawMessage `json:"engines"`
				} `json:"hosts"`
			}
			if code != 200 || json.Unmarshal(b, &runner) != nil || runner.Status != "online" {
				t.Fatalf("runner main: %d %s", code, b)
			}
			published := false
			for _, h := range runner.Hosts {
				published = published || (strings.Contains(h.Identity, host) && len(h.Engines) > 0)
			}
			if host == "" || !published {
				t.Errorf("runner main: no host %q with engines: %s", host, b)
			}
			if err := p.stop(); err != nil {
				t.Errorf("%s runner at SIGTERM: %v", r.name, err)
			}
		})
	}
}

// runnerProcess is a `terratask runner` child process logging to a file.
type runnerProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error // set before done is closed
}

// startRunnerProcess starts `terratask ARGS` with env as its only TERRATASK_
// variables, output to logPath; the test's cleanup stops it.
func startRunnerProcess(t *testing.T, args []string, env map[string]string, logPath string) *runnerProcess {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(terratask(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERRATASK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	p := &runnerProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { _ = p.stop() })
	return p
}

// stop sends SIGTERM and waits for the exit (SIGKILL after a minute).
func (p *runnerProcess) stop() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.waitErr
}

func (p *runnerProcess) output() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// waitLog waits for the JSON log line whose msg is msg and returns its
// fields; it fails at once if the process exits first.
func (p *runnerProcess) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		out := p.output()
		for _, line := range strings.Split(out, "\n") {
			var fields map[string]any
			if strings.Contains(line, msg) && json.Unmarshal([]byte(line), &fields) == nil && fields["msg"] == msg {
				return fields
			}
		}
		if exited {
			t.Fatalf("the runner exited before %q: %v\n%s", msg, p.waitErr, out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s", msg, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
