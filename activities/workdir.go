package activities

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// backendFile is the generated file that points a configuration without a
// backend of its own at the runner's state directory. It is a normal file,
// not an _override.tf: an override cannot add a block that does not exist.
const backendFile = "zz_terratask_backend.tf"

// Limits of inline `files`.
const (
	maxFiles     = 100
	maxFileSize  = 1 << 20
	maxFilesSize = 8 << 20
)

// Limits of a copied module directory.
const (
	maxCopyFiles = 10000
	maxCopySize  = 512 << 20
	maxCopyDepth = 32
)

// fileNameRe is what an inline file may be called: a plain name with a
// Terraform-related extension.
var fileNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]+\.(tf|tf\.json|tfvars|tfvars\.json|tpl|json|sh|txt|yaml|yml)$`)

// checkFileName validates the name of an inline file.
func checkFileName(name string) error {
	switch {
	case strings.ContainsAny(name, `/\`):
		return configErrorf("files: %q must be a plain file name, without directories", name)
	case strings.HasPrefix(name, "."):
		return configErrorf("files: %q: hidden files are not allowed", name)
	case strings.Contains(name, ".."):
		return configErrorf("files: %q must not contain \"..\"", name)
	case name == backendFile:
		return configErrorf("files: %q is reserved for the runner", name)
	case !fileNameRe.MatchString(name):
		return configErrorf("files: %q: allowed are names of letters, digits, '.', '_' and '-' ending in .tf, .tf.json, .tfvars, .tfvars.json, .tpl, .json, .sh, .txt, .yaml or .yml", name)
	}
	return nil
}

// writeFiles writes inline files into dir after validating all of them.
func writeFiles(dir string, files map[string]string) error {
	if len(files) > maxFiles {
		return configErrorf("files: %d files, at most %d are allowed", len(files), maxFiles)
	}
	total, hasConfig := 0, false
	for name, content := range files {
		if err := checkFileName(name); err != nil {
			return err
		}
		if len(content) > maxFileSize {
			return configErrorf("files: %q is larger than %d bytes", name, maxFileSize)
		}
		total += len(content)
		hasConfig = hasConfig || strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tf.json")
	}
	if total > maxFilesSize {
		return configErrorf("files: %d bytes in all, at most %d are allowed", total, maxFilesSize)
	}
	if !hasConfig {
		return configErrorf("files: no .tf or .tf.json file given")
	}
	for name, content := range files {
		mode := os.FileMode(0o600)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o700
		}
		// O_EXCL: the directory is fresh, so nothing can be a symlink
		// planted to redirect the write.
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return transientError("writing inline files", err)
		}
		_, err = f.WriteString(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return transientError("writing inline files", err)
		}
	}
	return nil
}

// checkModuleName validates a catalog module name: one plain path component.
func checkModuleName(name string) error {
	if !nameRe.MatchString(name) || strings.Contains(name, "..") {
		return configErrorf("module: %q is not a module name (letters, digits, '.', '_' and '-'; no path)", name)
	}
	return nil
}

// isLocalSource reports whether Terraform would read a module source from
// the local file system.
func isLocalSource(src string) bool {
	return filepath.IsAbs(src) || src == "." || src == ".." ||
		strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../")
}

var (
	forcedGetterRe = regexp.MustCompile(`^[A-Za-z0-9]+::`)
	fileSchemeRe   = regexp.MustCompile(`(?i)(^|::)file:`)
	userinfoRe     = regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`)
)

// checkRemoteSource rejects remote-looking sources that would read the local
// file system (file::, git::file://...) or carry credentials, which would
// end up on a command line.
func checkRemoteSource(src string) error {
	rest := forcedGetterRe.ReplaceAllString(src, "")
	switch {
	case strings.HasPrefix(strings.ToLower(src), "file::") || fileSchemeRe.MatchString(src):
		return configErrorf("source: file sources are not allowed; give an absolute path inside an allowed source root")
	case isLocalSource(rest) || strings.HasPrefix(rest, "~"):
		return configErrorf("source: %q reads the local file system; give an absolute path inside an allowed source root", src)
	case userinfoRe.MatchString(src):
		return configErrorf("source: credentials in the source address are not allowed (they would appear on a command line); pass them through env")
	case strings.ContainsAny(src, "\n\r\x00"):
		return configErrorf("source: invalid characters")
	}
	return nil
}

// checkSourceHost refuses a remote source whose host the runner's
// --source-allow does not list: Terraform fetches it, so the host is the
// only thing the runner can check (an allowed host is trusted with its
// redirects and, for a registry, with where its modules are downloaded).
func checkSourceHost(p task.Params, allow events.AllowList) error {
	registry := events.TerraformRegistry
	if p.EffectiveEngine() == task.EngineOpenTofu {
		registry = events.OpenTofuRegistry
	}
	if err := events.CheckSource(p.Source, registry, allow); err != nil {
		return configErrorf("source: %s", err)
	}
	return nil
}

// resolveLocalSource returns the real path of a local source if it lies
// inside one of roots.
func resolveLocalSource(src string, roots []string) (string, error) {
	if !filepath.IsAbs(src) {
		return "", configErrorf("source: a local source must be an absolute path, got %q", src)
	}
	if len(roots) == 0 {
		return "", configErrorf("source: this runner allows no local sources")
	}
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return "", configErrorf("source: %q does not exist on this runner", src)
	}
	for _, root := range roots {
		abs, err := filepath.Abs(root)
		if err != nil {
			continue
		}
		rr, err := filepath.EvalSymlinks(abs)
		if err != nil {
			continue
		}
		if within(rr, real) {
			return real, nil
		}
	}
	return "", configErrorf("source: %q is outside the runner's allowed source roots", src)
}

// within reports whether path is root or lies below it (both cleaned and
// absolute).
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// stateLeftovers are local state files and dirs skipped at a module's root.
var stateLeftovers = map[string]bool{
	"terraform.tfstate": true, "terraform.tfstate.backup": true,
	".terraform.tfstate.lock.info": true, "terraform.tfstate.d": true,
}

// copyBudget bounds a module copy.
type copyBudget struct{ files, bytes int64 }

// copyModule copies the module directory src into dst (which exists). It
// copies files rather than linking them, so a task cannot change the
// catalog. Symlinks are followed only when they resolve inside src; one that
// leaves it fails the copy.
func copyModule(src, dst string) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return configErrorf("module directory %q does not exist", src)
	}
	if root, err = filepath.Abs(root); err != nil {
		return transientError("copying module", err)
	}
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		return configErrorf("module %q is not a directory", src)
	}
	return copyDir(root, root, dst, &copyBudget{}, 0)
}

func copyDir(root, dir, dst string, b *copyBudget, depth int) error {
	if depth > maxCopyDepth {
		return configErrorf("module: directories nested deeper than %d (a symlink loop?)", maxCopyDepth)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return transientError("reading module", err)
	}
	for _, e := range ents {
		name := e.Name()
		// Terraform's data dir and VCS metadata are never configuration;
		// state left in a module dir by someone running Terraform there
		// would make init offer a migration into the runner's backend.
		if name == ".terraform" || name == ".git" || name == ".terratask" ||
			(dir == root && stateLeftovers[name]) {
			continue
		}
		from, to := filepath.Join(dir, name), filepath.Join(dst, name)
		info, err := os.Lstat(from)
		if err != nil {
			return transientError("reading module", err)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(from)
			if err != nil {
				return configErrorf("module: broken symlink %s", relTo(root, from))
			}
			if !within(root, target) {
				return configErrorf("module: symlink %s points outside the module", relTo(root, from))
			}
			from = target
			if info, err = os.Stat(target); err != nil {
				return transientError("reading module", err)
			}
		}
		switch {
		case info.IsDir():
			if err := os.Mkdir(to, 0o700); err != nil {
				return transientError("copying module", err)
			}
			if err := copyDir(root, from, to, b, depth+1); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			b.files++
			b.bytes += info.Size()
			if b.files > maxCopyFiles || b.bytes > maxCopySize {
				return configErrorf("module: larger than %d files or %d bytes", maxCopyFiles, maxCopySize)
			}
			if err := copyFile(from, to, info.Mode()); err != nil {
				return transientError("copying module", err)
			}
		}
		// Devices, sockets and pipes are skipped.
	}
	return nil
}

func copyFile(from, to string, mode fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	perm := os.FileMode(0o600)
	if mode.Perm()&0o100 != 0 {
		perm = 0o700
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func relTo(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil {
		return rel
	}
	return filepath.Base(path)
}

// declaresBackend reports whether the root module in dir declares a backend
// or cloud block of its own.
func declaresBackend(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tf"):
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return false, err
			}
			if hclDeclaresBackend(b) {
				return true, nil
			}
		case strings.HasSuffix(name, ".tf.json"):
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return false, err
			}
			if jsonDeclaresBackend(b) {
				return true, nil
			}
		}
	}
	return false, nil
}

// hclDeclaresBackend scans HCL source for a top-level `terraform` block with
// a `backend "..."` or `cloud` block directly inside it. It skips comments
// and strings; it is a scanner, not a parser, which is enough for this
// question (Terraform itself reports malformed files).
func hclDeclaresBackend(src []byte) bool {
	depth := 0
	inTerraform := false // inside a top-level terraform block
	var words []string   // identifiers and strings since the last brace or newline
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			words = nil
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return false
			}
			i += end + 3
		case c == '<' && i+1 < len(src) && src[i+1] == '<':
			i = skipHeredoc(src, i)
			words = nil
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			words = append(words, "\"")
			i = j
		case c == '\n':
			words = nil
		case c == '{':
			if depth == 0 && len(words) == 1 && words[0] == "terraform" {
				inTerraform = true
			}
			if depth == 1 && inTerraform && len(words) > 0 &&
				((words[0] == "backend" && len(words) == 2 && words[1] == "\"") || (words[0] == "cloud" && len(words) == 1)) {
				return true
			}
			depth++
			words = nil
		case c == '}':
			depth--
			if depth <= 0 {
				depth, inTerraform = 0, false
			}
			words = nil
		case isIdentStart(c):
			j := i
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			words = append(words, string(src[i:j]))
			i = j - 1
		case c == '=':
			words = append(words, "=")
		}
	}
	return false
}

// skipHeredoc returns the index of the end of a heredoc starting at i
// ("<<EOT" or "<<-EOT"), or i+1 when it is not one.
func skipHeredoc(src []byte, i int) int {
	j := i + 2
	if j < len(src) && src[j] == '-' {
		j++
	}
	k := j
	for k < len(src) && isIdentChar(src[k]) {
		k++
	}
	if k == j {
		return i + 1
	}
	marker := string(src[j:k])
	for {
		nl := bytes.IndexByte(src[k:], '\n')
		if nl < 0 {
			return len(src)
		}
		k += nl + 1
		end := bytes.IndexByte(src[k:], '\n')
		line := src[k:]
		if end >= 0 {
			line = src[k : k+end]
		}
		if strings.TrimSpace(string(line)) == marker {
			return k + len(line) - 1
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c == '-' || (c >= '0' && c <= '9')
}

// jsonDeclaresBackend looks for terraform.backend or terraform.cloud in a
// .tf.json file; "terraform" may be an object or an array of objects.
func jsonDeclaresBackend(src []byte) bool {
	var doc map[string]json.RawMessage
	if json.Unmarshal(src, &doc) != nil {
		return false
	}
	raw, ok := doc["terraform"]
	if !ok {
		return false
	}
	var blocks []map[string]json.RawMessage
	var one map[string]json.RawMessage
	if json.Unmarshal(raw, &one) == nil {
		blocks = append(blocks, one)
	} else if json.Unmarshal(raw, &blocks) != nil {
		return false
	}
	for _, b := range blocks {
		if _, ok := b["backend"]; ok {
			return true
		}
		if _, ok := b["cloud"]; ok {
			return true
		}
	}
	return false
}

// writeBackend writes the local backend pointing at statePath.
func writeBackend(dir, statePath string) error {
	content := fmt.Sprintf("# Generated by terratask: state of this task's workspace on the runner.\nterraform {\n  backend \"local\" {\n    path = %s\n  }\n}\n", hclString(statePath))
	return os.WriteFile(filepath.Join(dir, backendFile), []byte(content), 0o600)
}

// hclString quotes s as an HCL string literal with no interpolation.
func hclString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	q := strings.TrimSpace(buf.String())
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// writeVarFile writes variables as a 0600 JSON var file (passed with
// -var-file, never on a command line).
func writeVarFile(path string, vars map[string]any) error {
	b, err := json.Marshal(vars)
	if err != nil {
		return configErrorf("variables cannot be encoded as JSON: %v", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return transientError("writing the var file", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return transientError("writing the var file", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return transientError("writing the var file", err)
	}
	return nil
}
