package runway

import "testing"

// The header this package compiled with and the library it links agree.
func TestLayoutMatchesTheLibrary(t *testing.T) {
	for name, want := range headerLayout() {
		if got := LayoutOffset(name); got != want {
			t.Errorf("%s: the library says %d, the header %d", name, got, want)
		}
	}
	if got := LayoutOffset("rw_block"); got != 80 {
		t.Errorf("rw_block is %d bytes, the header states 80", got)
	}
	if LayoutOffset("rw_block.nope") != -1 {
		t.Error("an unknown member has an offset")
	}
}

func TestOpenWithoutASlotSaysWhatToDo(t *testing.T) {
	t.Setenv("RUNWAY_SEGMENT_FD", "")
	t.Setenv("RUNWAY_SLOT", "")
	_, err := Open(Options{Plugin: "go-test"})
	e, ok := err.(*Error)
	if !ok || e.Code != -2 {
		t.Fatalf("Open without a slot: %v", err)
	}
	if want := "--external"; !contains(e.Msg, want) {
		t.Errorf("the error %q does not say %q", e.Msg, want)
	}
}

func TestBadParamsAreRefused(t *testing.T) {
	t.Setenv("RUNWAY_SEGMENT_FD", "")
	t.Setenv("RUNWAY_SLOT", "x")
	_, err := Open(Options{Params: []Param{{Name: "bad name", Max: 1}}})
	if e, ok := err.(*Error); !ok || e.Code != -1 || !contains(e.Msg, "bad name") {
		t.Fatalf("a bad parameter name: %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
