package client_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// optionFuncs returns the exported functions of the package in dir that
// return a value of type result.
func optionFuncs(t *testing.T, dir, result string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == result {
				names = append(names, fn.Name.Name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestOptionNames: every call option of the embedding API and of the client
// is a With function, and each client call option has the embedding API's
// name for the same thing.
func TestOptionNames(t *testing.T) {
	root := optionFuncs(t, "..", "Option")
	calls := optionFuncs(t, ".", "CallOption")
	if len(root) == 0 || len(calls) == 0 {
		t.Fatalf("found options %v and call options %v", root, calls)
	}
	inRoot := map[string]bool{}
	for _, n := range root {
		inRoot[n] = true
		if !strings.HasPrefix(n, "With") {
			t.Errorf("abacus.%s: options are named With...", n)
		}
	}
	for _, n := range calls {
		if !strings.HasPrefix(n, "With") {
			t.Errorf("client.%s: call options are named With...", n)
		}
		if !inRoot[n] {
			t.Errorf("client.%s has no abacus.%s", n, n)
		}
	}
}
