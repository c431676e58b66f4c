"""--fid-features dinov2: DINOv2 ViT-S/14's CLS token through torch-fidelity's preprocessing, its weights found,
checked and (offline) asked for in one line.

Meta's weights cannot be fetched here, so the file is a fake in their layout (random weights, every key and
shape of ``dinov2_vits14_pretrain.pth``); a reference forward pass written out below from the ViT's
definition checks that the extractor computes what DINOv2's own model computes with those weights.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_IMAGES_ARGS

from tempered_gan import metrics as M
from tempered_gan.cli.main import main
from tempered_gan.errors import UserError

timm = pytest.importorskip("timm")

TINY_MNIST = [*TINY_IMAGES_ARGS, "--no-progress", "--steps", "2", "--k", "1"]


def run(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A file in the layout of Meta's dinov2_vits14_pretrain.pth: 37 × 37 position grid (518 px), a mask token,
    layer scales away from 1 so that leaving them out would show."""
    torch.manual_seed(0)
    state = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0).state_dict()
    state = {k: (torch.rand_like(v) * 0.5 + 0.1 if k.endswith(".gamma") else v) for k, v in state.items()}
    state["mask_token"] = torch.zeros(1, 384)
    path = tmp_path_factory.mktemp("dinov2") / M.DINOV2_FILE
    torch.save(state, path)
    return path


def reference_features(state: dict, pixels: torch.Tensor) -> torch.Tensor:
    """DINOv2's forward written out: patch embedding, CLS token, the position grid resampled as DINOv2 does it
    (bicubic, scale (w/14 + 0.1)/37, no antialiasing), 12 pre-norm blocks with layer scale, the final norm, CLS."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = interpolate_bilinear_2d_like_tensorflow1x(pixels.float(), size=(224, 224), align_corners=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]) * 255, torch.tensor([0.229, 0.224, 0.225]) * 255
    x = (x - mean[:, None, None]) / std[:, None, None]
    x = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=14)
    x = torch.cat([state["cls_token"].expand(len(x), 1, 384), x.flatten(2).transpose(1, 2)], dim=1)
    grid = state["pos_embed"][:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=(16.1 / 37, 16.1 / 37), mode="bicubic")
    x = x + torch.cat([state["pos_embed"][:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
    norm = lambda h, name: F.layer_norm(h, (384,), state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-6)  # noqa
    for i in range(12):
        b = f"blocks.{i}."
        q, k, v = F.linear(norm(x, b + "norm1"), state[b + "attn.qkv.weight"], state[b + "attn.qkv.bias"]) \
            .reshape(len(x), -1, 3, 6, 64).permute(2, 0, 3, 1, 4)
        attention = ((q @ k.transpose(-2, -1)) / math.sqrt(64)).softmax(-1) @ v
        attention = F.linear(attention.transpose(1, 2).reshape(len(x), -1, 384), state[b + "attn.proj.weight"],
                             state[b + "attn.proj.bias"])
        x = x + state[b + "ls1.gamma"] * attention
        hidden = F.gelu(F.linear(norm(x, b + "norm2"), state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"]))
        x = x + state[b + "ls2.gamma"] * F.linear(hidden, state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
    return norm(x, "norm")[:, 0]


def test_the_features_are_dinov2s_cls_token_of_torch_fidelitys_input(weights):
    extractor = M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(weights))
    assert isinstance(extractor, M.DinoV2Features) and extractor.num_features == 384
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    grey = torch.rand(2, 1, 32, 32) * 2 - 1
    pixels = images.add(1).mul(127.5).round()
    state = torch.load(weights, weights_only=True)
    with torch.no_grad():
        ours = extractor(images)
        assert ours.shape == (3, 384)
        torch.testing.assert_close(ours, reference_features(state, pixels), rtol=1e-4, atol=1e-4)
        grey_pixels = grey.add(1).mul(127.5).round().expand(-1, 3, -1, -1)
        torch.testing.assert_close(extractor(grey), reference_features(state, grey_pixels), rtol=1e-4, atol=1e-4)


def test_the_weights_file_names_the_features_and_every_weight_counts(weights, tmp_path):
    first = M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(weights))
    state = torch.load(weights, weights_only=True)
    state["blocks.11.ls2.gamma"] = state["blocks.11.ls2.gamma"] * 2
    changed = tmp_path / "changed.pth"
    torch.save(state, changed)
    second = M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(changed))
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(first(images), second(images))
    assert first.key != second.key and first.key.startswith("dinov2-vits14")   # cached real features are per file
    assert "DINOv2 ViT-S/14" in first.description and "not with Inception FID" in first.description


def test_a_file_that_is_not_dinov2_vits14_is_one_line(tmp_path, weights):
    other = tmp_path / "other.pth"
    torch.save({"Mixed_7c.branch_pool.conv.weight": torch.zeros(1)}, other)
    with pytest.raises(UserError, match="is not the DINOv2 ViT-S/14 weights") as info:
        M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(other))
    assert "\n" not in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable DINOv2 ViT-S/14 state dict"):
        M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(tmp_path / "junk.pth"))
    registers = torch.load(weights, weights_only=True)
    registers["register_tokens"] = torch.zeros(1, 4, 384)              # a DINOv2 with registers: the same shapes but one
    torch.save(registers, tmp_path / "reg4.pth")
    with pytest.raises(UserError, match="is not the DINOv2 ViT-S/14 weights.*other keys") as info:
        M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(tmp_path / "reg4.pth"))
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="does not apply to mixture-ring8"):
        M.feature_extractor("dinov2", "mixture-ring8")


def test_offline_without_the_weights_eval_says_where_the_file_goes(tmp_path, mnist_dir, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("TEMPERED_GAN_DINOV2", raising=False)
    out = tmp_path / "run"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--out", out) == 0
    capsys.readouterr()
    assert run("eval", out, "--fid-features", "dinov2") == 2
    err = capsys.readouterr().err.strip()
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"put the file at {hub / M.DINOV2_FILE}" in err and "TEMPERED_GAN_DINOV2" in err
    assert "--dinov2-weights" in err and "TEMPERED_GAN_OFFLINE=1" in err
    assert err.endswith("or use --fid-features inception or classifier")   # a labelled set at 32 px: both work


def test_train_and_eval_score_with_the_dinov2_file_they_are_given(tmp_path, mnist_dir, weights, capsys, monkeypatch):
    """--dinov2-weights (train and eval) and $TEMPERED_GAN_DINOV2 reach the evaluator; eval reports FID,
    precision, recall, density and coverage on the DINOv2 features."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "run"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--eval-every", 2, "--fid-features", "dinov2",
               "--fid-samples", 16, "--dinov2-weights", weights, "--out", out) == 0
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"fid"' in line]
    assert record["features"].startswith("DINOv2 ViT-S/14") and math.isfinite(record["fid"])
    capsys.readouterr()
    missing = tmp_path / "elsewhere.pth"
    assert run("eval", out, "--dinov2-weights", missing) == 2        # the file asked for is the one looked for
    assert str(missing) in capsys.readouterr().err
    monkeypatch.setenv("TEMPERED_GAN_DINOV2", str(missing))
    assert M.dinov2_weights_path(str(weights)) == weights            # a given path comes first ...
    with pytest.raises(UserError, match="elsewhere.pth"):
        M.dinov2_weights_path()                                       # ... then the environment's
    assert run("eval", out) == 0                                      # the run's own --dinov2-weights
    scores = json.loads(capsys.readouterr().out)
    assert scores["features"].startswith("DINOv2") and scores["fid"] == pytest.approx(record["fid"], rel=1e-4)
    assert all(0 <= scores[k] <= 1 for k in ("precision", "recall", "coverage")) and scores["density"] >= 0


def test_reproduce_refuses_a_dinov2_file_in_one_line(tmp_path, capsys):
    """reproduce measures the paper's Inception FID (or the classifier's); a DINOv2 file is a mistake, not ignored."""
    assert run("reproduce", "--out", tmp_path / "table", "--dinov2-weights", tmp_path / "w.pth") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dinov2-weights does not apply" in err
    assert not (tmp_path / "table").exists()


def test_without_timm_the_features_say_how_to_install_it(weights, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "timm", None)                  # as if timm were not installed
    with pytest.raises(UserError, match=r"needs timm: pip install 'tempered-gan\[dinov2\]'"):
        M.feature_extractor("dinov2", "cifar10", dinov2_weights=str(weights))


def test_eval_names_a_weights_file_anew_when_it_has_moved_since_training(tmp_path, mnist_dir, weights, capsys):
    """eval's --dinov2-weights replaces the run's before anything is checked: a run that evaluated during training
    with a file since moved is scored with the file named now (a fresh process: no evaluator is cached)."""
    moved = tmp_path / "before.pth"
    moved.write_bytes(weights.read_bytes())
    out = tmp_path / "run"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--eval-every", 2, "--fid-features", "dinov2",
               "--fid-samples", 16, "--dinov2-weights", moved, "--out", out) == 0
    moved.unlink()
    M.evaluator.cache_clear()
    capsys.readouterr()
    assert run("eval", out) == 2 and str(moved) in capsys.readouterr().err
    assert run("eval", out, "--dinov2-weights", weights) == 0
    assert json.loads(capsys.readouterr().out)["features"].startswith("DINOv2")
