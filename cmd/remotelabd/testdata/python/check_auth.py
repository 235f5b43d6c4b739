"""Runs the stand-in of the unchanged Python client against remotelabd with
--auth-file, authenticating through ~/.netrc (HOME is set by the caller).

usage: check_auth.py BASE_URL TOPOLOGY_PATH OTHER_USERS_TOKEN
Prints one line per step; exits 0 when every check passed.
"""

import sys

import requests

from original_client import RemoteLabClient


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def main():
    base, topology, other_token = sys.argv[1], sys.argv[2], sys.argv[3]

    # Without credentials the server answers 401 and says how to send them.
    r = requests.post(base + "/session", auth=("", ""))
    check(r.status_code == 401, "no token: 401 (got %d)" % r.status_code)
    check("Basic" in r.headers.get("WWW-Authenticate", ""), "401 offers HTTP Basic")

    # The unchanged client: credentials come from ~/.netrc.
    c = RemoteLabClient(base, poll_interval=0.2)
    check(c.position == 0, "session opened through .netrc, active at once")
    devices = c.acquire(topology, reuse=False)
    check(sorted(d["name"] for d in devices) == ["r1", "r2"], "acquire returned the devices")
    check(c.release(), "release")

    # Another user may not act on this session. (trust_env off: requests
    # would otherwise replace the header with the .netrc credentials.)
    other = requests.Session()
    other.trust_env = False
    r = other.delete(base + "/session/" + c.session_id,
                     headers={"Authorization": "Bearer " + other_token})
    check(r.status_code == 403, "another user's DELETE: 403 (got %d)" % r.status_code)
    check(r.json().get("detail") == "Session belongs to another owner", "403 says why")

    check(c.destroy(force=True), "destroy")
    check(c.close(), "close")
    check(c.close(), "close again (404 counts as closed)")
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
