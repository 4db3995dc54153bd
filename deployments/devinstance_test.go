package deployments

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---- a real dev instance, scraped ----

type devInstance struct {
	cmd     *exec.Cmd
	dataDir string
	api     string
	// temporal is the embedded Temporal frontend (mutual TLS, certificates
	// in DATA-DIR/temporal-tls), for runners of their own.
	temporal string
	key      string
	output   *bytes.Buffer
	done     chan error
}

func startDevInstance(t *testing.T, dataDir string) *devInstance {
	t.Helper()
	cmd := exec.Command(terratask(t), "dev", "--data-dir", dataDir, "--http-address", "127.0.0.1:0",
		"--temporal-address", "127.0.0.1:0", "--ui-address", "", "--log-level", "warn",
		// Only local: the 1,000 tasks of runner metrics-idle must wait, not
		// start runners on demand.
		"--runner", "local")
	cmd.Env = append(os.Environ(), "TERRATASK_API_KEY=monitoring-test-key", "TF_CLI_CONFIG_FILE=/dev/null")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &devInstance{cmd: cmd, dataDir: dataDir, key: "monitoring-test-key", output: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The banner names the API, then Temporal ("Temporal: ADDR (namespace
	// default; ...)").
	type addrs struct{ api, temporal string }
	ready := make(chan addrs, 1)
	go func() {
		var a addrs
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if rest, ok := strings.CutPrefix(line, "API:"); ok {
				a.api = strings.TrimSuffix(strings.TrimSpace(rest), "/api/v1/tasks")
			} else if rest, ok := strings.CutPrefix(line, "Temporal:"); ok && a.api != "" && a.temporal == "" {
				a.temporal, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
				ready <- a
			}
		}
	}()
	go func() { d.done <- cmd.Wait() }()
	select {
	case a := <-ready:
		d.api, d.temporal = a.api, a.temporal
	case err := <-d.done:
		t.Fatalf("terratask dev exited: %v", err)
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("terratask dev did not start within 3 minutes")
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Error("terratask dev did not stop within a minute of SIGTERM")
		}
	})
	return d
}

func (d *devInstance) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.api+path, rd)
	req.Header.Set("Authorization", "UserKey "+d.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (d *devInstance) create(t *testing.T, body map[string]any) string {
	t.Helper()
	code, b := d.do(t, http.MethodPost, "/api/v1/tasks", body)
	var tk struct {
		ID string `json:"id"`
	}
	if code != 200 || json.Unmarshal(b, &tk) != nil {
		t.Fatalf("create: %d %s", code, b)
	}
	return tk.ID
}

func (d *devInstance) wait(t *testing.T, id string) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, b := d.do(t, http.MethodGet, "/api/v1/tasks/"+id+"/status", nil)
		var st struct {
			Status string `json:"status"`
		}
		if code == 200 && json.Unmarshal(b, &st) == nil {
			switch st.Status {
			case "completed", "failed", "cancelled", "rejected":
				return st.Status
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not finished after 3 minutes: %d %s", id, code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrape fetches /metrics and returns the text and how long it took.
func (d *devInstance) scrape(t *testing.T) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(d.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, resp.Header)
	}
	return string(b), time.Since(start)
}
