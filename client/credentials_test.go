package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store/sqlite"
)

// TestCredentialSets drives the client's credential set methods against a
// real server on a real SQLite store, over real HTTP.
func TestCredentialSets(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, _ := auth.NewKeyring([]auth.Key{
		{Name: "admin", Org: "o", Role: auth.RoleAdmin, Hash: auth.HashKey("admin-key")},
		{Name: "op", Org: "o", Role: auth.RoleOperator, Hash: auth.HashKey("op-key")},
	})
	box, _ := master.New(bytes.Repeat([]byte{1}, secret.KeySize))
	srv := httptest.NewServer(server.New(server.Options{Store: st, Keys: keys, Secrets: box}).Handler())
	defer srv.Close()
	c, err := client.New(srv.URL, client.WithAPIKey("admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const value = "cl1ent-S3cret"

	set, created, err := c.PutCredentialSet(ctx, "aws", api.PutCredentialSetRequest{Description: "d",
		Env: map[string]string{"AWS_SECRET_ACCESS_KEY": value}, SensitiveVariables: map[string]any{"pw": value},
		Workspaces: []string{"prod-*"}, OIDC: &api.CredentialOIDC{Provider: "aws", AWSRoleARN: "arn:aws:iam::123456789012:role/x"}})
	if err != nil || !created || strings.Join(set.EnvNames, ",") != "AWS_SECRET_ACCESS_KEY" || set.OIDC.Audience != "sts.amazonaws.com" {
		t.Fatalf("PutCredentialSet: %+v %v %v", set, created, err)
	}
	// Nil maps keep the values; the client sends them as null.
	set, created, err = c.PutCredentialSet(ctx, "aws", api.PutCredentialSetRequest{Agents: []string{"bot"}})
	if err != nil || created || len(set.EnvNames) != 1 || len(set.SensitiveVariableNames) != 1 || set.Agents[0] != "bot" {
		t.Fatalf("PutCredentialSet keeping values: %+v %v %v", set, created, err)
	}
	// Empty maps remove them.
	if set, _, err = c.PutCredentialSet(ctx, "aws", api.PutCredentialSetRequest{Env: map[string]string{}}); err != nil ||
		len(set.EnvNames) != 0 || len(set.SensitiveVariableNames) != 1 {
		t.Fatalf("PutCredentialSet clearing env: %+v %v", set, err)
	}
	list, err := c.ListCredentialSets(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "aws" {
		t.Fatalf("ListCredentialSets: %+v %v", list, err)
	}
	got, err := c.GetCredentialSet(ctx, "aws")
	raw, _ := json.Marshal(got)
	if err != nil || got.Description != "" || bytes.Contains(raw, []byte(value)) {
		t.Fatalf("GetCredentialSet: %s %v", raw, err)
	}
	var ce *client.Error
	if _, _, err := c.PutCredentialSet(ctx, "aws", api.PutCredentialSetRequest{Env: map[string]string{"TF_LOG": "x"}}); !errors.As(err, &ce) ||
		ce.Status != 400 || ce.Details["field"] != "env.TF_LOG" {
		t.Fatalf("a bad env name: %v", err)
	}
	op, _ := client.New(srv.URL, client.WithAPIKey("op-key"))
	if _, err := op.ListCredentialSets(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("an operator lists sets: %v", err)
	}
	if err := c.DeleteCredentialSet(ctx, "aws"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCredentialSet(ctx, "aws"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a deleted set: %v", err)
	}
	if err := c.DeleteCredentialSet(ctx, ""); err == nil {
		t.Fatal("an empty name")
	}
}
