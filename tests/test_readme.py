"""The README's Python example runs as printed."""
import re

import torch
from helpers import ROOT

README = ROOT / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its Python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]


def test_readme_baselines_run_in_the_same_loop(capsys):
    """The second example's lines replace the first's ``tempering = …`` line."""
    loop, baselines = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[:2]
    imports = [line for line in baselines.splitlines() if line.startswith("from ")]
    choices = [line for line in baselines.splitlines() if line.startswith("tempering = ")]
    assert [c.split("(")[0] for c in choices] == ["tempering = InstanceNoise", "tempering = GaussianBlur"]
    original = next(line for line in loop.splitlines() if line.startswith("tempering = "))
    for choice in choices:
        exec(compile("\n".join(imports) + "\n" + loop.replace(original, choice), "README.md", "exec"), {})
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == ["1", "2", "3"], choice
        assert all(float(line.split()[2]) > 0 for line in lines)   # ‖X − T(X)‖² of a tempered batch (σ(t) > 0)


def test_readme_names_the_two_setup_commands_ci_runs():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = "bash setup.sh && .venv/bin/python -m pytest -q"
    assert test_command in text and test_command in ci
    assert "bash setup.sh && .venv/bin/tempered-gan train" in text


def test_readme_opens_with_the_default_runs_summary_line_and_image():
    """A newcomer sees what success looks like before anything else; the line is
    the one `tempered-gan train` prints (format of tempered_gan/training/summary.py), the image is committed."""
    text = README.read_text()
    first_section = text.split("\n## ")[1]
    assert first_section.startswith("What the default run shows")
    line = re.search(r"^ {4}(done: .*)$", first_section, flags=re.M)
    assert line, "no summary line in the first section"
    assert re.fullmatch(r"done: 4000 steps in \d+ (s|min \d\d s); lens exited after step 2000; "
                        r"final FID [0-9.]+, [0-8] of 8 modes; last samples: \S+/samples/step_0004000\.png", line[1])
    image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", first_section)
    assert image and (README.parent / image[1]).is_file()


def test_readme_checkpoint_example_restores_the_lens_and_its_optimiser(tmp_path, monkeypatch, capsys):
    loop, _, checkpoint = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[:3]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(loop, "README.md", "exec"), scope)
    saved = {k: v.clone() for k, v in scope["tempering"].lens.state_dict().items()}
    exec(compile(checkpoint, "README.md", "exec"), scope)
    restored = scope["tempering"].lens.state_dict()
    assert all(torch.equal(saved[k], restored[k].cpu()) for k in saved) and scope["start"] == 4
    assert scope["tempering"].optimizer.state_dict()["state"], "the lens optimiser's moments were not restored"
