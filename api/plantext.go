package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// PlanText renders a plan as text in the manner of `terraform show`: a
// block per changed resource with its attributes (+ create, - destroy,
// ~ update in place, -/+ replace, <= read), the counts and the output
// changes. It reads only the plan's review form, so every value is as
// masked as in the JSON. The plan route serves it for plans whose runner
// kept no text of Terraform's own (plans that never waited for approval).
func PlanText(p Plan) string {
	var b strings.Builder
	changed := 0
	for _, rc := range p.ResourceChanges {
		if verb(rc.Actions) != "" {
			changed++
		}
	}
	outputs := make([]string, 0, len(p.OutputChanges))
	for name, oc := range p.OutputChanges {
		if symbol(oc.Actions) != "" {
			outputs = append(outputs, name)
		}
	}
	sort.Strings(outputs)
	if changed == 0 && len(outputs) == 0 {
		b.WriteString("No changes. Your infrastructure matches the configuration.\n")
		return b.String()
	}
	if changed > 0 {
		b.WriteString("Terraform will perform the following actions:\n")
		for _, rc := range p.ResourceChanges {
			writeResource(&b, rc)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Plan: %d to add, %d to change, %d to destroy.\n", p.Summary.Add, p.Summary.Change, p.Summary.Destroy)
	if len(outputs) > 0 {
		b.WriteString("\nChanges to Outputs:\n")
		width := 0
		for _, name := range outputs {
			width = max(width, len(name))
		}
		for _, name := range outputs {
			oc := p.OutputChanges[name]
			sym := symbol(oc.Actions)
			fmt.Fprintf(&b, "  %s %-*s = %s\n", sym, width, name, change(sym, oc.Before, oc.After, "    "))
		}
	}
	return b.String()
}

// verb is what a resource change's comment line says, "" for no change.
func verb(actions []string) string {
	switch strings.Join(actions, ",") {
	case "create":
		return "will be created"
	case "delete":
		return "will be destroyed"
	case "update":
		return "will be updated in-place"
	case "delete,create", "create,delete":
		return "must be replaced"
	case "read":
		return "will be read during apply"
	case "forget":
		return "will be removed from the state"
	}
	return ""
}

// symbol is an action's marker: +, -, ~, -/+ (or +/- when the new object
// is created first), <=, or "" for none.
func symbol(actions []string) string {
	switch strings.Join(actions, ",") {
	case "create":
		return "+"
	case "delete", "forget":
		return "-"
	case "update":
		return "~"
	case "delete,create":
		return "-/+"
	case "create,delete":
		return "+/-"
	case "read":
		return "<="
	}
	return ""
}

func writeResource(b *strings.Builder, rc ResourceChange) {
	v := verb(rc.Actions)
	if v == "" {
		return
	}
	sym := symbol(rc.Actions)
	fmt.Fprintf(b, "\n  # %s %s", rc.Address, v)
	if rc.ActionReason != "" {
		fmt.Fprintf(b, " (%s)", strings.ReplaceAll(rc.ActionReason, "_", " "))
	}
	kind := "resource"
	if rc.Mode == "data" {
		kind = "data"
	}
	fmt.Fprintf(b, "\n  %s %s %q %q {\n", sym, kind, rc.Type, rc.Name)
	before, _ := rc.Before.(map[string]any)
	after, _ := rc.After.(map[string]any)
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	width, hidden := 0, 0
	var lines [][2]string
	for _, k := range names {
		bv, inB := before[k]
		av, inA := after[k]
		var s string
		switch {
		case sym == "+" || sym == "<=":
			if av == nil {
				continue
			}
			s = "+"
		case sym == "-":
			if bv == nil {
				continue
			}
			s = "-"
		case same(bv, av):
			hidden++
			continue
		case !inB || bv == nil:
			s = "+"
		case !inA || av == nil:
			s = "-"
		default:
			s = "~"
		}
		lines = append(lines, [2]string{s, k})
		width = max(width, len(k))
	}
	for _, l := range lines {
		fmt.Fprintf(b, "      %s %-*s = %s\n", l[0], width, l[1], change(l[0], before[l[1]], after[l[1]], "        "))
	}
	if hidden > 0 {
		fmt.Fprintf(b, "        # (%d unchanged attribute%s hidden)\n", hidden, plural(hidden))
	}
	b.WriteString("    }\n")
}

// change renders one value's change under its marker.
func change(sym string, before, after any, indent string) string {
	switch sym {
	case "+", "<=":
		return value(after, indent)
	case "-":
		return value(before, indent) + " -> null"
	}
	return value(before, indent) + " -> " + value(after, indent)
}

func same(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// value renders a value as Terraform's plan does: strings quoted, the
// markers of unknown and sensitive values bare, collections over lines.
func value(v any, indent string) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if x == UnknownValue || x == SensitiveValue {
			return x
		}
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		var b strings.Builder
		b.WriteString("[\n")
		for _, e := range x {
			fmt.Fprintf(&b, "%s    %s,\n", indent, value(e, indent+"    "))
		}
		b.WriteString(indent + "]")
		return b.String()
	case map[string]any:
		if len(x) == 0 {
			return "{}"
		}
		keys := make([]string, 0, len(x))
		width := 0
		for k := range x {
			keys = append(keys, k)
			width = max(width, len(strconv.Quote(k)))
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "%s    %-*s = %s\n", indent, width, strconv.Quote(k), value(x[k], indent+"    "))
		}
		b.WriteString(indent + "}")
		return b.String()
	}
	out, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(out)
}
