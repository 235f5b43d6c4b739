//go:build race

package main

// raceEnabled makes TestMain build remotelabd with -race as well.
const raceEnabled = true
