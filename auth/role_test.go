package auth_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/auth"
)

func TestParseRole(t *testing.T) {
	tests := []struct {
		in   string
		want auth.Role
	}{
		{"viewer", auth.Viewer},
		{"user", auth.User},
		{"admin", auth.Admin},
		{"ADMIN", auth.Admin},
		{"User", auth.User},
		{"vIeWeR", auth.Viewer},
	}
	for _, tt := range tests {
		got, err := auth.ParseRole(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
		assert.Equal(t, strings.ToLower(tt.in), got.String())
	}
}

func TestParseRoleRejects(t *testing.T) {
	for _, in := range []string{"", "root", "users", " user", "user ", "1", "Role(2)"} {
		r, err := auth.ParseRole(in)
		require.Error(t, err, "%q", in)
		assert.Contains(t, err.Error(), "unknown role")
		assert.Contains(t, err.Error(), "viewer, user or admin")
		assert.Equal(t, auth.Role(0), r)
	}
}

func TestRoleString(t *testing.T) {
	assert.Equal(t, "viewer", auth.Viewer.String())
	assert.Equal(t, "user", auth.User.String())
	assert.Equal(t, "admin", auth.Admin.String())
	assert.Equal(t, "Role(0)", auth.Role(0).String())
	assert.Equal(t, "Role(4)", auth.Role(4).String())
	assert.Equal(t, "Role(-1)", auth.Role(-1).String())
}

func TestRoleAllows(t *testing.T) {
	roles := []auth.Role{0, auth.Viewer, auth.User, auth.Admin, 4}
	// want[r][need]: rows and columns in the order of roles.
	want := [][]bool{
		/* none   */ {false, false, false, false, false},
		/* viewer */ {false, true, false, false, false},
		/* user   */ {false, true, true, false, false},
		/* admin  */ {false, true, true, true, false},
		/* Role(4)*/ {false, false, false, false, false},
	}
	for i, r := range roles {
		for j, need := range roles {
			assert.Equal(t, want[i][j], r.Allows(need), "%v.Allows(%v)", r, need)
		}
	}
}
