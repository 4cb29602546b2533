package flock

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLocks(t *testing.T) {
	const locks = `1: FLOCK  ADVISORY  READ 4242 fe:00:393231 0 EOF
1: -> FLOCK  ADVISORY  WRITE 4343 fe:00:393231 0 EOF
2: FLOCK  ADVISORY  READ 4444 fe:00:393231 0 EOF
3: POSIX  ADVISORY  WRITE 4545 fe:00:393231 0 EOF
4: FLOCK  ADVISORY  WRITE 4646 fe:00:393232 0 EOF
5: OFDLCK ADVISORY  READ  -1 00:06:1068 0 EOF
`
	got, err := parseLocks(strings.NewReader(locks), 393231)
	require.NoError(t, err)
	assert.Equal(t, []Holder{{PID: 4242, Mode: Shared}, {PID: 4444, Mode: Shared}}, got,
		"flock holders of the inode; not the waiter, not a POSIX lock, not another inode")
	got, err = parseLocks(strings.NewReader(locks), 393232)
	require.NoError(t, err)
	assert.Equal(t, []Holder{{PID: 4646, Mode: Exclusive}}, got)
}
