package deployments

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ---- README.md: its steps make what the deployments use ----

// readmeBlock returns the first ```sh block after the heading.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("README.md: no sh block under %q", heading)
	}
	return block
}

// TestReadmeComposeSecrets runs the README's docker compose steps up to
// `docker compose up` (the built binary for `go run ../cmd/terratask`) and
// checks that they make what docker-compose.yml needs: every variable it
// requires in .env, every secret's file, readable by the image's user; the
// runners' secret is the org key `terratask keys org --org default` derives
// from the secret key, not the secret key.
func TestReadmeComposeSecrets(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("the README's steps use openssl")
	}
	var steps []string
	for _, line := range strings.Split(readmeBlock(t, "## docker compose"), "\n") {
		if strings.HasPrefix(line, "docker compose") {
			break
		}
		steps = append(steps, line)
	}
	script := strings.ReplaceAll(strings.Join(steps, "\n"), "go run ../cmd/terratask", terratask(t))
	root := t.TempDir()
	dir := filepath.Join(root, "deployments")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's steps: %v\n%s\n%s", err, script, out)
	}

	compose, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(dir, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{(\w+):\?`).FindAllStringSubmatch(string(compose), -1) {
		if !regexp.MustCompile(`(?m)^` + m[1] + `=\S+$`).Match(env) {
			t.Errorf(".env does not set %s, which docker-compose.yml requires", m[1])
		}
	}

	var c composeFile
	readYAML(t, "docker-compose.yml", &c)
	files := map[string][]byte{} // secret -> its file's content
	for name, sec := range c.Secrets {
		p := filepath.Join(dir, sec.File)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("secret %s: %v", name, err)
			continue
		}
		// Bind-mounted with its host mode: uid 10001 reads it as "other".
		if st.Mode().Perm()&0o004 == 0 {
			t.Errorf("secret %s: %s is %v, unreadable by the image's user", name, p, st.Mode().Perm())
		}
		if files[name], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	runnerSecrets := c.Services["terratask-runner-1"].Secrets
	if len(runnerSecrets) != 1 {
		t.Fatalf("runner secrets %v, want the org key only", runnerSecrets)
	}
	master, orgKey := files["terratask-secret-key"], files[runnerSecrets[0]]
	want, err := exec.Command(terratask(t), "keys", "org", "--org", "default",
		"--secret-key-file", filepath.Join(dir, c.Secrets["terratask-secret-key"].File)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orgKey, want) || bytes.Equal(bytes.TrimSpace(orgKey), bytes.TrimSpace(master)) {
		t.Errorf("the runners' secret %s is not org default's key derived from the secret key", runnerSecrets[0])
	}
}

// TestReadmeKubernetesSecret checks that the `kubectl create secret`
// commands of the README and of 01-secret.yaml create every key of the
// placeholder Secret, and no other.
func TestReadmeKubernetesSecret(t *testing.T) {
	objs, _ := loadManifests(t)
	data, _ := objs["Secret/terratask"].get("stringData").(map[string]any)
	var want []string
	for k := range data {
		want = append(want, k)
	}
	slices.Sort(want)
	manifest, err := os.ReadFile("kubernetes/01-secret.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keyRE := regexp.MustCompile(`--from-(?:file|literal)=([\w.-]+)=`)
	for where, text := range map[string]string{"README.md": readmeBlock(t, "## Kubernetes"), "01-secret.yaml": string(manifest)} {
		var got []string
		for _, m := range keyRE.FindAllStringSubmatch(text, -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: kubectl create secret makes keys %v, the Secret has %v", where, got, want)
		}
	}
	if !strings.Contains(readmeBlock(t, "## Kubernetes"), "keys org --org default") {
		t.Error("README.md: the Kubernetes steps do not make the org key (terratask keys org --org default)")
	}
}
