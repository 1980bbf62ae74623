package main

import (
	"path/filepath"
	"strings"
	"testing"

	"candor/internal/testenv"
)

func TestEnrollAndWhoami(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	home := filepath.Join(t.TempDir(), "alice-laptop")
	code := env.Invite(t, "alice")
	var out strings.Builder

	for _, tc := range []struct {
		name string
		args []string
		exit int    // 0: success
		want string // in the output, on success
	}{
		{"whoami before enrolling", []string{"whoami", "-home", home}, exitProfile, ""},
		{"enroll without a name", []string{"enroll", "-home", home, code}, exitUsage, ""},
		{"enroll with a mistyped code", []string{"enroll", "-home", home, "-name", "laptop", "candor1:bm9wZQ"}, exitInvitation, ""},
		{"enroll", []string{"enroll", "-home", home, "-name", "laptop", code}, 0, "Enrolled as alice"},
		{"enroll twice", []string{"enroll", "-home", home, "-name", "laptop", code}, exitProfile, ""},
		{"reuse the code elsewhere", []string{"enroll", "-home", home + "2", "-name", "phone", code}, exitInvitation, ""},
		{"whoami", []string{"whoami", "-home", home}, 0, "alice, device "},
		{"unknown command", []string{"frobnicate"}, exitUsage, ""},
	} {
		out.Reset()
		err := run(t.Context(), tc.args, &out)
		if err != nil {
			if got := exitCode(err); got != tc.exit {
				t.Errorf("%s: exit %d (%v), want %d", tc.name, got, err, tc.exit)
			}
			continue
		}
		if tc.exit != 0 {
			t.Errorf("%s: succeeded, want exit %d", tc.name, tc.exit)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: output %q lacks %q", tc.name, out.String(), tc.want)
		}
	}
}
