package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxEvent bounds one line of an event stream. A queue document with a
// thousand waiters is about 1 MB; one with the server's limit of 10 000
// sessions, each with 16 long labels, could pass 100 MB, which no viewer
// needs.
const maxEvent = 64 << 20

// event is one server-sent event.
type event struct {
	name string // the "event:" field; "message" when absent
	data []byte // the "data:" lines, joined by newlines
}

// readEvents reads a text/event-stream (the WHATWG server-sent events
// format: "field: value" lines, events ended by a blank line, comments
// starting with ":") and calls fn with each event that has data, until r
// ends (nil) or fails, or fn fails (its error). A line longer than
// maxEvent is a streamError.
func readEvents(r io.Reader, fn func(event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEvent)
	var name string
	var data bytes.Buffer
	hasData := false
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if hasData {
				ev := event{name: name, data: bytes.Clone(data.Bytes())}
				if ev.name == "" {
					ev.name = "message"
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			name, hasData = "", false
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue // a comment, such as a keep-alive
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
		// "id" and "retry" are not needed: every event is the whole
		// state, and Watch paces its own reconnects.
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return streamError{fmt.Errorf("an event line is longer than %d bytes", maxEvent)}
		}
		return err
	}
	return nil
}
