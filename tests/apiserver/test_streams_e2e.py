"""Pod streaming subresources through the real kubectl, the official Python client and
`shoal logs/exec`, against one real daemon for the module: `pods/log` (tail, timestamps,
limit-bytes, since, follow, previous), `pods/exec` (stdin, stderr, exit codes, tty with
resizes, Kubernetes' refusals), `kubectl cp`, `pods/attach`, `pods/portforward` over
WebSocket's channel form (the Python client; kubectl's SPDY form is in
test_portforward_kubectl_e2e), malformed
frames, and vanishing or concurrent clients leaving no process or fd behind."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shoal import timestamps
from tests.daemon_harness import ShoalInstance, wait_for

pytestmark = pytest.mark.slow

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: talk, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; while true; do if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi; sleep 0.2; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: duo, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-a; exec sleep 3600"]
  - name: b
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-b; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: crash, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Always
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo run-$(date +%s%N); sleep 2; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {name: tty, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    stdin: true
    tty: true
    command: ["sh"]
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo finished"]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    inst = ShoalInstance(tmp_path_factory.mktemp("streams") / "state")
    try:
        inst.shoal("image", "bootstrap", "busybox", "--busybox")
        inst.start()
        inst.kubectl("apply", "-f", "-", input=PODS)
        for pod in ("talk", "duo", "tty", "web"):
            inst.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=90s")
        yield inst
    finally:
        inst.stop()
    procs = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    left = [p for p in procs.splitlines() if str(inst.state_dir) in p]
    assert not left, f"left behind after shoal down: {left}"


def exec_processes(daemon: ShoalInstance) -> list[str]:
    """`runc exec` processes the daemon started that are still alive."""
    procs = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [p for p in procs.splitlines() if " exec " in p and "--pid-file" in p and str(daemon.state_dir) in p]


def test_logs_prints_lines_tail_timestamps_and_container_errors(daemon):
    def log_with_three():
        out = daemon.kubectl("logs", "talk").stdout
        return out if "three" in out else None

    out = wait_for(log_with_three, what="talk's log")
    assert out.splitlines()[:3] == ["one", "two", "three"]
    assert daemon.kubectl("logs", "talk", "--tail=1").stdout == "three\n"
    stamped = daemon.kubectl("logs", "talk", "--timestamps", "--tail=1").stdout
    stamp, text = stamped.rstrip("\n").split(" ", 1)
    assert text == "three" and stamp.endswith("Z")
    age = dt.datetime.now(dt.timezone.utc) - timestamps.parse_time(stamp)  # RFC3339Nano, UTC
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=5)
    assert daemon.kubectl("logs", "talk", "--limit-bytes=5").stdout == "one\nt"
    assert daemon.kubectl("logs", "talk", "--since=1h").stdout.startswith("one\n")
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert daemon.kubectl("logs", "talk", f"--since-time={later}").stdout == ""

    assert daemon.kubectl("logs", "duo", "-c", "b").stdout == "from-b\n"
    # kubectl picks the first container itself (and says so); the API refuses a guess
    assert "from-a" in daemon.kubectl("logs", "duo").stdout
    missing = daemon.kubectl("logs", "duo", "-c", "zzz", check=False)
    assert missing.returncode != 0
    assert "container zzz is not valid for pod duo" in missing.stderr
    gone = daemon.kubectl("logs", "nosuchpod", check=False)
    assert gone.returncode != 0 and 'pods "nosuchpod" not found' in gone.stderr


def test_logs_api_requires_a_container_for_several(daemon):
    import httpx
    import ssl

    with httpx.Client(base_url=daemon.url, verify=ssl.create_default_context(cafile=daemon.ca),
                      headers={"Authorization": f"Bearer {daemon.token}"}, timeout=30) as api:
        r = api.get("/api/v1/namespaces/default/pods/duo/log")
        assert r.status_code == 400
        assert r.json()["message"] == "a container name must be specified for pod duo, choose one of: [a b]"
        r = api.get("/api/v1/namespaces/default/pods/talk/log", params={"tailLines": "x"})
        assert r.status_code == 400 and "tailLines" in r.json()["message"]


def test_logs_follow_sees_a_line_written_after_it_started(daemon):
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(daemon.kubeconfig), "logs", "-f", "talk"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "one\n"
        word = f"late-{secrets.token_hex(3)}"
        daemon.kubectl("exec", "talk", "--", "sh", "-c", f"echo {word} > /tmp/say")
        deadline = time.monotonic() + 15
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line == f"{word}\n":
                break
        assert seen[-1] == f"{word}\n", seen
    finally:
        proc.kill()
        proc.wait()


def test_logs_previous_after_a_restart(daemon):
    def restarted():
        pod = json.loads(daemon.kubectl("get", "pod", "crash", "-o", "json").stdout)
        statuses = pod["status"].get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 1

    wait_for(restarted, timeout=90, what="crash to restart")
    previous = daemon.kubectl("logs", "crash", "--previous").stdout
    assert previous.startswith("run-")
    current = wait_for(lambda: daemon.kubectl("logs", "crash", check=False).stdout, what="current log")
    assert current != previous


def test_exec_stdin_and_exit_code(daemon):
    r = daemon.kubectl("exec", "-i", "talk", "--", "sh", "-c", "tr a-z A-Z; echo err >&2", input="hello\n")
    assert r.stdout == "HELLO\n" and r.stderr == "err\n"
    r = daemon.kubectl("exec", "talk", "--", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3
    assert daemon.kubectl("exec", "talk", "--", "hostname").stdout == "talk\n"
    assert daemon.kubectl("exec", "duo", "-c", "b", "--", "cat", "/proc/1/cmdline").stdout.startswith("sleep")


def test_exec_errors_read_like_kubernetes(daemon):
    r = daemon.kubectl("exec", "duo", "-c", "nope", "--", "true", check=False)
    assert r.returncode != 0
    assert "container nope is not valid for pod duo" in r.stderr
    r = daemon.kubectl("exec", "ghost", "--", "true", check=False)
    assert r.returncode != 0 and 'pods "ghost" not found' in r.stderr


def test_exec_into_a_completed_pod_or_a_stopped_container_reads_like_kubernetes(daemon):
    wait_for(lambda: "Succeeded" in daemon.kubectl("get", "pod", "done", "-o", "jsonpath={.status.phase}").stdout,
             what="pod done to succeed")
    r = daemon.kubectl("exec", "done", "--", "true", check=False)
    assert r.returncode != 0
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in r.stderr
    # the API says the same to a client that does not check first (the Python client)
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream

    with pytest.raises(ApiException) as refused:
        stream(core_api(daemon).connect_get_namespaced_pod_exec, "done", "default", command=["true"],
               stderr=True, stdin=False, stdout=True, tty=False)
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in str(refused.value)
    assert daemon.kubectl("logs", "done").stdout == "finished\n"  # its log stays readable

    def between_restarts():  # crash's container runs 2 s, then waits out its back-off
        r = daemon.kubectl("exec", "crash", "--", "true", check=False)
        # an exec racing the container's own exit fails in runc ("broken pipe"), as it
        # can on Kubernetes; once it is down the answer must be the kubelet's words
        return r.stderr if r.returncode != 0 and "container not found" in r.stderr else None

    stopped = wait_for(between_restarts, timeout=60, interval=0.3, what="exec into crash while it is down")
    assert 'container not found ("main")' in stopped, stopped


def test_exec_tty_with_a_resize(daemon):
    # `script` gives kubectl a terminal of a known size, so it sends -t and a resize
    r = subprocess.run(
        ["script", "-qec", f"stty cols 91 rows 17; kubectl --kubeconfig {daemon.kubeconfig} "
         "exec -it talk -- sh -c 'stty size; exit 4'", "/dev/null"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "17 91" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 4


def test_cp_both_ways(daemon, tmp_path):
    src = tmp_path / "up.txt"
    payload = "".join(f"line {i} {secrets.token_hex(8)}\n" for i in range(2000))
    src.write_text(payload)
    daemon.kubectl("cp", str(src), "default/talk:/tmp/up.txt")
    assert daemon.kubectl("exec", "talk", "--", "wc", "-l", "/tmp/up.txt").stdout.split()[0] == "2000"
    back = tmp_path / "down.txt"
    daemon.kubectl("cp", "default/talk:/tmp/up.txt", str(back))
    assert back.read_text() == payload


def test_attach_sees_output_and_takes_stdin(daemon):
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(daemon.kubeconfig), "attach", "-i", "tty"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        word = secrets.token_hex(4)
        proc.stdin.write(f"echo said-{word}\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if f"said-{word}" in line and "echo" not in line:
                break
        else:
            pytest.fail("attach did not relay the shell's output")
    finally:
        proc.kill()
        proc.wait()
    # detaching left the container running
    assert daemon.kubectl("exec", "tty", "--", "true").returncode == 0


def test_python_client_stream_exec(daemon):
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(daemon.kubeconfig)))
    out = stream(api.connect_get_namespaced_pod_exec, "talk", "default",
                 command=["sh", "-c", "echo out; echo err >&2"], stderr=True, stdin=False,
                 stdout=True, tty=False)
    assert "out" in out
    resp = stream(api.connect_get_namespaced_pod_exec, "talk", "default", command=["sh", "-c", "exit 5"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=20)
    assert resp.returncode == 5


def test_client_vanishing_mid_stream_leaves_no_process(daemon):
    def sleepers():
        listing = daemon.kubectl("exec", "talk", "--", "ps", "-o", "args").stdout.splitlines()
        return [line for line in listing if line.strip() == "sleep 300"]

    fds_before = len(list(Path(f"/proc/{daemon.pid}/fd").iterdir()))
    procs = [subprocess.Popen(["kubectl", "--kubeconfig", str(daemon.kubeconfig), "exec", "talk", "--",
                               "sleep", "300"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(5)]
    wait_for(lambda: len(sleepers()) == 5, timeout=30, what="five sleeps in the pod")
    assert len(exec_processes(daemon)) == 5
    for p in procs:
        p.kill()
        p.wait()
    wait_for(lambda: not exec_processes(daemon), timeout=20, what="runc exec processes to end")
    assert sleepers() == []  # the processes inside the pod were killed too, not only runc

    follower = subprocess.Popen(["kubectl", "--kubeconfig", str(daemon.kubeconfig), "logs", "-f", "talk"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    follower.stdout.readline()
    follower.kill()
    follower.wait()
    # the daemon closed what the sessions held (the pipes of five runc, a follower's log file)
    wait_for(lambda: len(list(Path(f"/proc/{daemon.pid}/fd").iterdir())) <= fds_before + 2, timeout=10,
             what="the daemon's fds back to where they were")


def test_python_client_tty_resize_mid_session(daemon):
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(daemon.kubeconfig)))
    resp = stream(api.connect_get_namespaced_pod_exec, "talk", "default",
                  command=["sh", "-c", "while read -r line; do [ \"$line\" = quit ] && exit 6; stty size; done"],
                  stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False)
    try:
        resp.write_channel(4, json.dumps({"Width": 120, "Height": 40}))
        resp.write_stdin("size\n")
        out = ""
        deadline = time.monotonic() + 10
        while "40 120" not in out and time.monotonic() < deadline:
            resp.update(timeout=1)
            if resp.peek_stdout():
                out += resp.read_stdout()
        assert "40 120" in out
        resp.write_channel(4, json.dumps({"Width": 77, "Height": 22}))
        time.sleep(0.5)  # a resize reaches the terminal asynchronously, as in Kubernetes
        resp.write_stdin("size\n")
        deadline = time.monotonic() + 10
        while "22 77" not in out and time.monotonic() < deadline:
            resp.update(timeout=1)
            if resp.peek_stdout():
                out += resp.read_stdout()
        resp.write_stdin("quit\n")
        deadline = time.monotonic() + 10
        while resp.is_open() and time.monotonic() < deadline:
            resp.update(timeout=1)
            if resp.peek_stdout():
                out += resp.read_stdout()
        assert "22 77" in out
        assert resp.returncode == 6
    finally:
        resp.close()


def core_api(daemon):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(daemon.kubeconfig)))


def http_get_through_forward(api, path: str = "/") -> bytes:
    from kubernetes.stream import portforward

    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="80")
    sock = pf.socket(80)
    try:
        sock.settimeout(10)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: web\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data
    finally:
        sock.close()


def test_port_forward_serves_100_requests(daemon):
    api = core_api(daemon)
    started = time.monotonic()
    answers = [http_get_through_forward(api) for _ in range(100)]
    elapsed = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.") and a.endswith(b"hello-from-web\n") for a in answers)
    assert elapsed < 30, f"100 forwarded requests took {elapsed:.1f}s"


def test_port_forward_to_a_closed_port_says_why(daemon):
    from kubernetes.stream import portforward

    pf = portforward(core_api(daemon).connect_get_namespaced_pod_portforward, "web", "default", ports="81")
    sock = pf.socket(81)
    sock.settimeout(10)
    assert sock.recv(100) == b""
    uid = core_api(daemon).read_namespaced_pod("web", "default").metadata.uid
    assert pf.error(81) == (f"error forwarding port 81 to pod web, uid {uid}: failed to connect to localhost:81 "
                            "inside the pod's network namespace: connection refused")


VANISHING_CLIENT = """
import os, sys
from kubernetes import client, config
from kubernetes.stream import portforward
api = client.CoreV1Api(config.new_client_from_config(sys.argv[1]))
pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="80")
pf.socket(80).sendall(b"GET / HTTP/1.0\\r\\n")  # half a request, then gone
print("sent", flush=True)
sys.stdin.readline()
os._exit(0)
"""


def test_port_forward_survives_a_client_vanishing(daemon):
    api = core_api(daemon)
    http_get_through_forward(api)
    fds_before = len(list(Path(f"/proc/{daemon.pid}/fd").iterdir()))
    clients = [subprocess.Popen([sys.executable, "-c", VANISHING_CLIENT, str(daemon.kubeconfig)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(5)]
    for c in clients:
        assert c.stdout.readline() == "sent\n"
    for c in clients:
        c.kill()
        c.wait()
    assert http_get_through_forward(api).endswith(b"hello-from-web\n")
    wait_for(lambda: len(list(Path(f"/proc/{daemon.pid}/fd").iterdir())) <= fds_before + 2, timeout=10,
             what="the daemon's fds back to where they were")


def test_malformed_frames_end_nothing(daemon):
    import asyncio
    import ssl

    import aiohttp

    async def session() -> list[tuple[int, bytes]]:
        ctx = ssl.create_default_context(cafile=daemon.ca)
        url = (f"{daemon.url}/api/v1/namespaces/default/pods/talk/exec?command=cat&stdin=true"
               "&stdout=true&stderr=true")
        got = []
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, ssl=ctx, protocols=["v5.channel.k8s.io"],
                                       headers={"Authorization": f"Bearer {daemon.token}"}) as ws:
                for junk in (b"", b"\x09whatever", b"\x04not json", b"\x04{\"Width\": -1}", b"\xff"):
                    await ws.send_bytes(junk)
                await ws.send_str("")
                await ws.send_bytes(b"\x00still here\n")
                await ws.send_bytes(b"\xff\x00")  # v5: stdin closed
                async for msg in ws:
                    got.append((msg.data[0], msg.data[1:]))
        return got

    got = asyncio.run(session())
    assert (1, b"still here\n") in got
    assert got[-1][0] == 3 and json.loads(got[-1][1])["status"] == "Success"


def test_exec_without_a_websocket_is_refused_with_the_reason(daemon):
    import httpx
    import ssl

    with httpx.Client(base_url=daemon.url, verify=ssl.create_default_context(cafile=daemon.ca),
                      headers={"Authorization": f"Bearer {daemon.token}"}, timeout=30) as api:
        r = api.post("/api/v1/namespaces/default/pods/talk/exec", params={"command": "true"},
                     headers={"X-Stream-Protocol-Version": "v4.channel.k8s.io"})
        assert r.status_code == 400
        assert "SPDY is not supported" in r.json()["message"]
        assert exec_processes(daemon) == []  # nothing was started for it
        r = api.get("/api/v1/namespaces/default/pods/talk/exec")
        assert r.status_code == 400 and r.json()["message"].startswith("command:")


def test_shoal_logs_and_exec_go_through_the_api(daemon):
    r = daemon.shoal("logs", "duo")
    assert r.stdout == "from-a\n" and 'Defaulted container "a" out of: a, b' in r.stderr
    assert daemon.shoal("logs", "duo", "-c", "b", "--timestamps").stdout.endswith("Z from-b\n")
    assert daemon.shoal("logs", "talk", "--tail", "2").stdout == daemon.kubectl("logs", "talk", "--tail=2").stdout
    r = daemon.shoal("exec", "-i", "talk", "--", "sh", "-c", "tr a-z A-Z; echo err >&2; exit 3",
                     input="hello\n", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "HELLO\n", "err\n")
    r = daemon.shoal("exec", "done", "--", "true", check=False)
    assert r.returncode == 1
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in r.stderr


def test_fifty_concurrent_execs_leave_nothing_behind(daemon):
    fds_before = len(list(Path(f"/proc/{daemon.pid}/fd").iterdir()))
    procs = [subprocess.Popen(["kubectl", "--kubeconfig", str(daemon.kubeconfig), "exec", "talk", "--",
                               "sh", "-c", f"echo session-{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(50)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 50, [err for _, err in outs if err][:3]
    assert sorted(out for out, _ in outs) == sorted(f"session-{i}\n" for i in range(50))
    assert exec_processes(daemon) == []
    wait_for(lambda: len(list(Path(f"/proc/{daemon.pid}/fd").iterdir())) <= fds_before + 2, timeout=10,
             what="the daemon's fds back to where they were")


def test_attach_without_stdin_sees_new_output(daemon):
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(daemon.kubeconfig), "attach", "talk"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    word = f"attached-{secrets.token_hex(3)}"
    seen = threading.Event()

    def say_until_seen():  # pid 1's stdout is what attach relays; repeat until the relay is up
        deadline = time.monotonic() + 20
        while not seen.is_set() and time.monotonic() < deadline:
            daemon.kubectl("exec", "talk", "--", "sh", "-c", f"echo {word} > /proc/1/fd/1")
            time.sleep(0.5)
        proc.kill()  # ends the readline below, seen or not

    speaker = threading.Thread(target=say_until_seen)
    speaker.start()
    try:
        for line in proc.stdout:
            if line.strip() == word:
                seen.set()
                break
        assert seen.is_set(), "attach did not relay the container's output"
    finally:
        seen.set()
        speaker.join()
        proc.kill()
        proc.wait()
