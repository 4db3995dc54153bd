package deployments

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// ---- docker-compose.yml ----

type composeService struct {
	Image           string            `yaml:"image"`
	Build           map[string]any    `yaml:"build"`
	Command         []string          `yaml:"command"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Secrets         []string          `yaml:"secrets"`
	Ports           []string          `yaml:"ports"`
	DependsOn       any               `yaml:"depends_on"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Restart         string            `yaml:"restart"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func dependsOn(s composeService) map[string]string {
	m := map[string]string{}
	switch d := s.DependsOn.(type) {
	case []any:
		for _, n := range d {
			m[n.(string)] = "service_started"
		}
	case map[string]any:
		for n, v := range d {
			cond := "service_started"
			if mv, ok := v.(map[string]any); ok {
				if c, ok := mv["condition"].(string); ok {
					cond = c
				}
			}
			m[n] = cond
		}
	}
	return m
}

func TestCompose(t *testing.T) {
	var c composeFile
	readYAML(t, "docker-compose.yml", &c)

	want := []string{"postgres", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui",
		"terratask-migrate", "terratask-server", "terratask-runner-1", "terratask-runner-2"}
	for _, name := range want {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	for name, s := range c.Services {
		for dep := range dependsOn(s) {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts undeclared volume %s", name, src)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s uses undeclared secret %s", name, sec)
			}
		}
	}

	// Temporal on PostgreSQL, its schema applied first, and its UI.
	if s := c.Services["temporal"]; !strings.HasPrefix(s.Image, "temporalio/server:") || s.Environment["DB"] != "postgres12" || s.Environment["POSTGRES_SEEDS"] != "postgres" {
		t.Errorf("temporal: image %q, DB %q, seeds %q", s.Image, s.Environment["DB"], s.Environment["POSTGRES_SEEDS"])
	}
	if d := dependsOn(c.Services["temporal"]); d["temporal-schema"] != "service_completed_successfully" {
		t.Errorf("temporal must wait for temporal-schema to complete: %v", d)
	}
	schema := strings.Join(c.Services["temporal-schema"].Command, "\n")
	for _, w := range []string{"schema/postgresql/v12/temporal/versioned", "schema/postgresql/v12/visibility/versioned", "temporal_visibility"} {
		if !strings.Contains(schema, w) {
			t.Errorf("temporal-schema lacks %q", w)
		}
	}
	if c.Services["temporal-schema"].Environment["SQL_PLUGIN"] != "postgres12" {
		t.Errorf("temporal-schema: SQL_PLUGIN %q", c.Services["temporal-schema"].Environment["SQL_PLUGIN"])
	}
	if s := c.Services["temporal-ui"]; !strings.HasPrefix(s.Image, "temporalio/ui:") || s.Environment["TEMPORAL_ADDRESS"] != "temporal:7233" {
		t.Errorf("temporal-ui: %+v", s)
	}

	// terratask processes: every command and config file is accepted by the
	// real binary, with the environment compose gives it. The store (its DSN
	// holds a password) comes from the environment, for the migration and
	// the server only.
	envOf := map[string]map[string]string{}
	for _, name := range []string{"terratask-migrate", "terratask-server", "terratask-runner-1", "terratask-runner-2"} {
		s := c.Services[name]
		if s.Image != "terratask:local" || s.Build["dockerfile"] != "deployments/Dockerfile" {
			t.Errorf("%s: image %q build %v", name, s.Image, s.Build)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = v
		}
		if dsn, ok := env["TERRATASK_STORE"]; ok {
			if !strings.HasPrefix(dsn, "postgres://") {
				t.Errorf("%s: TERRATASK_STORE %q", name, dsn)
			}
			env["TERRATASK_STORE"] = "postgres://terratask@postgres:5432/terratask?sslmode=disable"
		}
		envOf[name] = env
	}
	for _, name := range []string{"terratask-migrate", "terratask-server"} {
		if _, ok := envOf[name]["TERRATASK_STORE"]; !ok {
			t.Errorf("%s: no TERRATASK_STORE", name)
		}
	}
	if d := dependsOn(c.Services["terratask-server"]); d["terratask-migrate"] != "service_completed_successfully" || d["temporal-namespace"] != "service_completed_successfully" {
		t.Errorf("terratask-server must start after the migration and the namespace: %v", d)
	}
	// The runners write through the server, which waits for the migration.
	for _, name := range []string{"terratask-runner-1", "terratask-runner-2"} {
		if d := dependsOn(c.Services[name]); d["terratask-server"] == "" || d["temporal-namespace"] != "service_completed_successfully" {
			t.Errorf("%s must start after the server and the namespace: %v", name, d)
		}
	}

	// Config files mounted into containers, checked with their in-container
	// command line (paths mapped back to the repository).
	server := c.Services["terratask-server"]
	got := checkConfig(t, withConfig(t, server.Command, composeMounts(server)), envOf["terratask-server"])
	if value(got["http-address"]) != "0.0.0.0:8080" || value(got["temporal-address"]) != "temporal:7233" {
		t.Errorf("server config: %v", got)
	}
	secretPaths := map[string]bool{}
	for _, sec := range server.Secrets {
		secretPaths["/run/secrets/"+sec] = true
	}
	for _, k := range []string{"api-keys-file", "secret-key-file"} {
		if !secretPaths[value(got[k])] {
			t.Errorf("server %s = %q is not one of its secrets %v", k, got[k], server.Secrets)
		}
	}
	// The file of the control plane's secret key, which no runner may get.
	masterKeyFile := c.Secrets[strings.TrimPrefix(value(got["secret-key-file"]), "/run/secrets/")].File
	if masterKeyFile == "" {
		t.Errorf("server secret-key-file %q is no declared secret", got["secret-key-file"])
	}
	if !strings.Contains(strings.Join(server.Ports, " "), ":8080") {
		t.Errorf("server ports %v", server.Ports)
	}

	var grace time.Duration
	for _, name := range []string{"terratask-runner-1", "terratask-runner-2"} {
		r := c.Services[name]
		got := checkConfig(t, withConfig(t, r.Command, composeMounts(r)), envOf[name])
		if value(got["id"]) != "main" {
			t.Errorf("%s: id %q", name, got["id"])
		}
		// server-url names the server service's port (8080, checked above).
		keyFile := checkRunnerTrust(t, name, envOf[name], got, "http://terratask-server:8080")
		// The key file is one of the runner's secrets: the org key's file,
		// and no secret of the runner is the secret key's.
		sec, ok := strings.CutPrefix(keyFile, "/run/secrets/")
		if !ok || !slices.Contains(r.Secrets, sec) {
			t.Errorf("%s: secret-key-file %q is not one of its secrets %v", name, keyFile, r.Secrets)
		}
		for _, rs := range r.Secrets {
			if f := c.Secrets[rs].File; f == masterKeyFile {
				t.Errorf("%s gets the control plane's secret key (secret %s, file %s)", name, rs, f)
			}
		}
		if f := c.Secrets[sec].File; f != "./secrets/org-default.key" {
			t.Errorf("%s: its key is the file %q, want the org key ./secrets/org-default.key", name, f)
		}
		var err error
		if grace, err = time.ParseDuration(value(got["grace"])); err != nil {
			t.Fatal(err)
		}
		stop, err := time.ParseDuration(r.StopGracePeriod)
		if err != nil || stop <= grace {
			t.Errorf("%s: stop_grace_period %q must exceed the runner's grace %s", name, r.StopGracePeriod, grace)
		}
	}
	checkConfig(t, c.Services["terratask-migrate"].Command, envOf["terratask-migrate"])
}

// composeMounts maps a service's in-container paths to its bind-mounted
// files and its named volumes.
func composeMounts(s composeService) map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m[parts[1]] = parts[0]
	}
	return m
}

// withConfig returns a container's command with its --config file mapped,
// through the container's mounts, to the file in the repository.
func withConfig(t *testing.T, cmd []string, mounts map[string]string) []string {
	t.Helper()
	out := append([]string{}, cmd...)
	for i, a := range out {
		if a == "--config" && i+1 < len(out) {
			src, ok := mounts[out[i+1]]
			if !ok {
				t.Fatalf("%v: config %s is not mounted (%v)", cmd, out[i+1], mounts)
			}
			out[i+1] = src
			return out
		}
	}
	t.Fatalf("%v has no --config", cmd)
	return nil
}
