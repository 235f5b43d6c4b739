//go:build !race

package main

// raceEnabled makes TestMain build remotelab with -race as well.
const raceEnabled = false
