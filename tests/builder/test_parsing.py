"""Pure parts of the builder: Dockerfile parsing, expansion, metadata, mounts, stage
selection, pip settings, .dockerignore."""

from __future__ import annotations

import pytest

from shoal.builder import dockerfile, imageconfig as ic, pipconfig
from shoal.builder.context import BuildContext
from shoal.builder.stages import select_stages
from shoal.builder.errors import DockerfileSyntaxError, UnknownStage, UnsupportedInstruction
from shoal.builder.expand import expand
from shoal.builder.metadata import apply_metadata
from shoal.builder.runmounts import parse_mount

DOCKERFILE = """\
# comment
ARG BASE=busybox
FROM $BASE AS Build
RUN --mount=type=cache,target=/c \\
    echo one && \\
    echo two
COPY --from=build --chown=1:2 ["a b", "/c/"]
FROM scratch
COPY --from=0 /x /x
"""


def test_parse_keeps_lines_flags_forms_and_stages():
    df = dockerfile.parse(DOCKERFILE)
    assert [a.value for a in df.global_args] == ["BASE=busybox"]
    build, final = df.stages
    assert (build.name, build.base, build.line) == ("build", "$BASE", 3)
    run, copy = build.instructions
    assert (run.keyword, run.line, run.flags) == ("RUN", 4, {"mount": ["type=cache,target=/c"]})
    assert run.exec_form is None and "echo two" in run.value
    assert (copy.line, copy.flag("from"), copy.flag("chown"), copy.exec_form) == (7, "build", "1:2", ["a b", "/c/"])
    assert df.stage("BUILD") is build and df.stage("1") is final


@pytest.mark.parametrize("text,error,line", [
    ("RUN true\n", DockerfileSyntaxError, 1),
    ("# only a comment\n", DockerfileSyntaxError, 1),
    ("FROM a\nFROM b AS x\nFROM c AS x\n", DockerfileSyntaxError, 3),
    ("FROM a\nCOPY --chown=1 --chown=2 a b\n", DockerfileSyntaxError, 2),
    ("FROM a\nRUN --from=x true\n", DockerfileSyntaxError, 2),
    ("FROM a\n\nONBUILD RUN x\n", UnsupportedInstruction, 3),
    ("FROM a\nADDD x y\n", UnsupportedInstruction, 2),
])
def test_parse_errors_name_the_line(text, error, line):
    with pytest.raises(error) as info:
        dockerfile.parse(text)
    assert info.value.line == line


def test_expand_follows_docker_rules():
    v = {"A": "1", "EMPTY": ""}
    assert expand("$A ${A} ${B:-dflt} ${EMPTY:-e} ${A:+alt} ${B:+alt}", v) == "1 1 dflt e alt "
    assert expand("'$A' \"$A\" \\$A", v) == "'$A' \"1\" \\$A"
    with pytest.raises(ValueError):
        expand("${A", v)


def _state(config=None):
    return ic.StageState("sha256:0", (), {"config": config or {}, "history": []})


def _meta(state, line, cmd_set=False, variables=None):
    ins = dockerfile.parse("FROM x\n" + line + "\n").stages[0].instructions[0]
    return apply_metadata(state, ins, variables or {}, 0, cmd_set)


def test_metadata_instructions_update_config_and_chain():
    s = _meta(_state({"Env": ["PATH=/bin"], "Cmd": ["sh"]}), "ENV A=1 B=\"x y\"")
    assert s.runtime["Env"] == ["PATH=/bin", "A=1", "B=x y"] and s.config["history"][-1]["empty_layer"]
    s2 = _meta(s, "ENTRYPOINT python3 -m app")
    assert s2.runtime["Entrypoint"] == ["/bin/sh", "-c", "python3 -m app"] and "Cmd" not in s2.runtime
    assert _meta(s, "WORKDIR $D/sub", variables={"D": "/srv"}).runtime["WorkingDir"] == "/srv/sub"
    assert _meta(s, "ENV A=2").chain != _meta(s, "ENV A=3").chain
    assert _meta(s, "HEALTHCHECK NONE").runtime["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(DockerfileSyntaxError):
        _meta(s, "STOPSIGNAL SIGNOPE")
    with pytest.raises(DockerfileSyntaxError):
        _meta(s, "EXPOSE 99999")
    with pytest.raises(DockerfileSyntaxError):
        _meta(s, "SHELL /bin/bash -c")


def test_run_mount_options():
    cache = parse_mount("type=cache,target=pip", 3, "/root")
    assert (cache.type, cache.target, cache.id) == ("cache", "/root/pip", "/root/pip")
    secret = parse_mount("type=secret,id=tok,required", 3)
    assert (secret.target, secret.required, secret.readonly) == ("/run/secrets/tok", True, False)
    with pytest.raises(DockerfileSyntaxError, match="type="):
        parse_mount("type=volume,target=/x", 3)
    with pytest.raises(DockerfileSyntaxError, match="unknown option"):
        parse_mount("type=cache,target=/x,colour=red", 3)


def test_select_stages_takes_the_target_and_what_it_reads():
    df = dockerfile.parse("FROM a AS one\nFROM b AS two\nFROM one AS three\nCOPY --from=two /x /x\nFROM c\n")
    assert [s.label for s in select_stages(df, "three", {})] == ["one", "two", "three"]
    assert [s.label for s in select_stages(df, None, {})] == ["3"]
    with pytest.raises(UnknownStage):
        select_stages(df, "four", {})


def test_pip_settings_become_env_and_read_only_paths(tmp_path):
    index = tmp_path / "pypi" / "simple"
    index.mkdir(parents=True)
    conf = tmp_path / "constraints.txt"
    conf.write_text("")
    text = (f"global.extra-index-url='file://{index} https://mirror.invalid/simple'\n"
            f"global.constraint='{conf}'\n:env:.default-timeout='60'\nnot a setting\n")
    settings = pipconfig.parse_config_list(text)
    assert pipconfig.pip_env(settings)["PIP_EXTRA_INDEX_URL"].startswith("file://")
    assert pipconfig.pip_env(settings)["PIP_DEFAULT_TIMEOUT"] == "60"
    assert pipconfig.pip_mounts(settings) == sorted([str(tmp_path / "pypi"), str(conf)])


def test_dockerignore_rules(tmp_path):
    (tmp_path / ".dockerignore").write_text("# c\n*.log\n/build\n!build/keep\ndocs/**/*.md\n")
    ctx = BuildContext(tmp_path)
    assert ctx.ignored("a.log") and not ctx.ignored("sub/a.log")
    assert ctx.ignored("build/x") and not ctx.ignored("build/keep")
    assert ctx.ignored("docs/a/b/c.md") and not ctx.ignored("docs/a/b/c.txt")
