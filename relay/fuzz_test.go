package relay

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func FuzzDecodeProbeRequest(f *testing.F) {
	f.Add([]byte(`{"mx":["gmail-smtp-in.l.google.com"], "family":"any", "no_retry":false, "mta_stack":true}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"mx":["127.0.0.1:2525","[::1]:25"],"family":"6"}`))
	f.Add([]byte(`{"mx":null,"family":""}`))
	f.Add([]byte(`{"port":25}`))
	f.Add([]byte(`{"mx":["a"]} {"mx":["b"]}`))
	f.Add([]byte(`{"mx":["a b"]}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		opts, err := decodeProbeRequest(body)
		if err != nil {
			if !errors.Is(err, ErrOptions) {
				t.Fatalf("error %v does not wrap ErrOptions", err)
			}
			return
		}
		if !ValidFamily(opts.Family) || len(opts.MX) > maxRequestMX {
			t.Fatalf("accepted %+v", opts)
		}
		for _, mx := range opts.MX {
			if mx == "" || len(mx) > 261 {
				t.Fatalf("accepted MX %q", mx)
			}
		}
		// What was accepted survives a round trip unchanged.
		b, err := json.Marshal(opts)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeProbeRequest(b)
		if err != nil || !reflect.DeepEqual(normOpts(back), normOpts(opts)) {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", opts, b, back, err)
		}
	})
}

func normOpts(o Options) Options {
	if len(o.MX) == 0 {
		o.MX = nil
	}
	return o
}

func TestDecodeProbeRequest(t *testing.T) {
	opts, err := decodeProbeRequest([]byte(`{"mx":["gmail-smtp-in.l.google.com"], "family":"any", "no_retry":true, "mta_stack":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Options{MX: []string{"gmail-smtp-in.l.google.com"}, Family: "any", NoRetry: true, MTAStack: true}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("%+v", opts)
	}
	for _, bad := range []string{`{"port":25}`, `{"mx":"a"}`, `{"mx":["a"]}{}`, `{"family":"ipv6"}`, `{"mx":[""]}`, `{"mx":["a/b"]}`, `{"mx":["x@y"]}`, `nul`} {
		if _, err := decodeProbeRequest([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
