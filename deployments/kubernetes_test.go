package deployments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

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
		env    map[string]string // TERRATASK_ variables the container gets
		cfg    map[string]string // check-config result
		// secretKeys are the Secret's keys the pod reads (volume items and
		// env); fileKeys maps a config key naming a file to its Secret key.
		secretKeys, fileKeys map[string]string
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
		if key == "Deployment/terratask-runner-main" {
			// The runner's strict isolation builds a sandbox per command:
			// its pod must allow that (README, Isolation).
			c := asObject(spec.list("containers")[0])
			if spec.get("hostUsers") != false || c.get("securityContext", "procMount") != "Unmasked" ||
				spec.get("securityContext", "seccompProfile", "type") == "RuntimeDefault" {
				t.Errorf("%s: the runner pod cannot build its sandbox: want hostUsers false, procMount Unmasked and a seccomp profile that allows unshare", key)
			}
		}
		volumes := map[string]object{}
		secretKeys := map[string]string{} // Secret key -> how the pod reads it
		for _, v := range spec.list("volumes") {
			vo := asObject(v)
			volumes[vo.str("name")] = vo
			if name := vo.str("secret", "secretName"); name != "" && name != "terratask" {
				t.Errorf("%s: volume %s uses secret %s", key, vo.str("name"), name)
			}
			if vo.get("secret") != nil && len(vo.list("secret", "items")) == 0 {
				t.Errorf("%s: volume %s mounts the whole Secret; name its items", key, vo.str("name"))
			}
			for _, it := range vo.list("secret", "items") {
				k := asObject(it).str("key")
				if secret.get("stringData", k) == nil {
					t.Errorf("%s: secret key %s not in the Secret", key, k)
				}
				secretKeys[k] = "volume " + vo.str("name")
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
		if len(c.list("envFrom")) > 0 {
			t.Errorf("%s: envFrom hides what the container gets; name each variable", key)
		}
		env := map[string]string{} // the TERRATASK_ variables
		for _, e := range c.list("env") {
			eo := asObject(e)
			name := eo.str("name")
			if ref := eo.str("valueFrom", "secretKeyRef", "key"); ref != "" {
				if eo.str("valueFrom", "secretKeyRef", "name") != "terratask" || secret.get("stringData", ref) == nil {
					t.Errorf("%s: env %s from unknown secret key %s", key, name, ref)
				}
				secretKeys[ref] = "env " + name
				if ref == "store-dsn" {
					env[name] = "postgres://terratask@db:5432/terratask"
				} else {
					env[name] = "from the Secret's " + ref
				}
			} else if strings.HasPrefix(name, "TERRATASK_") {
				env[name] = eo.str("value")
			}
		}
		if key != "Deployment/terratask-runner-main" && !strings.HasPrefix(env["TERRATASK_STORE"], "postgres://") {
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
		cfg := checkConfig(t, checkArgs, env)
		// Files named by the config are on mounted volumes.
		fileKeys := map[string]string{}
		for _, k := range []string{"api-keys-file", "secret-key-file", "old-secret-keys-file"} {
			p := value(cfg[k])
			if p == "" {
				continue
			}
			dir, base := filepath.Split(p)
			vol := volumes[mountPaths[filepath.Clean(dir)]]
			for _, it := range vol.list("secret", "items") {
				if asObject(it).str("path") == base {
					fileKeys[k] = asObject(it).str("key")
				}
			}
			if fileKeys[k] == "" {
				t.Errorf("%s: %s %s is not a file of a mounted Secret", key, k, p)
			}
		}
		pods[key] = podInfo{spec: spec, labels: labels, args: args, env: env, cfg: cfg, secretKeys: secretKeys, fileKeys: fileKeys}
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

	// Runners: two replicas of org default writing through the servers'
	// runner API (and keeping state on their state backend) through the
	// Service, with the org's key and neither the store nor the secret key,
	// and a termination grace above the runner's --grace.
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
	serverURL := fmt.Sprintf("http://terratask.terratask.svc.cluster.local:%d", svcPort)
	checkRunnerTrust(t, "runner", rp.env, rp.cfg, serverURL)
	masterKey := pods["Deployment/terratask-server"].fileKeys["secret-key-file"]
	if masterKey == "" {
		t.Fatal("the server's secret-key-file is no item of the Secret")
	}
	for _, k := range []string{masterKey, "store-dsn"} {
		if how, ok := rp.secretKeys[k]; ok {
			t.Errorf("runner pods read the Secret's %s (%s): they hold neither the secret key nor the store", k, how)
		}
	}
	if k := rp.fileKeys["secret-key-file"]; k != "org-default-key" {
		t.Errorf("runner secret-key-file is the Secret's %q, want org-default-key (terratask keys org --org default)", k)
	}
	if len(rp.secretKeys) != 1 {
		t.Errorf("runner pods read the Secret's %v, want its org-default-key only", rp.secretKeys)
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
