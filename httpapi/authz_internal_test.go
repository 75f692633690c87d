package httpapi

import "testing"

// TestEveryRouteHasARole: the role table classifies exactly the handler's
// endpoints, so no endpoint falls to the admin default unnoticed and no
// entry outlives its endpoint.
func TestEveryRouteHasARole(t *testing.T) {
	h := New(nil)
	seen := map[string]bool{}
	for _, rt := range h.routes {
		k := rt.method + " " + rt.path
		seen[k] = true
		if _, ok := routeRoles[k]; !ok {
			t.Errorf("%s has no entry in routeRoles", k)
		}
	}
	for k := range routeRoles {
		if !seen[k] {
			t.Errorf("routeRoles names %s, which the handler does not serve", k)
		}
	}
}
