package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"overseer/jobs"
)

// fill sets every exported field reachable from v (settable) to a value
// that is not zero, so that a round trip that drops a field shows.
func fill(v reflect.Value, depth int) {
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(time.Date(2026, 11, 30, 1, 2, 3, 456789, time.UTC).Add(time.Duration(depth) * time.Hour)))
		return
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(depth) - 7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(depth) + 300)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.String:
		v.SetString("s\x00é" + strings.Repeat("x", depth))
	case reflect.Pointer:
		if depth > 12 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Slice:
		if depth > 12 {
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), depth+1)
		fill(v.Index(1), depth+2)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for _, f := range sentFields(v.Type()) {
			fill(v.Field(f.index), depth+1)
		}
	}
}

// Every exported field of the handover, jobs' included, comes back as it
// went (a field the codec could not carry would fail here, not in an
// upgrade).
func TestHandoverRoundTrip(t *testing.T) {
	var h handover
	fill(reflect.ValueOf(&h).Elem(), 0)
	h.Version = handoverVersion
	if len(h.Jobs.Jobs) == 0 || h.Jobs.Jobs[0].Sup == nil || h.Jobs.Jobs[0].Sup.Job == nil {
		t.Fatalf("fill left the jobs out: %+v", h.Jobs)
	}
	// nil and empty stay apart (gob's did not).
	h.Jobs.Jobs[1].Sup.Job.Test = []string{}
	h.Jobs.Jobs[1].Sup.Job.Command = nil
	b, err := encodeHandover(handoverVersion, &h)
	if err != nil {
		t.Fatal(err)
	}
	var got handover
	if err := decodeHandover(b, handoverVersion, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("round trip changed the handover:\n got %+v\nwant %+v", got, h)
	}
	if got.Jobs.Jobs[1].Sup.Job.Test == nil || got.Jobs.Jobs[1].Sup.Job.Command != nil {
		t.Errorf("nil and empty slices were mixed up: Test %#v, Command %#v", got.Jobs.Jobs[1].Sup.Job.Test, got.Jobs.Jobs[1].Sup.Job.Command)
	}
	// Every truncation is an error, never a panic.
	for i := range len(b) {
		var h2 handover
		if err := decodeHandover(b[:i], handoverVersion, &h2); err == nil {
			t.Fatalf("%d of %d bytes decoded without an error", i, len(b))
		}
	}
}

// Another version's handover: fields are matched by name; one the reader
// lacks is skipped, one the writer lacks stays zero, one whose kind
// changed is an error; another format is refused.
func TestHandoverVersions(t *testing.T) {
	type older struct {
		Version int
		Gone    []map[string]struct{ A, B string }
		Name    string
		When    time.Time
	}
	type newer struct {
		Version int
		Name    string
		Added   *jobs.Exit
		When    time.Time
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	b, err := encodeHandover(7, &older{Version: 7, Gone: []map[string]struct{ A, B string }{{"k": {"a", "b"}}}, Name: "web", When: at})
	if err != nil {
		t.Fatal(err)
	}
	var n newer
	if err := decodeHandover(b, 7, &n); err != nil {
		t.Fatal(err)
	}
	if want := (newer{Version: 7, Name: "web", When: at}); !reflect.DeepEqual(n, want) {
		t.Errorf("got %+v, want %+v", n, want)
	}
	var changed struct{ Name int }
	if err := decodeHandover(b, 7, &changed); err == nil || !strings.Contains(err.Error(), "handover.Name: a int cannot hold") {
		t.Errorf("a field whose kind changed: %v", err)
	}
	if err := decodeHandover(b, 8, &n); err == nil || err.Error() != "format 7, not 8" {
		t.Errorf("another format: %v", err)
	}
	if err := decodeHandover([]byte("\x0e\xff\x81\x03\x01\x01\x07Version"), 3, &n); err == nil || !strings.Contains(err.Error(), "not a handover of format 3") {
		t.Errorf("a gob handover (format 2): %v", err)
	}
}
