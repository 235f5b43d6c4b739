package queue_test

import (
	"context"
	"fmt"

	"github.com/remotelab-go/remotelab/queue"
)

func Example() {
	q := queue.New(queue.Config[string]{})
	defer q.Close()

	alice, _ := q.Join("alice")
	bob, _ := q.Join("bob")
	fmt.Println(alice.Payload, alice.Status, alice.Position, alice.Epoch)
	fmt.Println(bob.Payload, bob.Status, bob.Position)

	// Bob long-polls for his turn while Alice finishes.
	turn := make(chan queue.Info[string])
	go func() {
		info, _ := q.Wait(context.Background(), bob.ID, bob)
		turn <- info
	}()
	q.Leave(alice.ID)
	info := <-turn
	fmt.Println(info.Payload, info.Status, info.Position, info.Epoch)
	// Output:
	// alice active 0 1
	// bob waiting 1
	// bob active 0 2
}
