"""Errors of the builder: one root (`BuildError`) and typed families.

Every error about a Dockerfile instruction carries its 1-based `line` and names the
instruction, so the user sees `Dockerfile:7: COPY: source 'app.py' not found in the
build context`. Failures of the layers below (images, runtime) are wrapped at the step
that called them, with the step's line.
"""

from __future__ import annotations

from shoal.errors import ShoalError


class BuildError(ShoalError):
    """Root of every error raised by `shoal.builder`."""

    def __init__(self, message: str, line: int | None = None, instruction: str | None = None):
        self.line = line
        self.instruction = instruction
        self.detail = message
        where = f"Dockerfile:{line}: " if line else ""
        what = f"{instruction}: " if instruction else ""
        super().__init__(f"{where}{what}{message}")


class DockerfileSyntaxError(BuildError):
    """The Dockerfile is malformed: missing arguments, bad flags, bad JSON, no FROM."""


class UnsupportedInstruction(BuildError):
    """An instruction shoal does not implement (ONBUILD, MAINTAINER is accepted)."""


class UnknownStage(BuildError):
    """`--from`, `FROM <stage>` or `--target` names a stage that does not exist."""


class ContextError(BuildError):
    """A COPY/ADD source is missing from the build context, or escapes it."""


class StepFailed(BuildError):
    """A RUN step exited non-zero; `exit_code` and the tail of its `output` are kept."""

    def __init__(self, message: str, line: int | None, instruction: str, exit_code: int | None, output: str):
        self.exit_code = exit_code
        self.output = output
        super().__init__(message, line, instruction)


class BuildOptionError(BuildError):
    """A build option (--build-arg, --secret, --platform, --output) is malformed."""
