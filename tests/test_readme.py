"""The README's Python example runs as printed."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


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
