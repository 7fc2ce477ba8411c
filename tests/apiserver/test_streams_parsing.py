"""The pure parts of the pod streaming subresources: query parsing (bad values name the
field), the log line and time format kubelet writes, the exit Status kubectl reads, the
port-forward channel header, the exec process spec, and the CLI's reading of a Status."""

from __future__ import annotations

import datetime as dt

import pytest
from multidict import MultiDict

from shoal.api import errors
from shoal.apiserver import channels, podports, portforward, streams
from shoal.cli import podstreams
from shoal.node.streams import check_streamable, choose_container, exec_process

NOW = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.timezone.utc)


def test_log_options_parse_and_refuse_with_the_field():
    opts = streams.parse_log_options(MultiDict(container="c", follow="true", tailLines="3", limitBytes="10",
                                               sinceSeconds="60", timestamps="1"), NOW)
    assert opts == streams.LogOptions(container="c", follow=True, previous=False, timestamps=True, tail_lines=3,
                                      since=NOW - dt.timedelta(seconds=60), limit_bytes=10)
    since = streams.parse_log_options(MultiDict(sinceTime="2026-12-04T11:00:00Z"), NOW).since
    assert since == dt.datetime(2026, 12, 4, 11, tzinfo=dt.timezone.utc)
    for query, field in ((dict(tailLines="x"), "tailLines"), (dict(limitBytes="0"), "limitBytes"),
                         (dict(sinceTime="yesterday"), "sinceTime"), (dict(follow="maybe"), "follow")):
        with pytest.raises(errors.BadRequest, match=field):
            streams.parse_log_options(MultiDict(query), NOW)
    with pytest.raises(errors.BadRequest, match="at most one of sinceTime or sinceSeconds"):
        streams.parse_log_options(MultiDict(sinceTime="2026-12-04T11:00:00Z", sinceSeconds="5"), NOW)


def test_exec_options_default_and_refuse():
    opts = streams.parse_exec_options(MultiDict([("command", "sh"), ("command", "-c"), ("command", "true")]),
                                      attach=False)
    assert opts.command == ("sh", "-c", "true") and opts.stdout and opts.stderr and not opts.stdin and not opts.tty
    with pytest.raises(errors.BadRequest, match="^command:"):
        streams.parse_exec_options(MultiDict(), attach=False)
    assert streams.parse_exec_options(MultiDict(), attach=True).command == ()
    with pytest.raises(errors.BadRequest, match="at least 1 of stdin, stdout, stderr"):
        streams.parse_exec_options(MultiDict(command="x", stdout="false", stderr="false"), attach=False)


def test_log_lines_as_kubelet_writes_them():
    entry = streams.LogEntry(dt.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=dt.timezone.utc), "hi")
    assert streams.format_entry(entry, True) == b"2026-01-02T03:04:05.12Z hi\n"  # RFC3339Nano trims zeros
    assert streams.format_entry(entry, False) == b"hi\n"
    whole = streams.LogEntry(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "x")
    assert streams.format_entry(whole, True) == b"2026-01-02T03:04:05Z x\n"
    assert streams.cut(b"abcdef", 4) == (b"abcd", 0)
    assert streams.cut(b"ab", None) == (b"ab", None)


def test_exit_status_is_what_kubectl_reads_back():
    assert channels.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    failed = channels.exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["message"].endswith("[sh -c exit 3], exit code 3")
    assert podstreams.exit_code_of(failed) == (3, None)
    assert podstreams.exit_code_of({"status": "Success"}) == (0, None)
    assert podstreams.exit_code_of({"status": "Failure", "message": "boom"}) == (1, "boom")


def test_resize_messages():
    assert channels.parse_resize(b'{"Width": 80, "Height": 24}') == (80, 24)
    for bad in (b"nope", b"[]", b'{"Width": 0, "Height": 24}', b'{"Width": "x"}', b'{"Width": 70000, "Height": 1}'):
        assert channels.parse_resize(bad) is None


def test_port_forward_query_and_header():
    assert portforward.parse_ports(MultiDict([("ports", "80,8080"), ("ports", "9090")])) == [80, 8080, 9090]
    for query, message in ((MultiDict(), 'query parameter "ports" is required'),
                           (MultiDict(ports="http"), "expected port numbers"),
                           (MultiDict(ports="70000"), "between 1 and 65535")):
        with pytest.raises(errors.BadRequest, match=message):
            portforward.parse_ports(query)
    assert portforward.port_header(3, 8080) == bytes([3, 0x90, 0x1F])
    assert podports.forward_error("web", "u-1", 81, ConnectionRefusedError(111, "x")) == (
        "error forwarding port 81 to pod web, uid u-1: failed to connect to localhost:81 inside the pod's "
        "network namespace: connection refused")


POD = {"metadata": {"name": "duo"}, "spec": {"nodeName": "n", "containers": [{"name": "a"}, {"name": "b"}],
                                             "initContainers": [{"name": "init"}]},
       "status": {"phase": "Running"}}


def test_container_choice_and_refusals_read_like_kubernetes():
    assert choose_container(POD, "b") == "b" and choose_container(POD, "init") == "init"
    with pytest.raises(errors.BadRequest, match=r"^a container name must be specified for pod duo, choose one "
                                                r"of: \[a b\] or one of the init containers: \[init\]$"):
        choose_container(POD, None)
    with pytest.raises(errors.BadRequest, match="^container zzz is not valid for pod duo$"):
        choose_container(POD, "zzz")
    check_streamable(POD, "exec into")
    done = {**POD, "status": {"phase": "Failed"}}
    with pytest.raises(errors.BadRequest, match="^cannot exec into a container in a completed pod; current phase "
                                                "is Failed$"):
        check_streamable(done, "exec into")
    unscheduled = {**POD, "spec": {**POD["spec"], "nodeName": None}}
    with pytest.raises(errors.BadRequest, match="^pod duo does not have a host assigned$"):
        check_streamable(unscheduled, "exec into")
    assert podstreams.default_container({**POD, "metadata": {"name": "duo", "annotations": {
        "kubectl.kubernetes.io/default-container": "b"}}}) == ("b", 'Defaulted container "b" out of: a, b')


def test_exec_process_keeps_the_containers_and_sets_the_terminal():
    base = {"args": ["httpd"], "env": ["A=1"], "cwd": "/", "terminal": True, "consoleSize": {"width": 1, "height": 1}}
    plain = exec_process(base, ("ls",), tty=False, size=None)
    assert plain == {"args": ["ls"], "env": ["A=1"], "cwd": "/", "terminal": False}
    sized = exec_process(base, ("sh",), tty=True, size=(91, 17))
    assert sized["terminal"] and sized["consoleSize"] == {"width": 91, "height": 17}
    assert base["args"] == ["httpd"]  # the container's own is untouched
