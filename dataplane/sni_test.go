package dataplane

import "testing"

func TestMatchSNI(t *testing.T) {
	a, w := &backend{}, &backend{}
	routes := compileSNIRoutes(Frontend{Routes: []Route{{SNI: "A.example.com", Backend: "a"}, {SNI: "*.example.com", Backend: "w"}}},
		map[string]*backend{"a": a, "w": w})
	for _, tc := range []struct {
		sni  string
		want *backend
	}{
		{"a.example.com", a}, {"a.example.com.", a}, {"b.example.com", w}, {"x.y.example.com", w}, {"example.com", nil}, {"", nil},
	} {
		if got := matchSNI(routes, tc.sni); got != tc.want {
			t.Errorf("%q: got %p, want %p", tc.sni, got, tc.want)
		}
	}
}
