package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/open-policy-agent/opa/v1/ast"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Policies (issue 21): an org's Rego v1 modules, managed by its admin keys
// here or loaded from --policy-dir (SyncPolicyDir), evaluated by the
// control plane for every task of the org (package controlplane). Every
// change is a new version; a task's check names the versions it
// evaluated. A module is compiled with the org's other current policies
// before it is stored, so a stored set always compiles: a module that does
// not is a 400 (policy_invalid) listing each problem with its line and
// column. A dry run (POST /policies/evaluate) evaluates the org's policies,
// or drafts beside them, for a task that is not created.

// maxPolicyBytes bounds one module's text.
const maxPolicyBytes = 256 << 10

// policyRoutes serves /api/v1/policies.
func (s *Server) policyRoutes(g *gin.RouterGroup) {
	g.GET("/policies", s.listPolicies)
	g.POST("/policies/evaluate", s.evaluatePolicies)
	g.GET("/policies/:name", s.getPolicy)
	g.PUT("/policies/:name", s.putPolicy)
	g.DELETE("/policies/:name", s.deletePolicy)
	g.GET("/policies/:name/versions", s.policyVersions)
}

// policyView is a stored version as the API shows it.
func policyView(p store.Policy, withRego bool) api.Policy {
	v := api.Policy{Name: p.Name, Version: p.Version, SHA256: p.SHA256, Description: p.Description,
		Source: p.Source, CreatedBy: p.CreatedBy, CreatedAt: api.Time(p.CreatedAt), Deleted: p.Deleted}
	if withRego {
		v.Rego = p.Rego
	}
	return v
}

// policyName reads and checks the name path parameter; it answers 400
// itself.
func policyName(c *gin.Context) (string, bool) {
	name := c.Param("name")
	if !policy.ValidName(name) {
		badParameter(c, "name", "a policy name is 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
		return "", false
	}
	return name, true
}

func policyNotFound(c *gin.Context, name string) {
	fail(c, http.StatusNotFound, codeNotFound, "Policy not found", map[string]any{"name": name})
}

// policyInvalid answers the problems of a set that does not compile.
func policyInvalid(c *gin.Context, err error) {
	var ce *policy.CompileError
	if !errors.As(err, &ce) {
		fail(c, http.StatusBadRequest, codePolicyInvalid, err.Error(), nil)
		return
	}
	problems := make([]api.PolicyProblem, len(ce.Problems))
	for i, p := range ce.Problems {
		problems[i] = api.PolicyProblem(p)
	}
	msg := "the policy does not compile: " + ce.Error()
	if len(msg) > 1000 {
		msg = msg[:1000] + "..."
	}
	fail(c, http.StatusBadRequest, codePolicyInvalid, msg, map[string]any{"problems": problems})
}

func (s *Server) listPolicies(c *gin.Context) {
	if !allow(c, auth.ActionManagePolicies) {
		return
	}
	ps, err := s.opts.Store.ListPolicies(c.Request.Context(), principal(c).Org)
	if err != nil {
		s.storeFailed(c, "listing policies", err)
		return
	}
	out := api.PolicyList{Policies: make([]api.Policy, len(ps))}
	for i, p := range ps {
		out.Policies[i] = policyView(p, false)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getPolicy(c *gin.Context) {
	if !allow(c, auth.ActionManagePolicies) {
		return
	}
	name, ok := policyName(c)
	if !ok {
		return
	}
	version := 0
	if v := c.Query("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			badParameter(c, "version", "version must be a positive integer")
			return
		}
		version = n
	}
	p, err := s.opts.Store.GetPolicy(c.Request.Context(), principal(c).Org, name, version)
	if errors.Is(err, store.ErrNotFound) {
		policyNotFound(c, name)
		return
	}
	if err != nil {
		s.storeFailed(c, "reading a policy", err)
		return
	}
	c.JSON(http.StatusOK, policyView(p, true))
}

func (s *Server) policyVersions(c *gin.Context) {
	if !allow(c, auth.ActionManagePolicies) {
		return
	}
	name, ok := policyName(c)
	if !ok {
		return
	}
	vs, err := s.opts.Store.PolicyVersions(c.Request.Context(), principal(c).Org, name)
	if errors.Is(err, store.ErrNotFound) {
		policyNotFound(c, name)
		return
	}
	if err != nil {
		s.storeFailed(c, "listing a policy's versions", err)
		return
	}
	out := api.PolicyVersions{Versions: make([]api.Policy, len(vs))}
	for i, p := range vs {
		out.Versions[i] = policyView(p, false)
	}
	c.JSON(http.StatusOK, out)
}

// dirManaged answers 409 when the current version of a policy came from
// --policy-dir, which owns it.
func (s *Server) dirManaged(c *gin.Context, org, name string) (cur store.Policy, exists, stop bool) {
	cur, err := s.opts.Store.GetPolicy(c.Request.Context(), org, name, 0)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Policy{}, false, false
	case err != nil:
		s.storeFailed(c, "reading a policy", err)
		return store.Policy{}, false, true
	case strings.HasPrefix(cur.Source, policySourceDir):
		fail(c, http.StatusConflict, codeConflict, "policy "+name+" is managed by --policy-dir ("+strings.TrimPrefix(cur.Source, policySourceDir)+"): change it there and reload the server (SIGHUP)", map[string]any{"name": name})
		return cur, true, true
	}
	return cur, true, false
}

func (s *Server) putPolicy(c *gin.Context) {
	if !allow(c, auth.ActionManagePolicies) {
		return
	}
	name, ok := policyName(c)
	if !ok || !requireJSON(c) {
		return
	}
	body, ok := readBody(c, s.opts.MaxBodyBytes)
	if !ok {
		return
	}
	var req api.PutPolicyRequest
	if err := decodeKnown(body, &req); err != nil {
		badField(c, "body", "request body must be a JSON object with rego and description: "+jsonProblem(err))
		return
	}
	switch {
	case strings.TrimSpace(req.Rego) == "":
		badField(c, "rego", "rego is required: the policy's Rego v1 module")
		return
	case len(req.Rego) > maxPolicyBytes:
		badField(c, "rego", fmt.Sprintf("rego is longer than %d bytes", maxPolicyBytes))
		return
	case len(req.Description) > maxDescriptionLen:
		badField(c, "description", fmt.Sprintf("description is longer than %d characters", maxDescriptionLen))
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	_, exists, stop := s.dirManaged(c, p.Org, name)
	if stop {
		return
	}
	// The org's set with this module in place must compile.
	mods, err := s.orgModules(c, p.Org, map[string]string{name: req.Rego})
	if err != nil {
		return
	}
	if _, err := policy.Compile(mods); err != nil {
		policyInvalid(c, err)
		return
	}
	stored, _, err := s.opts.Store.PutPolicy(ctx, store.Policy{Org: p.Org, Name: name, Rego: req.Rego,
		Description: req.Description, SHA256: policy.Digest(req.Rego), Source: policySourceAPI, CreatedBy: p.Name})
	if err != nil {
		s.storeFailed(c, "storing a policy", err)
		return
	}
	status := http.StatusOK
	if !exists {
		status = http.StatusCreated
	}
	c.JSON(status, policyView(stored, true))
}

func (s *Server) deletePolicy(c *gin.Context) {
	if !allow(c, auth.ActionManagePolicies) {
		return
	}
	name, ok := policyName(c)
	if !ok {
		return
	}
	p := principal(c)
	_, exists, stop := s.dirManaged(c, p.Org, name)
	if stop {
		return
	}
	if !exists {
		policyNotFound(c, name)
		return
	}
	if _, err := s.opts.Store.DeletePolicy(c.Request.Context(), p.Org, name, p.Name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			policyNotFound(c, name)
			return
		}
		s.storeFailed(c, "deleting a policy", err)
		return
	}
	c.Status(http.StatusNoContent)
}

// orgModules are the org's current policies with drafts in place of (or
// beside) them. It answers a failure itself.
func (s *Server) orgModules(c *gin.Context, org string, drafts map[string]string) ([]policy.Module, error) {
	cur, err := s.opts.Store.ListPolicies(c.Request.Context(), org)
	if err != nil {
		s.storeFailed(c, "reading the org's policies", err)
		return nil, err
	}
	mods := make([]policy.Module, 0, len(cur)+len(drafts))
	for _, p := range cur {
		if _, replaced := drafts[p.Name]; !replaced {
			mods = append(mods, controlplane.ModuleOf(p))
		}
	}
	for name, text := range drafts {
		mods = append(mods, policy.Module{Name: name, SHA256: policy.Digest(text), Rego: text})
	}
	return mods, nil
}

// evaluatePolicies is the dry run: the org's policies (and drafts) for a
// task that is not created, as the key that asks would create it.
func (s *Server) evaluatePolicies(c *gin.Context) {
	if !allow(c, auth.ActionRead) || !requireJSON(c) {
		return
	}
	body, ok := readBody(c, s.opts.MaxBodyBytes)
	if !ok {
		return
	}
	var req api.EvaluatePolicyRequest
	if err := decodeKnown(body, &req); err != nil {
		badField(c, "body", "request body must be a JSON object with stage, task, plan and policies: "+jsonProblem(err))
		return
	}
	if req.Stage != task.PolicyPrePlan && req.Stage != task.PolicyPostPlan {
		badField(c, "stage", "stage must be pre_plan or post_plan")
		return
	}
	if len(req.Task) == 0 || isNull(req.Task) {
		badField(c, "task", "task is required: a task as POST /api/v1/tasks takes it")
		return
	}
	treq, err := parseCreate(req.Task)
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			badField(c, "task."+fe.Field, fe.Error())
			return
		}
		badField(c, "task", "task must be a task as POST /api/v1/tasks takes it")
		return
	}
	if p := principal(c); !p.CanSeeAgent(treq.AgentID) {
		fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" may only evaluate tasks of agent "+p.Agent, map[string]any{detailField: "task.agent_id"})
		return
	}
	if req.Stage == task.PolicyPostPlan && (len(req.Plan) == 0 || isNull(req.Plan)) {
		badField(c, "plan", "a post_plan evaluation needs plan: Terraform's JSON plan (terraform show -json)")
		return
	}
	for name, text := range req.Policies {
		if !policy.ValidName(name) {
			badField(c, "policies", "a policy name is 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
			return
		}
		if len(text) > maxPolicyBytes {
			badField(c, "policies."+name, fmt.Sprintf("longer than %d bytes", maxPolicyBytes))
			return
		}
	}
	p := principal(c)
	mods, err := s.orgModules(c, p.Org, req.Policies)
	if err != nil {
		return
	}
	var set *policy.Set
	if len(req.Policies) > 0 {
		set, err = policy.Compile(mods)
	} else {
		set, err = s.policies.Get(mods)
	}
	if err != nil {
		policyInvalid(c, err)
		return
	}
	in := s.inputOf(p, treq)
	in.ID, in.CreatedAt = "dry-run", time.Now().UTC()
	sensitive := make([]string, 0, len(treq.Secrets.SensitiveVariables))
	for k := range treq.Secrets.SensitiveVariables {
		sensitive = append(sensitive, k)
	}
	doc := policy.NewDoc(in, req.Stage, sensitive, time.Now())
	var input ast.Value
	if req.Stage == task.PolicyPrePlan {
		input, err = policy.PrePlanInput(doc)
	} else {
		input, err = policy.PostPlanInput(req.Plan, doc)
	}
	if err != nil {
		badField(c, "plan", "plan must be a JSON object: Terraform's JSON plan")
		return
	}
	check := set.Eval(c.Request.Context(), req.Stage, input)
	out := api.EvaluatePolicyResponse{Decision: check.Decision, Stage: check.Stage, Results: check.Results,
		Policies: check.Policies, Error: check.Error}
	if out.Policies == nil {
		out.Policies = []task.PolicyRef{}
	}
	c.JSON(http.StatusOK, out)
}

// Sources of a stored policy.
const (
	policySourceAPI = "api"
	policySourceDir = "dir:"
)

// storeFailed answers 503 for a store that failed, and logs why.
func (s *Server) storeFailed(c *gin.Context, what string, err error) {
	s.opts.Logger.Error(what, zap.Error(err))
	unavailable(c, strings.TrimSuffix(what, "s"))
}
