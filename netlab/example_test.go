package netlab_test

import (
	"fmt"

	"github.com/remotelab-go/remotelab/netlab"
)

func ExampleParseVersion() {
	out := []byte("netlab version 25.09-post1\n  executable location: /usr/local/bin/netlab\n")
	v, err := netlab.ParseVersion(out)
	fmt.Println(v, err)
	// Output: 25.09-post1 <nil>
}

func ExampleNew() {
	cfg := netlab.DefaultConfig()
	cfg.Stream = true // log netlab's output lines at DEBUG
	r, err := netlab.New(cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Config().UpTimeout, r.Config().InspectParallelism)
	// Output: 30m0s 8
}
