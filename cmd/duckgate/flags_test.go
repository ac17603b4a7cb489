package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "64MiB": 64 << 20, "64mib": 64 << 20, "1 GiB": 1 << 30, "512KiB": 512 << 10,
		"2TiB": 2 << 40, "10MB": 10e6, "3kb": 3000, "7B": 7, "1gb": 1e9,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "12 parsecs", "9999999TiB", "0x10"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d; want an error", in, got)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := bytesFlag(fs, "size", 64<<20, "")
	if got := fs.Lookup("size").DefValue; got != "64MiB" {
		t.Errorf("default shown as %q, want 64MiB", got)
	}
	if err := fs.Parse([]string{"-size", "2GiB"}); err != nil || *v != 2<<30 {
		t.Errorf("-size 2GiB: %d, %v", *v, err)
	}
	if err := fs.Parse([]string{"-size", "lots"}); err == nil {
		t.Error("-size lots was accepted")
	}
}

func TestListenAndServerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080", "http://127.0.0.1:8080": "127.0.0.1:8080",
		"http://127.0.0.1:8080/": "127.0.0.1:8080", ":9000": ":9000", "[::1]:80": "[::1]:80",
	} {
		if got, err := listenAddr(in); err != nil || got != want {
			t.Errorf("listenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"https://127.0.0.1:8443", "127.0.0.1", "http://127.0.0.1:8080/api", "localhost"} {
		if got, err := listenAddr(in); err == nil {
			t.Errorf("listenAddr(%q) = %q; want an error", in, got)
		}
	}
	for in, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080", "http://127.0.0.1:8080/": "http://127.0.0.1:8080",
		"https://gw.example:443": "https://gw.example:443",
	} {
		if got := serverURL(in); got != want {
			t.Errorf("serverURL(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestWebhookKey(t *testing.T) {
	f := func(env string, wantLen int, wantErr bool) {
		t.Helper()
		key, err := webhookKey(func(string) string { return env })
		if len(key) != wantLen || (err != nil) != wantErr {
			t.Errorf("webhookKey(%q) = %d bytes, %v; want %d bytes, error %v", env, len(key), err, wantLen, wantErr)
		}
	}
	f("", 0, false) // webhook.key in the data directory
	f(strings.Repeat("ab", 32), 32, false)
	f(" "+strings.Repeat("AB", 32)+"\n", 32, false)
	f(strings.Repeat("ab", 31), 0, true)
	f(strings.Repeat("zz", 32), 0, true)
}
