package token

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

func TestAlnum(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for i := 0; i < 200; i++ {
		s := Alnum(64)
		if !IsAlnum(s, 64) {
			t.Fatalf("not 64 alphanumerics: %q", s)
		}
		if seen[s] {
			t.Fatal("repeated token")
		}
		seen[s] = true
		for _, c := range s {
			counts[c]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("only %d distinct characters in 12800 draws", len(counts))
	}
}

func TestIsAlnum(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want bool
	}{
		{"abc123", 6, true},
		{"abc123", 5, false},
		{"abc-12", 6, false},
		{"ábc12", 6, false},
		{"", 0, true},
	}
	for _, tt := range tests {
		if got := IsAlnum(tt.s, tt.n); got != tt.want {
			t.Errorf("IsAlnum(%q, %d) = %v", tt.s, tt.n, got)
		}
	}
}

func TestHashAndAccess(t *testing.T) {
	if !Matches("secret", Hash("secret")) || Matches("secret2", Hash("secret")) {
		t.Fatal("Matches is wrong")
	}
	a, b := Access([]byte("secret-1"), "job-1"), Access([]byte("secret-1"), "job-1")
	if a != b || a == Access([]byte("secret-2"), "job-1") || a == Access([]byte("secret-1"), "job-2") {
		t.Fatal("Access must be stable per secret and job and differ otherwise")
	}
}

// Matches compares hashes with crypto/subtle, never with == or
// bytes.Equal, whose time depends on the first differing byte. Timing
// cannot be measured reliably in a unit test, so the code is checked.
func TestMatchesComparesInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "token.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var body *ast.BlockStmt
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "Matches" {
			body = fn.Body
		}
	}
	if body == nil {
		t.Fatal("no func Matches in token.go")
	}
	constantTime := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok {
					switch pkg.Name + "." + sel.Sel.Name {
					case "subtle.ConstantTimeCompare", "hmac.Equal":
						constantTime = true
					case "bytes.Equal", "bytes.Compare", "strings.Compare", "strings.EqualFold", "reflect.DeepEqual", "slices.Equal":
						t.Errorf("%s: variable-time %s.%s", fset.Position(n.Pos()), pkg.Name, sel.Sel.Name)
					}
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if _, lit := n.Y.(*ast.BasicLit); !lit {
					t.Errorf("%s: %s comparison of non-constants", fset.Position(n.Pos()), n.Op)
				}
			}
		}
		return true
	})
	if !constantTime {
		t.Error("Matches does not use subtle.ConstantTimeCompare")
	}
	// And it compares hashes: a secret of another length still costs one
	// fixed-size comparison.
	if !Matches(strings.Repeat("x", 1000), Hash(strings.Repeat("x", 1000))) || Matches("x", Hash("x")[:31]) {
		t.Error("Matches must compare the secret's SHA-256 with the stored hash")
	}
}
