"""A stand-in for the unchanged neops-remote-lab RemoteLabClient.

It sends exactly what the original Python client sends (see the wire
description in docs/http-api.md, "Compatibility"): a requests.Session with
its User-Agent, keep-alive, urllib3 retries (3, backoff 1, on
429/500/502/503/504, GET/HEAD/OPTIONS/DELETE only), POST /session, GET
/session/{id} polled every poll_interval seconds until active, POST /lab
multipart (topology + reuse), 423 retried, POST /lab/release, DELETE
/lab?force=, DELETE /session/{id}. It passes no credentials itself: like
the original, it relies on requests reading ~/.netrc, which is how the
unchanged client authenticates against a server with --auth-file.
"""

import os
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class RemoteLabClient:
    def __init__(self, base_url, session_timeout=600, poll_interval=5.0, request_timeout=30):
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self.http = requests.Session()
        self.http.headers.update({"User-Agent": "RemoteLabClient/1.0", "Connection": "keep-alive"})
        retry = Retry(total=3, backoff_factor=1, status_forcelist=[429, 500, 502, 503, 504],
                      allowed_methods=["HEAD", "GET", "OPTIONS", "DELETE"])
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        r = self.http.post(self.base_url + "/session", timeout=request_timeout)
        r.raise_for_status()
        body = r.json()
        self.session_id = body["session_id"]
        self.position = body["position"]
        self.http.headers["X-Session-ID"] = self.session_id
        deadline = time.monotonic() + session_timeout
        while True:
            r = self.http.get(self.base_url + "/session/" + self.session_id, timeout=request_timeout)
            r.raise_for_status()
            if r.json()["status"] == "active":
                return
            if time.monotonic() > deadline:
                raise TimeoutError("session did not become active")
            time.sleep(poll_interval)

    def acquire(self, topology_path, reuse):
        while True:
            with open(topology_path, "rb") as f:
                r = self.http.post(self.base_url + "/lab",
                                   files={"topology": (os.path.basename(topology_path), f, "application/x-yaml")},
                                   data={"reuse": "true" if reuse else "false"},
                                   timeout=600)
            if r.status_code == 423:
                time.sleep(5)
                continue
            r.raise_for_status()
            return r.json()["devices"]

    def release(self):
        r = self.http.post(self.base_url + "/lab/release", timeout=self.request_timeout)
        return r.status_code in (204, 404)

    def destroy(self, force=True):
        r = self.http.delete(self.base_url + "/lab", params={"force": "true" if force else "false"},
                             timeout=self.request_timeout)
        return r.status_code in (202, 204)

    def close(self):
        r = self.http.delete(self.base_url + "/session/" + self.session_id, timeout=self.request_timeout)
        return r.status_code in (204, 404)
