package auth_test

import (
	"fmt"

	"github.com/remotelab-go/remotelab/auth"
)

func Example() {
	token, err := auth.NewToken()
	if err != nil {
		panic(err)
	}
	// What `remotelab token new --name alice --role user` prints for the
	// operator to add to the auth file; the token itself goes to alice.
	file := "tokens:\n" + auth.Entry("alice", auth.User, token)

	table, err := auth.Parse([]byte(file))
	if err != nil {
		panic(err)
	}
	id, ok := table.Lookup(token)
	fmt.Println(id.Name, id.Role, ok)
	fmt.Println("may create sessions:", id.Role.Allows(auth.User))
	fmt.Println("may evict others:", id.Role.Allows(auth.Admin))
	_, ok = table.Lookup("rlab_guessed")
	fmt.Println("guess known:", ok)
	// Output:
	// alice user true
	// may create sessions: true
	// may evict others: false
	// guess known: false
}
