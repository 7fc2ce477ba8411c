"""Image references, parsed as Docker does (distribution/reference `ParseNormalizedNamed`).

    busybox                      -> docker.io/library/busybox:latest
    localhost:5000/app@sha256:.. -> registry localhost:5000, repository app, digest, no tag
    127.0.0.1:5000/a/b:v1        -> registry 127.0.0.1:5000, repository a/b, tag v1

Rules kept from Docker: the first path component is a registry host only if it contains
'.' or ':' or is 'localhost' (or has upper case); `index.docker.io` means `docker.io`;
single-component Docker Hub names get `library/`; repositories are lower case; a bare
64-hex string is refused (it looks like an image ID); a name without tag or digest gets
`latest`. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re

from shoal.images.errors import InvalidReference

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    rf"^(?P<domain>{_DOMAIN})/(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_TAG_ONLY = re.compile(rf"^{_TAG}$")
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")


@dataclasses.dataclass(frozen=True)
class Reference:
    """A normalized reference. `str(ref)` is the canonical, fully qualified form."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Reference":
        """Parse like `docker pull TEXT` would; raise InvalidReference naming the problem."""
        if not isinstance(text, str) or not text:
            raise InvalidReference(f"image reference {text!r}: must be a non-empty string")
        if _IMAGE_ID.match(text):
            raise InvalidReference(
                f"image reference {text!r}: cannot be a 64-character hexadecimal string (an image ID)"
            )
        domain, remainder = _split_domain(text)
        name_part = remainder.split("@", 1)[0]
        if ":" in name_part:
            name_part = name_part.rsplit(":", 1)[0]
        if name_part.lower() != name_part:
            raise InvalidReference(f"image reference {text!r}: repository name must be lowercase")
        match = _REFERENCE.match(f"{domain}/{remainder}")
        if not match:
            raise InvalidReference(f"image reference {text!r}: invalid reference format")
        registry, repository = match["domain"], match["path"]
        if len(registry) + 1 + len(repository) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReference(
                f"image reference {text!r}: repository name must not be more than "
                f"{NAME_TOTAL_LENGTH_MAX} characters"
            )
        digest = match["digest"]
        if digest is not None and not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
            raise InvalidReference(
                f"image reference {text!r}: digest must be sha256 with 64 lowercase hex digits"
            )
        tag = match["tag"]
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The short form Docker prints (`busybox:latest`, `localhost:5000/app:v1`)."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/"):]
        return name + self._suffix()

    def with_tag(self, tag: str) -> "Reference":
        if not _TAG_ONLY.match(tag):
            raise InvalidReference(f"tag {tag!r}: expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
        return dataclasses.replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> "Reference":
        return dataclasses.replace(self, tag=None, digest=digest)

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_domain(text: str) -> tuple[str, str]:
    slash = text.find("/")
    first = text[:slash] if slash >= 0 else ""
    if slash < 0 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_REGISTRY, text
    else:
        domain, remainder = first, text[slash + 1:]
    if domain == LEGACY_DEFAULT_REGISTRY:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def is_tag(text: str) -> bool:
    return bool(_TAG_ONLY.match(text))
