//go:build linux

package vip

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEnableNonlocalBindLinux(t *testing.T) {
	l := newLab(t)
	a := l.node("a")
	read := func() string {
		return strings.Join(strings.Fields(a.exec("sysctl", "-n", "net.ipv4.ip_nonlocal_bind", "net.ipv6.ip_nonlocal_bind")), " ")
	}
	if got := read(); got != "0 0" {
		t.Fatalf("fresh namespace: ip_nonlocal_bind = %q, want \"0 0\"", got)
	}
	for range 2 { // the second call finds them set
		a.do(func() {
			if err := EnableNonlocalBind(); err != nil {
				t.Fatal(err)
			}
		})
		if got := read(); got != "1 1" {
			t.Fatalf("after EnableNonlocalBind: ip_nonlocal_bind = %q, want \"1 1\"", got)
		}
	}
}

func TestSetSysctl(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		content string // "" for a missing file
		want    string
		wantErr bool
	}{
		{"set", "0\n", "1\n", false},
		{"already set is not rewritten", "1\n", "1\n", false},
		{"missing", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if tt.content != "" {
				if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
			err := setSysctl(p, "1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("setSysctl = %v, want error %v", err, tt.wantErr)
			}
			if got, _ := os.ReadFile(p); string(got) != tt.want {
				t.Errorf("file holds %q, want %q", got, tt.want)
			}
			if fi, err := os.Stat(p); err == nil && fi.ModTime().Equal(old) != (tt.content == tt.want) {
				t.Errorf("file modified at %v (old %v); want a write only when the value changes", fi.ModTime(), old)
			}
		})
	}
}

func TestSysctlErrors(t *testing.T) {
	for _, e := range []error{syscall.EROFS, syscall.EACCES, syscall.EPERM} {
		if err := (notPermitted{e}); !errors.Is(err, fs.ErrPermission) || !errors.Is(err, e) {
			t.Errorf("notPermitted{%v}: Is(fs.ErrPermission)=%v Is(%v)=%v, want both", e, errors.Is(err, fs.ErrPermission), e, errors.Is(err, e))
		}
	}
	if got := sysctlName("/proc/sys/net/ipv4/ip_nonlocal_bind"); got != "net.ipv4.ip_nonlocal_bind" {
		t.Errorf("sysctlName = %q", got)
	}
}
