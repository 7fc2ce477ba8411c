"""`shoal image ...` end to end through click, against a tmp state dir."""

import json

from click.testing import CliRunner

from shoal.cli.images import image


def shoal_image(state_dir, *args):
    result = CliRunner().invoke(image, list(args), obj={"state_dir": str(state_dir)}, catch_exceptions=False)
    return result.exit_code, result.output


def test_image_commands(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOAL_STATE_DIR", raising=False)
    state = tmp_path / "state"
    code, out = shoal_image(state, "bootstrap", "--busybox", "localhost/bb:1")
    assert code == 0 and "localhost/bb:1" in out
    code, out = shoal_image(state, "tag", "localhost/bb:1", "localhost/bb:2")
    assert code == 0
    code, out = shoal_image(state, "ls")
    assert "localhost/bb:1" in out and "localhost/bb:2" in out and "linux/amd64" in out
    code, out = shoal_image(state, "inspect", "localhost/bb:2")
    info = json.loads(out)
    assert info["Config"]["Cmd"] == ["sh"] and len(info["Layers"]) == 1
    archive = tmp_path / "bb.tar"
    assert shoal_image(state, "export", "--format", "docker-archive", "localhost/bb:1", str(archive))[0] == 0
    other = tmp_path / "other"
    code, out = shoal_image(other, "import", str(archive))
    assert code == 0 and "localhost/bb:1" in out
    code, out = shoal_image(state, "rm", "localhost/bb:1", "localhost/bb:2")
    assert out.split("\n")[:2] == ["untagged localhost/bb:1", "untagged localhost/bb:2"]
    code, out = shoal_image(state, "prune")
    assert code == 0 and out.startswith("freed ") and out.strip() != "freed 0B"
    code, out = shoal_image(state, "inspect", "localhost/bb:1")
    assert code == 1 and "localhost/bb:1" in out and "not in the store" in out
    code, out = shoal_image(state, "pull", "Not_A/Ref")
    assert code == 1 and "must be lowercase" in out
