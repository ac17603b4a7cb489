package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag of a number of bytes: a plain number, or one with a
// unit: KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of
// 1000), in any letter case, with an optional space ("64MiB", "1 GiB").
type byteSize int64

// byteUnits are the units byteSize accepts, longest first so that "MiB" is
// not read as "B".
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseByteSize parses a byte size as byteSize describes it.
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte size: use a whole number of bytes, or one with a unit such as 64MiB or 1GiB", s)
	}
	if n > 0 && mult > 1<<62/n {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// bytesFlag defines a byte-size flag on fs with a default in bytes.
func bytesFlag(fs *flag.FlagSet, name string, def int64, usage string) *int64 {
	v := byteSize(def)
	fs.Var(&v, name, usage)
	return (*int64)(&v)
}

// String formats the size with the largest binary unit that divides it.
func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses a byte size.
func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// listenAddr turns the -listen forms duckgate accepts, "127.0.0.1:8080",
// ":8080" and "http://127.0.0.1:8080/", into the host:port to listen on.
func listenAddr(s string) (string, error) {
	hostport := strings.TrimSuffix(s, "/")
	if rest, ok := strings.CutPrefix(hostport, "http://"); ok {
		hostport = rest
	} else if strings.Contains(hostport, "://") {
		return "", fmt.Errorf("-listen %q: duckgate serves plain HTTP; put TLS in a proxy in front and give host:port or http://host:port", s)
	}
	if strings.Contains(hostport, "/") || !strings.Contains(hostport, ":") {
		return "", fmt.Errorf("-listen %q: give host:port, for example 127.0.0.1:8080 or http://127.0.0.1:8080", s)
	}
	return hostport, nil
}

// serverURL turns the -addr forms the CLI accepts, the same as -listen's
// plus https://, into a base URL without a trailing slash.
func serverURL(s string) string {
	s = strings.TrimRight(s, "/")
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return s
	}
	return "http://" + s
}
