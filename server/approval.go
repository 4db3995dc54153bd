package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// The plan review routes: GET /tasks/{id}/plan serves a task's saved plan
// (kept in the store by the runner that planned), and PUT
// /tasks/{id}/approve|reject send a person's decision to the waiting task's
// workflow as the task.UpdateDecision update, whose validator admits one
// decision: a racing second one is a 409.

// maxCommentLen bounds a decision's comment, in bytes.
const maxCommentLen = 4096

// decisionTimeout bounds the wait for the workflow to take a decision.
const decisionTimeout = 30 * time.Second

// planFormat is the form of a plan a request asks for.
type planFormat string

const (
	planJSON planFormat = "json"
	planText planFormat = "text"
)

// parsePlanFormat picks the plan's form: the format query parameter
// (json, text) wins; else the Accept header's preferred type of
// application/json and text/plain (JSON when it names neither, or both
// equally and JSON first).
func parsePlanFormat(q map[string][]string, accept string) (planFormat, error) {
	for k, vs := range q {
		if k != "format" || len(vs) != 1 {
			return "", errField(k, "the only query parameter of the plan route is format=json|text, given once")
		}
		switch vs[0] {
		case "json":
			return planJSON, nil
		case "text":
			return planText, nil
		}
		return "", errField("format", "format must be json or text")
	}
	best, bestQ := planJSON, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		weight := 1.0
		if v, ok := params["q"]; ok {
			if weight, err = strconv.ParseFloat(v, 64); err != nil || weight < 0 || weight > 1 {
				continue
			}
		}
		var f planFormat
		switch mt {
		case "application/json":
			f = planJSON
		case "text/plain":
			f = planText
		default:
			continue
		}
		if weight > bestQ && weight > 0 {
			best, bestQ = f, weight
		}
	}
	return best, nil
}

func (s *Server) getPlan(c *gin.Context) {
	q, ok := query(c)
	if !ok {
		return
	}
	format, err := parsePlanFormat(q, c.GetHeader("Accept"))
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	t, ok := s.loadTask(c)
	if !ok {
		return
	}
	p, err := s.opts.Store.GetPlan(c.Request.Context(), t.Org, t.ID)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, codeNotFound, "task "+t.ID+" has no plan yet: it has not finished planning",
			map[string]any{"taskId": t.ID, "status": string(s.fresh(c, t).Status)})
		return
	}
	if err != nil {
		s.opts.Logger.Error("reading plan", zap.String("task_id", t.ID), zap.Error(err))
		internal(c)
		return
	}
	if format == planText {
		text := p.Text
		if text == "" {
			// The runner kept no text of Terraform's own (a plan nobody
			// waited on): render it from the JSON form.
			if text, err = planTextOf(p.JSON); err != nil {
				s.opts.Logger.Error("rendering plan", zap.String("task_id", t.ID), zap.Error(err))
				internal(c)
				return
			}
		}
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(text+policyText(t.Policy)))
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", withPolicy(p.JSON, t.Policy))
}

// withPolicy adds the task's policy check to its plan's JSON document
// (key "policy"), so a reviewer reads the plan with what the policies said.
func withPolicy(doc []byte, check *task.PolicyCheck) []byte {
	if check == nil {
		return doc
	}
	end := bytes.LastIndexByte(doc, '}')
	pj, err := json.Marshal(check)
	if end < 0 || err != nil {
		return doc
	}
	out := make([]byte, 0, len(doc)+len(pj)+12)
	out = append(out, bytes.TrimRight(doc[:end], " \n\t")...)
	if !bytes.HasSuffix(bytes.TrimSpace(doc[:end]), []byte("{")) {
		out = append(out, ',')
	}
	out = append(out, `"policy":`...)
	out = append(out, pj...)
	return append(out, '}')
}

// policyText renders the task's policy check after the plan's text.
func policyText(check *task.PolicyCheck) string {
	if check == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nPolicy check (%s): %s\n", check.Stage, check.Decision)
	if check.Error != "" {
		fmt.Fprintf(&b, "  error: %s\n", check.Error)
	}
	for _, r := range check.Results {
		fmt.Fprintf(&b, "  %s %s (v%d): %s\n", r.Rule, r.Policy, r.Version, r.Message)
	}
	return b.String()
}

// parseDecision reads the optional body of approve and reject: nothing, or
// a JSON object {"comment": "..."}.
func parseDecision(body []byte) (string, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return "", nil
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil || raw == nil {
		problem := "must be a JSON object"
		if err != nil {
			problem += ": " + jsonProblem(err)
		}
		return "", errField("body", "the body is optional; when given it %s such as {\"comment\": \"...\"}", problem)
	}
	for _, k := range sortedKeys(raw) {
		if k != "comment" {
			name := k
			if name == "" {
				name = `""`
			}
			return "", errField(name, "unknown field %q (allowed: comment)", k)
		}
	}
	v, ok := raw["comment"]
	if !ok || isNull(v) {
		return "", nil
	}
	var comment string
	if json.Unmarshal(v, &comment) != nil {
		return "", errField("comment", "must be a string")
	}
	if len(comment) > maxCommentLen {
		return "", errField("comment", "must be at most %d bytes", maxCommentLen)
	}
	if !utf8.ValidString(comment) || strings.ContainsRune(comment, 0) {
		return "", errField("comment", "must be valid UTF-8 text without NUL characters")
	}
	return comment, nil
}

// decide serves PUT /tasks/{id}/approve (approve) and /reject.
func (s *Server) decide(approve bool) gin.HandlerFunc {
	verb := "reject"
	if approve {
		verb = "approve"
	}
	return func(c *gin.Context) {
		q, ok := query(c)
		if !ok {
			return
		}
		for k := range q {
			badParameter(c, k, verb+" takes no query parameters")
			return
		}
		// The task first: a task the key may not see is a 404 whatever
		// its role.
		t, ok := s.loadTask(c)
		if !ok {
			return
		}
		p := principal(c)
		if p.Agent != "" {
			fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" is bound to agent "+p.Agent+": keys of agents never approve or reject plans", nil)
			return
		}
		if !allow(c, auth.ActionDecide) {
			return
		}
		comment, ok := s.decisionBody(c)
		if !ok {
			return
		}
		ctx := c.Request.Context()
		st, live := s.queryState(ctx, t.ID)
		if !live {
			t = s.fresh(c, t)
			if t.Status == task.StatusWaitingApproval {
				unavailable(c, verb+" the plan")
				return
			}
			notWaitingConflict(c, t.ID, t.Status)
			return
		}
		if approve && p.Role == auth.RoleOperator && st.WrittenBy(p.Name) {
			// The task's creator, or for a scheduled task anyone who wrote
			// its schedule's template (task.Input.Authors).
			what, details := "created this task", map[string]any{"taskId": t.ID, "created_by": st.CreatedBy}
			if len(st.Authors) > 0 {
				what, details["authors"] = "wrote the template of the schedule that started this task", st.Authors
			}
			fail(c, http.StatusForbidden, codeForbidden, "four eyes: key "+p.Name+" "+what+", so another key must approve its plan (an admin key may approve its own)",
				details)
			return
		}
		if approve && p.Role == auth.RoleOperator && st.CreatedBy == "" {
			// Started outside the API (a child of another Temporal
			// application): its creator is unknown, so no operator can be
			// shown to be another key than the one that made the plan.
			fail(c, http.StatusForbidden, codeForbidden, "four eyes: this task was started outside the API and its creator is unknown, so only an admin key may approve its plan",
				map[string]any{"taskId": t.ID})
			return
		}
		if st.Status != task.StatusWaitingApproval {
			notWaitingConflict(c, t.ID, st.Status)
			return
		}
		d := task.Decision{Approve: approve, By: p.Name, At: time.Now().UTC(), Comment: comment}
		after, err := s.sendDecision(ctx, t.ID, d)
		s.states.forget(t.ID)
		if err != nil {
			var appErr *temporal.ApplicationError
			if errors.As(err, &appErr) || isNotFound(err) {
				// Another decision won, or the task moved on meanwhile.
				status := st.Status
				if now, ok := s.queryState(ctx, t.ID); ok {
					status = now.Status
				} else if row, err := s.opts.Store.GetTask(ctx, t.Org, t.ID); err == nil {
					status = row.Status
				}
				notWaitingConflict(c, t.ID, status)
				return
			}
			s.opts.Logger.Error("sending a decision", zap.String("task_id", t.ID), zap.Error(err))
			unavailable(c, verb+" the plan")
			return
		}
		s.opts.Logger.Info("plan decided", zap.String("task_id", t.ID), zap.String("decision", verb), zap.String("by", p.Name))
		if row, err := s.opts.Store.GetTask(ctx, t.Org, t.ID); err == nil {
			t = row
		}
		overlay(&t, after)
		c.JSON(http.StatusOK, viewOf(t, true))
	}
}

// decisionBody reads and parses the optional decision body; it answers the
// 4xx itself.
func (s *Server) decisionBody(c *gin.Context) (string, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body exceeds %d bytes", s.opts.MaxBodyBytes),
				map[string]any{"limit_bytes": s.opts.MaxBodyBytes})
			return "", false
		}
		badField(c, "body", "could not read the request body")
		return "", false
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
			fail(c, http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json",
				map[string]any{detailHeader: "Content-Type"})
			return "", false
		}
	}
	comment, err := parseDecision(body)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badField(c, fe.Field, fe.Error())
		return "", false
	}
	return comment, true
}

// sendDecision sends d as the decision update and returns the task's state
// after it took effect.
func (s *Server) sendDecision(ctx context.Context, id string, d task.Decision) (task.State, error) {
	ctx, cancel := context.WithTimeout(ctx, decisionTimeout)
	defer cancel()
	if s.opts.Secrets != nil {
		// The proof the workflow checks: only the API decides.
		d = s.opts.Secrets.Sign(id, d)
	}
	h, err := s.opts.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   task.UpdateDecision,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st task.State
	if err == nil {
		err = h.Get(ctx, &st)
	}
	return st, err
}

// notWaitingConflict is the 409 of a decision on a task that does not wait
// for one.
func notWaitingConflict(c *gin.Context, id string, status task.Status) {
	fail(c, http.StatusConflict, codeConflict, "task is "+string(status)+", not waiting for approval",
		map[string]any{"taskId": id, "status": string(status)})
}

// approvalMeta adds a task's plan counts and review to status metadata.
func approvalMeta(meta map[string]any, plan *task.PlanSummary, a *task.ApprovalState, status task.Status) {
	if plan != nil {
		meta["plan"] = *plan
	}
	if a == nil {
		return
	}
	if a.ExpiresAt != nil && status == task.StatusWaitingApproval {
		meta["approval_expires_at"] = ts(*a.ExpiresAt)
	}
	if a.ApprovedBy != "" {
		meta["approved_by"], meta["approved_at"] = a.ApprovedBy, tsPtr(a.ApprovedAt)
	}
	if a.RejectedBy != "" {
		meta["rejected_by"], meta["rejected_at"] = a.RejectedBy, tsPtr(a.RejectedAt)
	}
	if a.Comment != "" {
		meta["approval_comment"] = a.Comment
	}
}

// planTextOf renders a stored plan's JSON form as text (api.PlanText).
func planTextOf(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var p api.Plan
	if err := dec.Decode(&p); err != nil {
		return "", err
	}
	return api.PlanText(p), nil
}
