package api

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// secretWords mark an expression as holding a secret (or its hash): the
// admin token, access and download tokens, callback secrets, signatures.
var secretWords = []string{"token", "tok", "secret", "signature", "sig", "password", "access", "hash", "apikey", "api_key"}

// notSecret are names that contain a secret word but hold no secret: the
// fingerprint of a job request (the idempotency check compares it).
var notSecret = map[string]bool{"requesthash": true, "reqhash": true}

// variableTime are the comparisons whose time depends on where the inputs
// first differ.
var variableTime = map[string]bool{
	"bytes.Equal": true, "bytes.Compare": true, "strings.EqualFold": true, "strings.Compare": true,
	"reflect.DeepEqual": true, "slices.Equal": true, "strings.HasPrefix": true, "bytes.HasPrefix": true,
}

// secretComparisons lists, in the package's non-test files, the ==, != and
// variable-time library comparisons of an expression that holds a secret
// with anything that is not a constant: every such comparison must go
// through crypto/subtle (token.Matches does) instead.
func secretComparisons(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	parsed := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed++
		report := func(n ast.Node, what string) {
			found = append(found, fset.Position(n.Pos()).String()+": "+what)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if (n.Op == token.EQL || n.Op == token.NEQ) && !constant(n.X) && !constant(n.Y) && (holdsSecret(n.X) || holdsSecret(n.Y)) {
					report(n, source(fset, n))
				}
			case *ast.CallExpr:
				if variableTime[source(fset, n.Fun)] && len(n.Args) == 2 && !constant(n.Args[0]) && !constant(n.Args[1]) &&
					(holdsSecret(n.Args[0]) || holdsSecret(n.Args[1])) {
					report(n, source(fset, n))
				}
			}
			return true
		})
	}
	if parsed == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return found
}

// holdsSecret reports whether an identifier, field or string literal in e
// (a parameter's name such as c.Param("secret")) names a secret.
func holdsSecret(e ast.Expr) bool {
	secret := false
	ast.Inspect(e, func(n ast.Node) bool {
		var word string
		switch n := n.(type) {
		case *ast.Ident:
			word = n.Name
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				word, _ = strconv.Unquote(n.Value)
			}
		}
		word = strings.ToLower(word)
		if notSecret[word] {
			return true
		}
		for _, w := range secretWords {
			secret = secret || strings.Contains(word, w)
		}
		return !secret
	})
	return secret
}

// constant reports literals, nil, and calls of len and cap: comparing a
// secret with those leaks nothing about its content.
func constant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false"
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
			return true
		}
	case *ast.ParenExpr:
		return constant(e.X)
	}
	return false
}

func source(fset *token.FileSet, n ast.Node) string {
	var b strings.Builder
	printer.Fprint(&b, fset, n)
	return b.String()
}

// No handler compares a secret with == or a variable-time function: the
// admin token and callback secrets go through subtle.ConstantTimeCompare,
// access tokens through token.Matches (constant time, on hashes), and
// download tokens only through the store's indexed lookup. Replacing any
// of those with == fails here.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	if found := secretComparisons(t, "."); len(found) > 0 {
		t.Fatalf("secrets compared in variable time:\n%s", strings.Join(found, "\n"))
	}
}

// The check itself finds what it must.
func TestSecretComparisonCheckFindsPlainComparisons(t *testing.T) {
	dir := t.TempDir()
	src := `package x

import ("bytes"; "crypto/subtle")

type job struct{ CallbackSecret string; AccessTokenHash []byte }
type cfg struct{ AdminToken string }

func param(string) string { return "" }
func hash(string) []byte { return nil }

func a(j job, c cfg, t string) bool { return t == c.AdminToken }               // found
func b(j job) bool { return param("secret") != j.CallbackSecret }             // found
func c(j job, access string) bool { return bytes.Equal(hash(access), j.AccessTokenHash) } // found
func d(j job) bool { return j.CallbackSecret == "" || len(j.AccessTokenHash) == 32 }     // constants: fine
func e(c cfg, t string) bool { return subtle.ConstantTimeCompare([]byte(t), []byte(c.AdminToken)) == 1 } // fine
func f(a, b string) bool { return a == b }                                     // no secret: fine
`
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	found := secretComparisons(t, dir)
	if len(found) != 3 {
		t.Fatalf("found %d comparisons, want 3:\n%s", len(found), strings.Join(found, "\n"))
	}
	for i, want := range []string{":11:", ":12:", ":13:"} {
		if !strings.Contains(found[i], want) {
			t.Errorf("finding %q is not on line %s", found[i], want)
		}
	}
}
