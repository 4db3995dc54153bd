package policy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// NamePattern is what a policy's name must match: 1 to 100 letters,
// digits, '_', '.' or '-', starting with a letter or digit.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// ValidName reports whether name is a valid policy name (NamePattern).
func ValidName(name string) bool { return NamePattern.MatchString(name) }

// DirModule is one policy of a directory (LoadDir).
type DirModule struct {
	// Name is the file's path below the directory without ".rego", its
	// separators replaced by ".": aws/tags.rego is aws.tags.
	Name string
	// Path is the file's path: the directory joined with its relative path.
	Path string
	// Rego is the file's text.
	Rego string
}

// regoExt and testSuffix name a directory's policies and their tests.
const (
	regoExt    = ".rego"
	testSuffix = "_test.rego"
)

// hidden reports whether a file or directory name is hidden (.git, .x.rego).
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// LoadDir reads the policies of a directory, as `terratask policies push`
// and --policy-dir take them: every *.rego file below dir, recursively,
// except hidden files and directories and tests (*_test.rego), sorted by
// name. A file whose name is not a valid policy name (ValidName), or two
// files of one name (a/b.rego and a.b.rego), are an error naming the
// files. The modules are not parsed: Compile checks them.
func LoadDir(dir string) ([]DirModule, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("policy directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("policy directory %s: not a directory", dir)
	}
	var out []DirModule
	err = walkRego(dir, func(path, rel string) error {
		if strings.HasSuffix(rel, testSuffix) {
			return nil
		}
		name := strings.ReplaceAll(filepath.ToSlash(strings.TrimSuffix(rel, regoExt)), "/", ".")
		if !ValidName(name) {
			return fmt.Errorf("%s: policy name %q is not valid: a policy name is 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit (rename the file)", path, name)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, DirModule{Name: name, Path: path, Rego: string(b)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, fmt.Errorf("%s and %s are both policy %q: rename one", out[i-1].Path, out[i].Path, out[i].Name)
		}
	}
	return out, nil
}

// walkRego calls fn for every *.rego file below root (tests included),
// skipping hidden files and directories; rel is the file's path relative
// to root.
func walkRego(root string, fn func(path, rel string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		if hidden(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), regoExt) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		return fn(path, rel)
	})
}
