package historycost

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// KindTotal sums the Items of one kind; Details lists what they were for,
// each with its Actions, in order of first appearance.
type KindTotal struct {
	Kind    string
	Count   int
	Details []DetailCount
}

// DetailCount is the Actions spent on one detail (e.g. one activity type).
type DetailCount struct {
	Detail string
	Count  int
}

// ByKind groups the Items by kind in order of first appearance, which keeps
// the rendering stable and reads like the workflow.
func (r Report) ByKind() []KindTotal {
	return group(r.Items)
}

func group(items []Item) []KindTotal {
	var out []KindTotal
	at := map[string]int{}
	for _, it := range items {
		i, ok := at[it.Kind]
		if !ok {
			i = len(out)
			at[it.Kind] = i
			out = append(out, KindTotal{Kind: it.Kind})
		}
		k := &out[i]
		k.Count += it.Count
		n := max(it.Count, 1) // free items count occurrences
		found := false
		for j := range k.Details {
			if k.Details[j].Detail == it.Detail {
				k.Details[j].Count += n
				found = true
				break
			}
		}
		if !found {
			k.Details = append(k.Details, DetailCount{Detail: it.Detail, Count: n})
		}
	}
	return out
}

func details(ds []DetailCount) string {
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		s := d.Detail
		if s == "" {
			s = "-"
		}
		if d.Count > 1 {
			s += fmt.Sprintf(" ×%d", d.Count)
		}
		parts = append(parts, strings.ReplaceAll(s, "|", `\|`))
	}
	return strings.Join(parts, ", ")
}

// Markdown renders the Actions as a table, one row per kind with the rule
// that prices it, then the free look-alikes and what history cannot show.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events, %d billable actions (estimate from history)\n\n", r.Events, r.Actions)
	b.WriteString("| Action | Count | For | Rule |\n|---|---:|---|---|\n")
	for _, k := range r.ByKind() {
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", k.Kind, k.Count, details(k.Details), Rule(k.Kind))
	}
	fmt.Fprintf(&b, "| **total** | **%d** | | |\n", r.Actions)
	if len(r.Free) > 0 {
		b.WriteString("\nNot billed:")
		for i, k := range group(r.Free) {
			if i > 0 {
				b.WriteString(";")
			}
			fmt.Fprintf(&b, " %s (%s): %s", k.Kind, details(k.Details), Rule(k.Kind))
		}
		b.WriteString(".\n")
	}
	b.WriteString("\nNot in history, so not counted: queries, activity heartbeats, workflow task heartbeats, rejected updates.\n")
	return b.String()
}

// WriteFile prints the report of one exported history file: the Actions
// table and the events by type. It exists for benchmarks and ad-hoc use.
func WriteFile(w io.Writer, path string) error {
	r, err := CountFile(path)
	if err != nil {
		return err
	}
	var types []string
	for _, t := range r.EventsByType {
		types = append(types, fmt.Sprintf("%s %d", t.Type, t.Count))
	}
	_, err = fmt.Fprintf(w, "### %s\n\n%s\nEvents by type: %s.\n", filepath.Base(path), r.Markdown(), strings.Join(types, ", "))
	return err
}
