package temporalutil

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc"
)

// fakeOperator implements the two operator calls EnsureSearchAttributes uses.
type fakeOperator struct {
	operatorservice.OperatorServiceClient
	custom  map[string]enumspb.IndexedValueType
	listErr error
	addErrs []error // returned by successive AddSearchAttributes calls
	added   []map[string]enumspb.IndexedValueType
}

func (f *fakeOperator) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	custom := map[string]enumspb.IndexedValueType{}
	for k, v := range f.custom {
		custom[k] = v
	}
	return &operatorservice.ListSearchAttributesResponse{
		CustomAttributes: custom,
		SystemAttributes: map[string]enumspb.IndexedValueType{"WorkflowType": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	}, nil
}

func (f *fakeOperator) AddSearchAttributes(_ context.Context, req *operatorservice.AddSearchAttributesRequest, _ ...grpc.CallOption) (*operatorservice.AddSearchAttributesResponse, error) {
	f.added = append(f.added, req.GetSearchAttributes())
	if len(f.addErrs) > 0 {
		err := f.addErrs[0]
		f.addErrs = f.addErrs[1:]
		if err != nil {
			return nil, err
		}
	}
	for k, v := range req.GetSearchAttributes() {
		f.custom[k] = v
	}
	return &operatorservice.AddSearchAttributesResponse{}, nil
}

func TestEnsureSearchAttributesAddsOnlyMissing(t *testing.T) {
	f := &fakeOperator{custom: map[string]enumspb.IndexedValueType{"A": enumspb.INDEXED_VALUE_TYPE_KEYWORD}}
	if err := ensureSearchAttributes(context.Background(), f, "ns", []string{"A", "B"}); err != nil {
		t.Fatal(err)
	}
	if len(f.added) != 1 || len(f.added[0]) != 1 || f.added[0]["B"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Fatalf("added %v, want only B as Keyword", f.added)
	}
	// Second call: nothing to do.
	if err := ensureSearchAttributes(context.Background(), f, "ns", []string{"A", "B"}); err != nil {
		t.Fatal(err)
	}
	if len(f.added) != 1 {
		t.Fatalf("second call added again: %v", f.added)
	}
}

func TestEnsureSearchAttributesRetriesRace(t *testing.T) {
	f := &fakeOperator{
		custom:  map[string]enumspb.IndexedValueType{},
		addErrs: []error{serviceerror.NewUnavailable("Generated search attributes mapping unavailable.")},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ensureSearchAttributes(ctx, f, "ns", []string{"A"}); err != nil {
		t.Fatal(err)
	}
	if len(f.added) != 2 {
		t.Fatalf("want a retry after the race error, got calls %v", f.added)
	}
}

func TestEnsureSearchAttributesPermissionDenied(t *testing.T) {
	for name, f := range map[string]*fakeOperator{
		"list denied": {listErr: serviceerror.NewPermissionDenied("nope", "")},
		"add denied": {
			custom:  map[string]enumspb.IndexedValueType{"TerrataskTaskID": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
			addErrs: []error{serviceerror.NewPermissionDenied("nope", "")},
		},
	} {
		err := ensureSearchAttributes(context.Background(), f, "my-ns", []string{"TerrataskStatus", "TerrataskTaskID"})
		var pe *SearchAttributePermissionError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v, want *SearchAttributePermissionError", name, err)
		}
		msg := err.Error()
		want := "temporal operator search-attribute create --name TerrataskStatus --type Keyword --namespace my-ns"
		if !strings.Contains(msg, want) {
			t.Errorf("%s: message lacks %q:\n%s", name, want, msg)
		}
		listed := strings.Contains(msg, "--name TerrataskTaskID")
		if name == "add denied" && listed {
			t.Errorf("%s: message asks for an attribute that exists:\n%s", name, msg)
		}
		if name == "list denied" && !listed {
			t.Errorf("%s: message must list every attribute:\n%s", name, msg)
		}
		var pd *serviceerror.PermissionDenied
		if !errors.As(err, &pd) {
			t.Errorf("%s: error does not wrap the server's PermissionDenied", name)
		}
	}
}

func TestEnsureSearchAttributesWrongType(t *testing.T) {
	f := &fakeOperator{custom: map[string]enumspb.IndexedValueType{"A": enumspb.INDEXED_VALUE_TYPE_INT}}
	if err := ensureSearchAttributes(context.Background(), f, "ns", []string{"A"}); err == nil || !strings.Contains(err.Error(), "want Keyword") {
		t.Fatalf("got %v", err)
	}
	if err := ensureSearchAttributes(context.Background(), f, "ns", []string{"WorkflowType"}); err == nil || !strings.Contains(err.Error(), "system attribute") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateSearchAttributeNames(t *testing.T) {
	for _, bad := range [][]string{{""}, {"1abc"}, {"a-b"}, {"a b"}, {"A", "A"}} {
		if ValidateSearchAttributeNames(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := ValidateSearchAttributeNames([]string{"TerrataskStatus", "_x1"}); err != nil {
		t.Error(err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"default": "default", "my ns": "'my ns'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
