package activities

import (
	"fmt"
	"os"
	"reflect"
	"sync"
	"unsafe"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/terraform-exec/tfexec"
)

// terraform-exec checks the binary's version before most commands and
// caches the answer in the handle: a new handle runs `terraform version
// -json` once (about 50 ms of a process, and as much CPU). A task makes its
// own handle, so without help every task would run it. The runner keeps the
// answer per binary instead, keyed by path, size and modification time (a
// binary replaced in place has another size or time), and gives it to every
// new handle of that binary.
//
// terraform-exec has no setter for the cached version, so the handle's
// private field is read and written through reflection. If a later
// terraform-exec renames the field, both helpers do nothing and each task
// runs `version` once again (TestVersionSeedReachesTerraformExec fails
// first).

// versionField is the handle's cached version field, found once.
var versionField = sync.OnceValue(func() reflect.StructField {
	f, ok := reflect.TypeFor[tfexec.Terraform]().FieldByName("execVersion")
	if !ok || f.Type != reflect.TypeFor[*version.Version]() {
		return reflect.StructField{}
	}
	return f
})

// handleVersion returns the version a handle has cached (nil when none).
func handleVersion(tf *tfexec.Terraform) *version.Version {
	f := versionField()
	if f.Type == nil {
		return nil
	}
	p := unsafe.Add(unsafe.Pointer(tf), f.Offset)
	return *(**version.Version)(p)
}

// seedVersion gives a handle that has none the version of its binary. A
// handle is seeded before its first command, so nothing reads the field
// meanwhile.
func seedVersion(tf *tfexec.Terraform, v *version.Version) bool {
	f := versionField()
	if f.Type == nil || v == nil {
		return false
	}
	p := (**version.Version)(unsafe.Add(unsafe.Pointer(tf), f.Offset))
	if *p == nil {
		*p = v
	}
	return true
}

// binaryVersions caches each binary's version by binaryKey.
type binaryVersions struct {
	mu sync.Mutex
	m  map[string]*version.Version
}

// binaryKey names a binary as it is now: path, size and modification time.
func binaryKey(path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return fmt.Sprintf("%s\x00%d\x00%d", path, fi.Size(), fi.ModTime().UnixNano()), true
}

// share seeds tf with the cached version of the binary at path, or, when
// tf has learned it (after its first command), caches tf's.
func (b *binaryVersions) share(tf *tfexec.Terraform, path string) {
	key, ok := binaryKey(path)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if v := b.m[key]; v != nil {
		seedVersion(tf, v)
		return
	}
	if v := handleVersion(tf); v != nil {
		if b.m == nil || len(b.m) >= 64 {
			b.m = map[string]*version.Version{}
		}
		b.m[key] = v
	}
}
