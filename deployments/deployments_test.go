package deployments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// ---- the terratask binary, to check flags and config files against ----

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func terratask(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "terratask-deployments-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "terratask")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/terratask").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building terratask: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// checkConfig runs `terratask ARGS --check-config` with only env set among
// TERRATASK_ variables and returns flag -> "value (source)".
func checkConfig(t *testing.T, args []string, env map[string]string) map[string]string {
	t.Helper()
	cmd := exec.Command(terratask(t), append(append([]string{}, args...), "--check-config")...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERRATASK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("terratask %v --check-config: %v\n%s", args, err, errOut.String())
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// value strips the " (source)" suffix of a checkConfig entry.
func value(s string) string {
	if i := strings.LastIndex(s, " ("); i >= 0 {
		return s[:i]
	}
	return s
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// writeTemp writes body to a temp file and returns its path.
func writeTemp(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

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
	// real binary, with the store from the environment.
	storeEnv := map[string]string{}
	for _, name := range []string{"terratask-migrate", "terratask-server", "terratask-runner-1", "terratask-runner-2"} {
		s := c.Services[name]
		if s.Image != "terratask:local" || s.Build["dockerfile"] != "deployments/Dockerfile" {
			t.Errorf("%s: image %q build %v", name, s.Image, s.Build)
		}
		dsn := s.Environment["TERRATASK_STORE"]
		if !strings.HasPrefix(dsn, "postgres://") {
			t.Errorf("%s: TERRATASK_STORE %q", name, dsn)
		}
		storeEnv[name] = "postgres://terratask@postgres:5432/terratask?sslmode=disable"
	}
	for _, name := range []string{"terratask-server", "terratask-runner-1", "terratask-runner-2"} {
		if d := dependsOn(c.Services[name]); d["terratask-migrate"] != "service_completed_successfully" || d["temporal-namespace"] != "service_completed_successfully" {
			t.Errorf("%s must start after the migration and the namespace: %v", name, d)
		}
	}

	// Config files mounted into containers, checked with their in-container
	// command line (paths mapped back to the repository).
	mounts := func(s composeService) map[string]string {
		m := map[string]string{}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			m[parts[1]] = parts[0]
		}
		return m
	}
	server := c.Services["terratask-server"]
	got := checkConfig(t, withConfig(t, server.Command, mounts(server)), map[string]string{"TERRATASK_STORE": storeEnv["terratask-server"]})
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
	if !strings.Contains(strings.Join(server.Ports, " "), ":8080") {
		t.Errorf("server ports %v", server.Ports)
	}

	var grace time.Duration
	for _, name := range []string{"terratask-runner-1", "terratask-runner-2"} {
		r := c.Services[name]
		got := checkConfig(t, withConfig(t, r.Command, mounts(r)), map[string]string{"TERRATASK_STORE": storeEnv[name]})
		if value(got["id"]) != "main" {
			t.Errorf("%s: id %q", name, got["id"])
		}
		if want := "http://terratask-server:8080"; value(got["state-url"]) != want || !strings.Contains(strings.Join(server.Ports, " "), ":8080") {
			t.Errorf("%s: state-url %q, want the server service %s", name, got["state-url"], want)
		}
		if !strings.Contains(strings.Join(r.Secrets, " "), "terratask-secret-key") || value(got["secret-key-file"]) != "/run/secrets/terratask-secret-key" {
			t.Errorf("%s: secret key %q, secrets %v", name, got["secret-key-file"], r.Secrets)
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
	checkConfig(t, c.Services["terratask-migrate"].Command, map[string]string{"TERRATASK_STORE": storeEnv["terratask-migrate"]})
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

// ---- Kubernetes ----

type object map[string]any

func (o object) str(path ...string) string {
	v, _ := o.get(path...).(string)
	return v
}

func (o object) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (o object) list(path ...string) []any {
	l, _ := o.get(path...).([]any)
	return l
}

func asObject(v any) object {
	m, _ := v.(map[string]any)
	return object(m)
}

func loadManifests(t *testing.T) (map[string]object, []string) {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]object{}
	var names []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		names = append(names, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o map[string]any
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o == nil {
				continue
			}
			obj := object(o)
			kind, name := obj.str("kind"), obj.str("metadata", "name")
			if obj.str("apiVersion") == "" || kind == "" || name == "" {
				t.Errorf("%s: object without apiVersion, kind or metadata.name: %v", f, o)
				continue
			}
			if kind != "Namespace" && obj.str("metadata", "namespace") != "terratask" {
				t.Errorf("%s: %s/%s not in namespace terratask", f, kind, name)
			}
			key := kind + "/" + name
			if _, dup := objs[key]; dup {
				t.Errorf("%s: %s defined twice", f, key)
			}
			objs[key] = obj
		}
	}
	return objs, names
}

func TestKubernetes(t *testing.T) {
	objs, files := loadManifests(t)
	apiVersions := map[string]string{
		"Namespace/terratask":                       "v1",
		"Secret/terratask":                          "v1",
		"ConfigMap/terratask-config":                "v1",
		"Job/terratask-migrate":                     "batch/v1",
		"Deployment/terratask-server":               "apps/v1",
		"Service/terratask":                         "v1",
		"PodDisruptionBudget/terratask-server":      "policy/v1",
		"Deployment/terratask-runner-main":          "apps/v1",
		"PodDisruptionBudget/terratask-runner-main": "policy/v1",
	}
	for key, api := range apiVersions {
		o, ok := objs[key]
		if !ok {
			t.Errorf("%s missing", key)
			continue
		}
		if o.str("apiVersion") != api {
			t.Errorf("%s: apiVersion %q, want %q", key, o.str("apiVersion"), api)
		}
	}
	if t.Failed() {
		return
	}

	// kustomization.yaml lists every manifest.
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kubernetes/kustomization.yaml", &kust)
	sort.Strings(kust.Resources)
	sort.Strings(files)
	if strings.Join(kust.Resources, ",") != strings.Join(files, ",") {
		t.Errorf("kustomization resources %v, files %v", kust.Resources, files)
	}

	secret := objs["Secret/terratask"]
	cm := objs["ConfigMap/terratask-config"]
	configs := map[string]string{}
	for k, v := range cm.get("data").(map[string]any) {
		configs[k] = v.(string)
	}

	// Every pod: volumes and mounts agree, secret and config keys exist,
	// args and config files are accepted by the real binary.
	type podInfo struct {
		spec   object
		labels map[string]any
		args   []string
		cfg    map[string]string // check-config result
	}
	pods := map[string]podInfo{}
	for _, key := range []string{"Deployment/terratask-server", "Deployment/terratask-runner-main", "Job/terratask-migrate"} {
		o := objs[key]
		tmpl := asObject(o.get("spec", "template"))
		spec := asObject(tmpl.get("spec"))
		labels, _ := tmpl.get("metadata", "labels").(map[string]any)
		if strings.HasPrefix(key, "Deployment/") {
			sel, _ := o.get("spec", "selector", "matchLabels").(map[string]any)
			if len(sel) == 0 {
				t.Errorf("%s: no selector", key)
			}
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("%s: selector %s=%v does not match the pod labels %v", key, k, v, labels)
				}
			}
		}
		if spec.get("securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: runAsNonRoot not set", key)
		}
		volumes := map[string]object{}
		for _, v := range spec.list("volumes") {
			vo := asObject(v)
			volumes[vo.str("name")] = vo
			if name := vo.str("secret", "secretName"); name != "" && name != "terratask" {
				t.Errorf("%s: volume %s uses secret %s", key, vo.str("name"), name)
			}
			for _, it := range vo.list("secret", "items") {
				if k := asObject(it).str("key"); secret.get("stringData", k) == nil {
					t.Errorf("%s: secret key %s not in the Secret", key, k)
				}
			}
			for _, it := range vo.list("configMap", "items") {
				if _, ok := configs[asObject(it).str("key")]; !ok {
					t.Errorf("%s: config key %s not in the ConfigMap", key, asObject(it).str("key"))
				}
			}
			if c := vo.str("persistentVolumeClaim", "claimName"); c != "" && objs["PersistentVolumeClaim/"+c] == nil {
				t.Errorf("%s: no PVC %s", key, c)
			}
		}
		containers := spec.list("containers")
		if len(containers) != 1 {
			t.Fatalf("%s: %d containers", key, len(containers))
		}
		c := asObject(containers[0])
		if c.str("image") == "" {
			t.Errorf("%s: no image", key)
		}
		mountPaths := map[string]string{} // mount path -> volume name
		for _, m := range c.list("volumeMounts") {
			mo := asObject(m)
			if _, ok := volumes[mo.str("name")]; !ok {
				t.Errorf("%s: mount of unknown volume %s", key, mo.str("name"))
			}
			mountPaths[mo.str("mountPath")] = mo.str("name")
		}
		env := map[string]string{}
		for _, e := range c.list("env") {
			eo := asObject(e)
			if ref := eo.str("valueFrom", "secretKeyRef", "key"); ref != "" {
				if eo.str("valueFrom", "secretKeyRef", "name") != "terratask" || secret.get("stringData", ref) == nil {
					t.Errorf("%s: env %s from unknown secret key %s", key, eo.str("name"), ref)
				}
				env[eo.str("name")] = "postgres://terratask@db:5432/terratask"
			} else {
				env[eo.str("name")] = eo.str("value")
			}
		}
		if !strings.HasPrefix(env["TERRATASK_STORE"], "postgres://") {
			t.Errorf("%s: TERRATASK_STORE not from the Secret", key)
		}
		var args []string
		for _, a := range c.list("args") {
			args = append(args, a.(string))
		}
		// Map --config to the ConfigMap's file, checked by the binary.
		checkArgs := append([]string{}, args...)
		for i, a := range checkArgs {
			if a == "--config" && i+1 < len(checkArgs) {
				dir, base := filepath.Split(checkArgs[i+1])
				if vol := volumes[mountPaths[filepath.Clean(dir)]]; vol == nil || vol.str("configMap", "name") != "terratask-config" {
					t.Fatalf("%s: --config %s is not on the ConfigMap volume", key, checkArgs[i+1])
				}
				checkArgs[i+1] = writeTemp(t, base, configs[base])
			}
		}
		cfg := checkConfig(t, checkArgs, map[string]string{"TERRATASK_STORE": env["TERRATASK_STORE"]})
		// Files named by the config are on mounted volumes.
		for _, k := range []string{"api-keys-file", "secret-key-file"} {
			p := value(cfg[k])
			if p == "" {
				continue
			}
			dir, base := filepath.Split(p)
			vol := volumes[mountPaths[filepath.Clean(dir)]]
			found := false
			for _, it := range vol.list("secret", "items") {
				found = found || asObject(it).str("path") == base
			}
			if !found {
				t.Errorf("%s: %s %s is not a file of a mounted Secret", key, k, p)
			}
		}
		pods[key] = podInfo{spec: spec, labels: labels, args: args, cfg: cfg}
	}

	// Server: probes on /healthz and /readyz at the listening port; the
	// Service and the PDB select its pods.
	srv := objs["Deployment/terratask-server"]
	sc := asObject(pods["Deployment/terratask-server"].spec.list("containers")[0])
	ports := map[string]int{}
	for _, p := range sc.list("ports") {
		po := asObject(p)
		ports[po.str("name")] = po.get("containerPort").(int)
	}
	if addr := value(pods["Deployment/terratask-server"].cfg["http-address"]); !strings.HasSuffix(addr, ":8080") || ports["http"] != 8080 {
		t.Errorf("server listens on %s, container port http=%d", addr, ports["http"])
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := sc.str(probe, "httpGet", "path"); got != path {
			t.Errorf("server %s path %q, want %q", probe, got, path)
		}
		if p := sc.get(probe, "httpGet", "port"); p != "http" && p != 8080 {
			t.Errorf("server %s port %v", probe, p)
		}
	}
	if r, _ := srv.get("spec", "replicas").(int); r < 2 {
		t.Errorf("server replicas %d", r)
	}
	svc := objs["Service/terratask"]
	for k, v := range svc.get("spec", "selector").(map[string]any) {
		if pods["Deployment/terratask-server"].labels[k] != v {
			t.Errorf("Service selector %s=%v does not select the server pods", k, v)
		}
	}
	for _, p := range svc.list("spec", "ports") {
		if tp := asObject(p).get("targetPort"); tp != "http" && tp != 8080 {
			t.Errorf("Service targetPort %v", tp)
		}
	}
	for pdb, dep := range map[string]string{"PodDisruptionBudget/terratask-server": "Deployment/terratask-server", "PodDisruptionBudget/terratask-runner-main": "Deployment/terratask-runner-main"} {
		sel, _ := objs[pdb].get("spec", "selector", "matchLabels").(map[string]any)
		if len(sel) == 0 {
			t.Errorf("%s: no selector", pdb)
		}
		for k, v := range sel {
			if pods[dep].labels[k] != v {
				t.Errorf("%s selector %s=%v does not select %s", pdb, k, v, dep)
			}
		}
		if objs[pdb].get("spec", "minAvailable") == nil && objs[pdb].get("spec", "maxUnavailable") == nil {
			t.Errorf("%s: no minAvailable or maxUnavailable", pdb)
		}
	}

	// Runners: two replicas keeping state on the servers' state backend
	// through the Service, and a termination grace above the runner's --grace.
	run := objs["Deployment/terratask-runner-main"]
	rp := pods["Deployment/terratask-runner-main"]
	if r, _ := run.get("spec", "replicas").(int); r != 2 {
		t.Errorf("runner replicas %d, want 2", r)
	}
	svcPort := 0
	for _, p := range svc.list("spec", "ports") {
		if n, _ := asObject(p).get("port").(int); n != 0 {
			svcPort = n
		}
	}
	if want := fmt.Sprintf("http://terratask.terratask.svc.cluster.local:%d", svcPort); value(rp.cfg["state-url"]) != want {
		t.Errorf("runner state-url %q, want the server Service %s", rp.cfg["state-url"], want)
	}
	grace, err := time.ParseDuration(value(rp.cfg["grace"]))
	if err != nil {
		t.Fatal(err)
	}
	tgp, _ := rp.spec.get("terminationGracePeriodSeconds").(int)
	if time.Duration(tgp)*time.Second <= grace {
		t.Errorf("runner terminationGracePeriodSeconds %d must exceed --grace %s", tgp, grace)
	}

	// The Job runs `terratask migrate`.
	job := pods["Job/terratask-migrate"]
	if len(job.args) == 0 || job.args[0] != "migrate" {
		t.Errorf("migrate job args %v", job.args)
	}
	if rpol := job.spec.str("restartPolicy"); rpol != "OnFailure" && rpol != "Never" {
		t.Errorf("migrate job restartPolicy %q", rpol)
	}
}

// The sample config files of the compose setup are valid for the binary on
// their own (the compose test checks them as mounted).
func TestConfigFilesRefuseSecrets(t *testing.T) {
	for _, f := range []string{"config/server.yaml", "config/runner.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "postgres://") {
			t.Errorf("%s holds a DSN; it belongs in TERRATASK_STORE", f)
		}
	}
}
