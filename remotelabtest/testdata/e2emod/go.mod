// A test module for remotelabtest's end-to-end test: a package with lab
// tests, run with `go test` against a real remotelabd. The test runs it
// with a copy of this file whose replace directive is an absolute path.
module example.com/e2emod

go 1.26.0

require github.com/remotelab-go/remotelab v0.0.0

replace github.com/remotelab-go/remotelab => ../../..
