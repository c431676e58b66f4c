"""How the lens exits after K (--lens-exit): bounded, exact to resume, free after."""
import json

import pytest
import torch
from helpers import TINY_POINTS, TINY_POINTS_ARGS

from tempered_gan.cli.main import main
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.method.exits import blend_alpha
from tempered_gan.training.trainer import Trainer

TINY = [*TINY_POINTS_ARGS, "--log-every", "2",
        "--no-progress"]


def run(*argv):
    return main([str(a) for a in argv])


def state(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def trainer(data, **options):
    return Trainer.create(resolve(TrainConfig(**{**TINY_POINTS, **options})), data, torch.device("cpu"))


@pytest.mark.parametrize("k", [1, 2, 3, 10, 999, 10_000])
def test_the_default_exits_are_bounded_by_one_and_a_half_k(ring, k):
    cfg = resolve(TrainConfig(dataset="mixture-ring8", k=k, steps=2 * k))
    assert cfg.lens_exit == "drop" and cfg.lens_exit_steps == max(1, k // 2)
    assert trainer(ring, k=k, steps=2 * k).exits.exit_step == k
    assert k <= trainer(ring, k=k, steps=2 * k, lens_exit="blend").exits.exit_step <= 1.5 * k


def test_blend_alpha_falls_linearly_from_one_to_zero_after_k():
    assert [blend_alpha(t, 10, 4) for t in (1, 9, 10)] == [1.0, 1.0, 1.0]
    assert [blend_alpha(t, 10, 4) for t in (11, 12, 13, 14, 20)] == [0.75, 0.5, 0.25, 0.0, 0.0]


@pytest.mark.parametrize("exit_, gone_after", [("drop", 4), ("blend", 5), ("converge", None), ("keep", None)])
def test_each_exit_leaves_when_it_says_and_the_lens_is_never_called_after(ring, exit_, gone_after):
    tr = trainer(ring, k=4, steps=12, lens_exit=exit_, lens_exit_steps=2)
    lens = tr.lens
    calls = []
    lens.register_forward_hook(lambda m, i, o: calls.append(tr.step_count + 1))
    lens_params = [p.clone() for p in lens.parameters()]
    for _ in range(12):
        tr.step()
    assert tr.exited_at == gone_after
    if gone_after is not None:
        assert not tr.tempering.tempers and max(calls) == gone_after   # no lens forward after the exit
    else:
        assert tr.tempering.tempers and max(calls) == 12
    assert not all(torch.equal(a, b) for a, b in zip(lens_params, lens.parameters()))


def test_every_exit_is_the_same_run_up_to_k(tmp_path):
    runs = {}
    for exit_ in ("blend", "drop", "converge", "keep"):
        out = tmp_path / exit_
        assert run("train", "--steps", 4, "--k", 4, "--lens-exit", exit_, "--out", out, *TINY) == 0
        runs[exit_] = state(out)
    for exit_ in ("blend", "converge", "keep"):
        for net in ("G", "D"):
            assert all(torch.equal(v, runs[exit_][net][k]) for k, v in runs["drop"][net].items()), (exit_, net)
    assert runs["drop"]["lens"] is None and runs["drop"]["lens_exited_at"] == 4   # dropped right after step K
    for exit_ in ("blend", "converge"):
        assert all(torch.equal(v, runs[exit_]["lens"][k]) for k, v in runs["keep"]["lens"].items())


def test_blend_shows_d_the_faded_lens_and_trains_it_no_more(ring):
    tr = trainer(ring, k=2, steps=8, lens_exit="blend", lens_exit_steps=4)
    for _ in range(2):
        tr.step()
    seen, lensed = [], []
    tr.D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    tr.lens.register_forward_hook(lambda m, args, out: lensed.append((args[0].clone(), out.detach().clone())))
    lens = tr.lens
    before = [p.clone() for p in lens.parameters()]
    for t in (3, 4, 5):
        seen.clear(), lensed.clear()
        tr.step()
        (x, lx), = lensed                          # one lens forward per critic batch, no lens update
        alpha = 1 - (t - 2) / 4
        torch.testing.assert_close(seen[0], x + alpha * (lx - x))   # D's real input: L_α(X)
    assert all(torch.equal(a, b) for a, b in zip(before, lens.parameters()))
    assert tr.exited_at == 5 and not tr.tempering.tempers


def test_converge_trains_on_reconstruction_without_d_after_k(ring):
    tr = trainer(ring, k=2, steps=6, lens_exit="converge")
    d_calls = []
    tr.D.register_forward_hook(lambda m, i, o: d_calls.append(tr.step_count + 1))
    for _ in range(4):
        tr.step()
    per_step = [d_calls.count(t) for t in (1, 2, 3, 4)]
    assert per_step == [4, 4, 3, 3]   # D on L(X) and G(Z), G step, lens step; no lens-step pass once λ = 0


def test_resume_inside_the_exit_window_is_exact_and_logs_the_exit_once(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    args = ["--k", 4, "--lens-exit", "blend", "--lens-exit-steps", 4, "--checkpoint-every", 2, *TINY]
    assert run("train", "--steps", 10, "--out", straight, *args) == 0
    assert run("train", "--steps", 6, "--out", split, *args) == 0        # stops in the window (steps 5 … 7)
    assert state(split)["lens"] is not None
    assert run("train", "--resume", split, "--steps", 10) == 0
    a, b = state(straight), state(split)
    assert a["lens_exited_at"] == b["lens_exited_at"] == 7
    for net in ("G", "D"):
        assert all(torch.equal(v, b[net][k]) for k, v in a[net].items()), net
    lines = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r.get("lens_exited")] == [7]
    logged = {r["step"]: r for r in lines if "loss_d" in r}
    assert logged[4]["loss_lens_adv"] is not None and logged[6]["loss_lens_adv"] is None   # λ = 0 after K
    assert logged[6]["loss_lens_rec"] > 0 and logged[8]["loss_lens_rec"] > 0   # step 7 still blended
    assert logged[10]["loss_lens_rec"] is None and logged[10]["lambda"] is None   # gone after step 7


def test_contradictory_exit_options_are_one_clear_line(capsys):
    assert run("train", "--keep-lens", "--lens-exit", "drop", "--dry-run") == 2
    assert "contradicts --lens-exit drop" in capsys.readouterr().err
    assert run("train", "--lens-exit", "fade", "--dry-run") == 2
    assert "unknown lens-exit 'fade'" in capsys.readouterr().err
    assert run("train", "--lens-exit-steps", "0", "--dry-run") == 2


def test_saved_configurations_from_before_exits_keep_their_behaviour(tmp_path):
    cfg = resolve(TrainConfig(dataset="mixture-ring8"))
    values = json.loads(cfg.to_json())
    del values["lens_exit"], values["lens_exit_steps"]
    assert TrainConfig.from_dict(values).lens_exit == "converge"
    assert TrainConfig.from_dict({**values, "keep_lens": True}).lens_exit == "keep"


def test_configurations_of_0_1_0_load_in_todays_vocabulary():
    cfg = resolve(TrainConfig(dataset="mixture-ring8"))
    values = json.loads(cfg.to_json())
    del values["schedule"]
    assert TrainConfig.from_dict({**values, "lens": "constant"}).schedule == "constant"
    plain = TrainConfig.from_dict({**values, "lens": "none"})
    assert (plain.tempering, plain.schedule) == ("none", "sine")
    kept = TrainConfig.from_dict({**values, "lens": "sine", "keep_lens": True, "lens_exit": "drop"})
    assert (kept.schedule, kept.lens_exit) == ("sine", "keep")     # --keep-lens overrode the exit


def test_the_adversarial_term_is_on_exactly_at_the_tempered_steps_in_the_trainer_and_the_library(ring):
    """The README's loop (Tempering.step) and the trainer take the lens's adversarial term at the
    same steps: t ≤ K, K included (λ(K) = 0 there, so it weighs nothing but is computed)."""
    from tempered_gan.method.tempering import Tempering

    asked = {"trainer": [], "library": []}
    tr = trainer(ring, k=3, steps=5, lens_exit="keep")
    original = Tempering.update

    def spy(self, discriminator, lam, adversarial=True):
        asked[who].append(adversarial)
        return original(self, discriminator, lam, adversarial=adversarial)

    Tempering.update = spy
    try:
        who = "trainer"
        for _ in range(5):
            tr.step()
        who = "library"
        lib = trainer(ring, k=3, steps=5, lens_exit="keep").tempering
        x = ring.batch(torch.arange(8))
        for t in range(1, 6):
            lib.real(x, lam=lib.schedule(t))
            lib.step(tr.D, t)
    finally:
        Tempering.update = original
    assert asked["trainer"] == asked["library"] == [True, True, True, False, False]
