package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Configuration comes from four places, one name everywhere: the flag
// --http-address, the environment variable TERRATASK_HTTP_ADDRESS and the
// config file key http-address. The first that sets a value wins:
// flag > environment > config file > default.
//
// The config file (--config FILE or TERRATASK_CONFIG) is YAML: a mapping from
// flag names to scalars, or to lists for repeatable flags. A key that is not a
// flag of the command is an error naming the key. Secrets never go in the
// file: there is no key for the secret key or a Temporal API key (use
// secret-key-file, or the environment), and a store DSN holding a password is
// refused (put the DSN in TERRATASK_STORE, or the password in PGPASSWORD or a
// PGPASSFILE).

// source says where a flag's value came from.
type source string

const (
	fromDefault source = "default"
	fromFile    source = "file"
	fromEnv     source = "env"
	fromFlag    source = "flag"
)

// secretKeys are names a config file might use for a secret; each is refused
// with a hint rather than a bare "unknown key".
var secretKeys = map[string]string{
	"secret-key":           "put the key in a file named by secret-key-file, or in TERRATASK_SECRET_KEY",
	"old-secret-keys":      "list them in a file named by old-secret-keys-file",
	"temporal-api-key":     "set TERRATASK_TEMPORAL_API_KEY",
	"api-key":              "set TERRATASK_API_KEY",
	"api-keys":             "list key hashes in the file named by api-keys-file",
	"password":             "put the database password in PGPASSWORD or a PGPASSFILE",
	"store-password":       "put the database password in PGPASSWORD or a PGPASSFILE",
	"temporal-tls-key-pem": "name a key file with temporal-tls-key",
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "TERRATASK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// configHelp ends the help of every command that reads its flags from the
// environment and a config file.
const configHelp = `
Each flag is also read from TERRATASK_<NAME> (--data-dir is TERRATASK_DATA_DIR; a
repeatable flag takes a comma list) and from the --config file's key of the same
name; precedence: flag > environment > file > default. Secrets are never flags
nor file keys.`

// configured marks a command whose flags come from the four places; its
// RunE calls applyConfig first.
func configured(cmd *cobra.Command) *cobra.Command {
	fs := cmd.Flags()
	fs.String("config", "", "YAML config file whose keys are these flag names (e.g. http-address: 0.0.0.0:8080;\nlists for repeatable flags); precedence: flag > TERRATASK_<NAME> > file > default.\nSecrets are refused in it. Also TERRATASK_CONFIG")
	fs.Bool("check-config", false, "print the effective configuration and where each value came from, then exit")
	cmd.Long += "\n" + configHelp
	return cmd
}

// notAFlag are flags of every command that are not configuration.
var notAFlag = map[string]bool{"help": true, "config": true, "check-config": true}

// errChecked ends a command after --check-config printed the configuration.
var errChecked = errors.New("configuration checked")

// applyConfig fills every flag of cmd not given on the command line from its
// TERRATASK_ environment variable, else from the config file. With
// --check-config it prints the result to stdout and returns errChecked.
func applyConfig(cmd *cobra.Command, stdout io.Writer) error {
	fs := cmd.Flags()
	src := map[string]source{}
	fs.Visit(func(f *pflag.Flag) { src[f.Name] = fromFlag })

	var file map[string][]string
	var path string
	if f := fs.Lookup("config"); f != nil {
		path = f.Value.String()
		if src["config"] == "" {
			if v, ok := os.LookupEnv(envName("config")); ok {
				path = v
				if err := f.Value.Set(v); err != nil {
					return usageError{err}
				}
				src["config"] = fromEnv
			}
		}
		if path != "" {
			var err error
			if file, err = loadConfig(path, fs, cmd.CommandPath()); err != nil {
				return usageError{err}
			}
		}
	}

	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if src[f.Name] != "" || err != nil || f.Name == "help" {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = usageError{fmt.Errorf("%s: %v", env, e)}
			}
			src[f.Name] = fromEnv
			return
		}
		if vals, ok := file[f.Name]; ok {
			for _, v := range vals {
				if e := f.Value.Set(v); e != nil {
					err = usageError{fmt.Errorf("%s: key %s: %v", path, f.Name, e)}
					return
				}
			}
			src[f.Name] = fromFile
		}
	})
	if err != nil {
		return err
	}
	if f := fs.Lookup("check-config"); f != nil && f.Value.String() == "true" {
		printConfig(stdout, fs, src)
		return errChecked
	}
	return nil
}

// loadConfig reads a config file for the flags of fs: every key must name one
// of its flags; values are scalars, or lists for repeatable flags.
func loadConfig(path string, fs *pflag.FlagSet, command string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want a mapping of flag names to values", path)
	}
	out := map[string][]string{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		where := fmt.Sprintf("config file %s, line %d", path, k.Line)
		if hint, ok := secretKeys[name]; ok && fs.Lookup(name) == nil {
			return nil, fmt.Errorf("%s: key %q: secrets are not allowed in the config file; %s", where, name, hint)
		}
		f := fs.Lookup(name)
		if f == nil || notAFlag[name] {
			return nil, fmt.Errorf("%s: unknown key %q (the keys are the command's flag names; see %s -h)", where, name, command)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: key %q given twice", where, name)
		}
		_, repeatable := f.Value.(*listFlag)
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue // "key:" with no value sets nothing
			}
			out[name] = []string{v.Value}
		case yaml.SequenceNode:
			if !repeatable {
				return nil, fmt.Errorf("%s: key %q takes one value, not a list", where, name)
			}
			vals := []string{}
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s: key %q: list items must be plain values", where, name)
				}
				vals = append(vals, e.Value)
			}
			out[name] = vals
		default:
			return nil, fmt.Errorf("%s: key %q: want a plain value%s", where, name, map[bool]string{true: " or a list", false: ""}[repeatable])
		}
		if name == "store" && len(out[name]) == 1 && hasPassword(out[name][0]) {
			return nil, fmt.Errorf("%s: key \"store\": the DSN holds a password, and secrets are not allowed in the config file; set TERRATASK_STORE instead, or put the password in PGPASSWORD or a PGPASSFILE", where)
		}
	}
	// A repeatable flag given as an empty list means "none": Set once with
	// nothing so the default is replaced.
	for name, vals := range out {
		if vals != nil && len(vals) == 0 {
			out[name] = []string{""}
		}
	}
	return out, nil
}

// hasPassword reports whether a store DSN carries a password.
func hasPassword(dsn string) bool {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false
		}
		_, ok := u.User.Password()
		return ok || u.Query().Has("password")
	}
	for _, field := range strings.Fields(dsn) {
		if strings.HasPrefix(field, "password=") {
			return true
		}
	}
	return false
}

// redactDSN hides a password in a store DSN.
func redactDSN(dsn string) string {
	if !hasPassword(dsn) {
		return dsn
	}
	if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

// printConfig writes each flag's effective value and its source.
func printConfig(w io.Writer, fs *pflag.FlagSet, src map[string]source) {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "check-config" && f.Name != "help" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	for _, n := range names {
		v := fs.Lookup(n).Value.String()
		if n == "store" {
			v = redactDSN(v)
		}
		s := src[n]
		if s == "" {
			s = fromDefault
		}
		fmt.Fprintf(w, "%s=%s (%s)\n", n, v, s)
	}
}
