package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Credential sets (issue 22): values an org's admin keeps server-side, and
// who may use them, so an agent names the credentials its task needs and
// never holds them. The values (env and sensitive_variables) are sealed
// under the org's key here and are write-only: no route returns them, the
// views name them only. A task names sets in parameters.credentials, and a
// set with attach applies to the tasks of the workspaces it names; both
// are checked against the task's agent, workspace and runner at create
// (resolveCredentials) and again when each step fetches the values
// (GET /api/v1/runner/credentials/{taskId}, runnerapi.go), so a set changed
// since refuses the step.
//
// PUT replaces a set: every field the body leaves out is empty, except env
// and sensitive_variables, which a body without them (or with null) keeps
// as stored, so scopes change without resending values; {} removes them.

// actionManageCredentials writes, reads and deletes the org's credential
// sets: admin keys only, as policies.
const actionManageCredentials = auth.ActionManagePolicies

// Limits of a credential set.
const (
	maxCredentialValues = 100 // env vars, and sensitive variables
	maxCredentialGlobs  = 100 // per scope
	maxGlobLen          = 256
	maxTaskCredentials  = 20 // sets a task names
)

var credentialSetPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// credentialRoutes serves /api/v1/credential-sets.
func (s *Server) credentialRoutes(g *gin.RouterGroup) {
	g.GET("/credential-sets", s.listCredentialSets)
	g.GET("/credential-sets/:name", s.getCredentialSet)
	g.PUT("/credential-sets/:name", s.putCredentialSet)
	g.DELETE("/credential-sets/:name", s.deleteCredentialSet)
}

// credentialSetView is a set as the API shows it: names, never values.
func credentialSetView(c store.CredentialSet) api.CredentialSet {
	v := api.CredentialSet{Name: c.Name, Description: c.Description, EnvNames: nonNil(c.EnvNames),
		SensitiveVariableNames: nonNil(c.VariableNames), Agents: nonNil(c.Agents), Workspaces: nonNil(c.Workspaces),
		Runners: nonNil(c.Runners), Attach: c.Attach, CreatedBy: c.CreatedBy, CreatedAt: api.Time(c.CreatedAt),
		UpdatedBy: c.UpdatedBy, UpdatedAt: api.Time(c.UpdatedAt)}
	if c.OIDC != nil {
		o := api.CredentialOIDC(*c.OIDC)
		v.OIDC = &o
	}
	return v
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// credentialSetName reads and checks the name path parameter; it answers
// 400 itself.
func credentialSetName(c *gin.Context) (string, bool) {
	name := c.Param("name")
	if !credentialSetPattern.MatchString(name) {
		badParameter(c, "name", "a credential set name is 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
		return "", false
	}
	return name, true
}

func credentialSetNotFound(c *gin.Context, name string) {
	fail(c, http.StatusNotFound, codeNotFound, "Credential set not found", map[string]any{"name": name})
}

func (s *Server) listCredentialSets(c *gin.Context) {
	if !allow(c, actionManageCredentials) || !noQuery(c) {
		return
	}
	sets, err := s.opts.Store.ListCredentialSets(c.Request.Context(), principal(c).Org)
	if err != nil {
		s.storeFailed(c, "listing credential sets", err)
		return
	}
	out := api.CredentialSetList{CredentialSets: make([]api.CredentialSet, len(sets))}
	for i, set := range sets {
		out.CredentialSets[i] = credentialSetView(set)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getCredentialSet(c *gin.Context) {
	if !allow(c, actionManageCredentials) {
		return
	}
	name, ok := credentialSetName(c)
	if !ok {
		return
	}
	set, err := s.opts.Store.GetCredentialSet(c.Request.Context(), principal(c).Org, name)
	if errors.Is(err, store.ErrNotFound) {
		credentialSetNotFound(c, name)
		return
	}
	if err != nil {
		s.storeFailed(c, "reading a credential set", err)
		return
	}
	c.JSON(http.StatusOK, credentialSetView(set))
}

func (s *Server) putCredentialSet(c *gin.Context) {
	if !allow(c, actionManageCredentials) {
		return
	}
	name, ok := credentialSetName(c)
	if !ok || !requireJSON(c) {
		return
	}
	body, ok := readBody(c, s.opts.MaxBodyBytes)
	if !ok {
		return
	}
	p := principal(c)
	set, keep, values, err := parseCredentialSet(body, name)
	if err != nil {
		badBody(c, err)
		return
	}
	set.Org, set.CreatedBy, set.UpdatedBy = p.Org, p.Name, p.Name
	// Each kind of value sealed on its own, so a later put may keep one.
	if !keep.Env {
		set.SealedEnv, err = s.sealSecrets(p.Org, task.Secrets{Env: values.Env})
	}
	if err == nil && !keep.Variables {
		set.SealedVariables, err = s.sealSecrets(p.Org, task.Secrets{SensitiveVariables: values.SensitiveVariables})
	}
	if err != nil {
		s.opts.Logger.Error("sealing a credential set", zap.String("set", name), zap.Error(err))
		internal(c)
		return
	}
	stored, created, err := s.opts.Store.PutCredentialSet(c.Request.Context(), set, keep)
	if err != nil {
		s.storeFailed(c, "storing a credential set", err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, credentialSetView(stored))
}

func (s *Server) deleteCredentialSet(c *gin.Context) {
	if !allow(c, actionManageCredentials) {
		return
	}
	name, ok := credentialSetName(c)
	if !ok {
		return
	}
	err := s.opts.Store.DeleteCredentialSet(c.Request.Context(), principal(c).Org, name)
	if errors.Is(err, store.ErrNotFound) {
		credentialSetNotFound(c, name)
		return
	}
	if err != nil {
		s.storeFailed(c, "deleting a credential set", err)
		return
	}
	c.Status(http.StatusNoContent)
}

// parseCredentialSet decodes and checks a PUT body for the set name: the
// set to store (without its sealed values), which values to keep, and the
// values to seal. Errors are *fieldError whose messages never echo a value.
func parseCredentialSet(body []byte, name string) (store.CredentialSet, store.CredentialKeep, task.Secrets, error) {
	var (
		req    api.PutCredentialSetRequest
		set    store.CredentialSet
		keep   store.CredentialKeep
		values task.Secrets
	)
	if err := decodeKnown(body, &req); err != nil {
		return set, keep, values, errField("body", "request body must be a JSON object with name, description, env, sensitive_variables, "+
			"agents, workspaces, runners, attach and oidc (env values are strings): %s", jsonProblem(err))
	}
	switch {
	case req.Name != "" && req.Name != name:
		return set, keep, values, errField("name", "the body's name must be the path's, %s", name)
	case len(req.Description) > maxDescriptionLen:
		return set, keep, values, errField("description", "must be at most %d bytes", maxDescriptionLen)
	case len(req.Env) > maxCredentialValues:
		return set, keep, values, errField("env", "at most %d variables", maxCredentialValues)
	case len(req.SensitiveVariables) > maxCredentialValues:
		return set, keep, values, errField("sensitive_variables", "at most %d variables", maxCredentialValues)
	}
	keep = store.CredentialKeep{Env: req.Env == nil, Variables: req.SensitiveVariables == nil}
	for _, k := range sortedKeys(req.Env) {
		if err := checkEnvName("env."+k, k); err != nil {
			return set, keep, values, err
		}
		if strings.HasPrefix(k, "TERRATASK_") {
			return set, keep, values, errField("env."+k, "TERRATASK_ variables are set by the runner")
		}
	}
	for _, k := range sortedKeys(req.SensitiveVariables) {
		if !varNamePattern.MatchString(k) {
			return set, keep, values, errField("sensitive_variables."+k, "is not a valid Terraform variable name")
		}
		if _, dup := req.Env["TF_VAR_"+k]; dup {
			return set, keep, values, errField("sensitive_variables."+k, "is also set by env TF_VAR_%s", k)
		}
	}
	for field, globs := range map[string][]string{"agents": req.Agents, "workspaces": req.Workspaces, "runners": req.Runners} {
		if err := checkGlobs(field, globs); err != nil {
			return set, keep, values, err
		}
	}
	if req.Attach && len(req.Workspaces) == 0 {
		return set, keep, values, errField("attach", "an attached set names the workspaces it attaches to: give workspaces")
	}
	set = store.CredentialSet{Name: name, Description: req.Description, Agents: req.Agents, Workspaces: req.Workspaces,
		Runners: req.Runners, Attach: req.Attach}
	if req.OIDC != nil {
		o, err := checkOIDC(*req.OIDC)
		if err != nil {
			return set, keep, values, err
		}
		so := store.CredentialOIDC(o)
		set.OIDC = &so
	}
	values = task.Secrets{Env: req.Env, SensitiveVariables: req.SensitiveVariables}
	set.EnvNames, set.VariableNames = sortedKeys(req.Env), sortedKeys(req.SensitiveVariables)
	return set, keep, values, nil
}

// checkGlobs checks a scope's glob list: path.Match patterns, each once.
func checkGlobs(field string, globs []string) error {
	if len(globs) > maxCredentialGlobs {
		return errField(field, "at most %d patterns", maxCredentialGlobs)
	}
	for i, g := range globs {
		if g == "" || len(g) > maxGlobLen || strings.ContainsAny(g, "\x00\n\r") {
			return errField(field, "a pattern is 1 to %d characters on one line", maxGlobLen)
		}
		if _, err := path.Match(g, ""); err != nil {
			return errField(field, "%q is not a valid pattern (*, ?, [a-z] and \\ escapes, as Go's path.Match)", g)
		}
		if slices.Contains(globs[:i], g) {
			return errField(field, "%q is given twice", g)
		}
	}
	return nil
}

// parseCredentialNames reads parameters.credentials: a list of set names,
// each once.
func parseCredentialNames(v json.RawMessage) ([]string, error) {
	const field = "parameters.credentials"
	var names []string
	if json.Unmarshal(v, &names) != nil || len(names) > maxTaskCredentials {
		return nil, errField(field, "must be an array of at most %d credential set names", maxTaskCredentials)
	}
	for i, n := range names {
		if !credentialSetPattern.MatchString(n) {
			return nil, errField(field, "%q is not a credential set name", n)
		}
		if slices.Contains(names[:i], n) {
			return nil, errField(field, "%q is given twice", n)
		}
	}
	return names, nil
}

// resolveCredentials checks the credential sets a task of req names, as a
// create (prefix "") or a schedule's template (prefix "template.") makes
// it for agent on workspace run by runner, and finds the sets attached to
// it. A named set must exist in the caller's org (400) and serve the task
// (403); no two of the task and its sets may give the same env var or
// variable (400). It returns the sets the task uses, the named ones first
// (nil for none), and answers a refusal itself (ok false).
func (s *Server) resolveCredentials(c *gin.Context, prefix, agent, workspace, runner string, req *createRequest) ([]string, bool) {
	field := prefix + "parameters.credentials"
	sets, err := s.opts.Store.ListCredentialSets(c.Request.Context(), principal(c).Org)
	if err != nil {
		s.storeFailed(c, "reading the org's credential sets", err)
		return nil, false
	}
	byName := make(map[string]store.CredentialSet, len(sets))
	for _, set := range sets {
		byName[set.Name] = set
	}
	var use []string
	for _, name := range req.Params.Credentials {
		set, ok := byName[name]
		if !ok {
			fail(c, http.StatusBadRequest, codeBadRequest, "credential set "+name+" does not exist",
				map[string]any{detailField: field, "set": name})
			return nil, false
		}
		if scope := set.Refusal(agent, workspace, runner); scope != "" {
			value := map[string]string{store.ScopeAgents: agent, store.ScopeWorkspaces: workspace, store.ScopeRunners: runner}[scope]
			msg := (&store.CredentialRefusedError{Set: name, Scope: scope, Value: value}).Error()
			fail(c, http.StatusForbidden, codeForbidden, "key "+principal(c).Name+": "+msg,
				map[string]any{detailField: field, "set": name, "scope": scope})
			return nil, false
		}
		use = append(use, name)
	}
	for _, set := range sets {
		if set.Attaches(agent, workspace, runner) && !slices.Contains(use, set.Name) {
			use = append(use, set.Name)
		}
	}
	if len(use) == 0 {
		return nil, true
	}
	taskSrc := store.CredentialSource{Env: sortedKeys(req.Secrets.Env), Variables: sortedKeys(req.Secrets.SensitiveVariables)}
	taskSrc.Variables = append(taskSrc.Variables, sortedKeys(req.Params.Variables)...)
	sources := []store.CredentialSource{taskSrc}
	for _, name := range use {
		set := byName[name]
		sources = append(sources, store.CredentialSource{Name: name, Env: set.EnvNames, Variables: set.VariableNames})
	}
	if name, a, b, clash := store.Clash(sources); clash {
		fail(c, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("%s is set by both %s and credential set %s: "+
			"a task may not override a credential set's values, nor two sets one another's", name, sourceName(a), b),
			map[string]any{detailField: field, "set": b})
		return nil, false
	}
	return use, true
}

// sourceName names a store.CredentialSource in a message.
func sourceName(name string) string {
	if name == "" {
		return "the task"
	}
	return "credential set " + name
}
