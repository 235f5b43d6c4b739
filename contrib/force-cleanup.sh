#!/bin/sh
# force-cleanup.sh: tear down the lab of a remotelabd, whatever holds it.
#
# Usage: contrib/force-cleanup.sh [URL]      (default http://localhost:8000)
#
# A lab call needs the active session, so this queues like any client,
# waits for its turn, tears the lab down (DELETE /lab?force=true) and
# leaves the queue. It needs only sh, curl and sed. It stops with exit 1
# when its session disappears (expired, removed, server restarted) or the
# server cannot be reached, and leaves the queue on Ctrl-C. It sends no
# token, so it works only against a server without --auth-file; on the lab
# host (or with an admin token) `remotelab admin destroy-lab` tears the lab
# down at once instead of waiting its turn.
# See docs/operations.md ("Force cleanup of a stuck lab").
set -u

url=${1:-http://localhost:8000}
url=${url%/}
me=force-cleanup

sid=$(curl -fsS -X POST "$url/session" | sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p')
if [ -z "$sid" ]; then
	echo "$me: cannot open a session at $url" >&2
	exit 1
fi
leave() {
	curl -sS -o /dev/null -X DELETE -H "X-Session-ID: $sid" "$url/session/$sid" 2>/dev/null
}
trap leave EXIT
trap 'exit 130' INT TERM
echo "$me: session $sid queued; waiting for its turn" >&2

# Each poll waits up to 30 s for a change and keeps the session alive.
while :; do
	if ! status=$(curl -fsS "$url/session/$sid?wait=30s"); then
		echo "$me: session $sid is gone (expired or removed) or the server is unreachable" >&2
		exit 1
	fi
	case $status in
	*'"status":"active"'*) break ;;
	esac
	# Answers come at once only when something changed (or the server is
	# shutting down); do not hammer it in the second case.
	sleep 1
done

out=$(curl -sS -w '\n%{http_code}' -X DELETE -H "X-Session-ID: $sid" "$url/lab?force=true") || exit 1
code=$(printf '%s\n' "$out" | tail -n 1)
body=$(printf '%s\n' "$out" | sed '$d')
case $code in
202) echo "$me: the lab was torn down" >&2 ;;
204) echo "$me: there was no lab" >&2 ;;
*)
	echo "$me: DELETE /lab answered $code: $body" >&2
	exit 1
	;;
esac
