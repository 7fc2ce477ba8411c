"""Image references follow Docker's normalization rules."""

import pytest

from shoal.images import InvalidReference, Reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text, registry, repository, tag, digest, canonical", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", "latest", None, "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None, "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None, "docker.io/library/busybox:latest"),
    ("user/app", "docker.io", "user/app", "latest", None, "docker.io/user/app:latest"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/a/b:v1", "localhost:5000", "a/b", "v1", None, "localhost:5000/a/b:v1"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None, "127.0.0.1:5000/app:latest"),
    ("quay.io/org/app:v2", "quay.io", "org/app", "v2", None, "quay.io/org/app:v2"),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None, "[::1]:5000/app:x"),
    (f"busybox@{D}", "docker.io", "library/busybox", None, D, f"docker.io/library/busybox@{D}"),
    (f"r.io:443/app:v1@{D}", "r.io:443", "app", "v1", D, f"r.io:443/app:v1@{D}"),
    ("app:5000", "docker.io", "library/app", "5000", None, "docker.io/library/app:5000"),
    ("a__b/c-d.e", "docker.io", "a__b/c-d.e", "latest", None, "docker.io/a__b/c-d.e:latest"),
])
def test_parse_normalizes_like_docker(text, registry, repository, tag, digest, canonical):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == canonical
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize("text, why", [
    ("", "non-empty"),
    ("Busybox", "lowercase"),
    ("docker.io/Library/busybox", "lowercase"),
    ("a" * 64, "hexadecimal"),
    ("busybox:", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "A" * 64, "digest"),
    ("a/" * 130 + "b", "255"),
    ("host:port/app", "invalid reference format"),
])
def test_parse_rejects_with_reason(text, why):
    with pytest.raises(InvalidReference, match=why):
        Reference.parse(text)


def test_familiar_form():
    assert Reference.parse("busybox").familiar == "busybox:latest"
    assert Reference.parse("user/app:v1").familiar == "user/app:v1"
    assert Reference.parse("localhost:5000/app").familiar == "localhost:5000/app:latest"
