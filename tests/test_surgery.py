import pytest
import torch

from prunebench.pruning.steps import prune_step
from prunebench.training import modelfile, models

from helpers import context, make_method, small_cnn

SPEC = models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)


@pytest.mark.parametrize("method", ["l1_channel", "magnitude"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, method):
    pruned = prune_step(small_cnn(), make_method(method, {}), 0.0, 0.5, context())
    model, masks = pruned.model, pruned.masks
    modelfile.save(tmp_path / "m.pt", model, SPEC, masks)
    loaded, loaded_masks, spec = modelfile.load(tmp_path / "m.pt")
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    assert spec == SPEC and loaded_masks.keys() == masks.keys()
    assert modelfile.architecture(loaded) == modelfile.architecture(model)


def test_a_pickled_object_is_refused_and_never_runs(tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"format": modelfile.FORMAT, "spec": Payload()}, path)
    with pytest.raises(modelfile.ModelFileError, match="refused"):
        modelfile.load(path)
    assert not (tmp_path / "pwned").exists()


def test_saving_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    modelfile.save(path, small_cnn(), SPEC)
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        modelfile.save(path, small_cnn(1), SPEC)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_the_same_model_saves_to_the_same_bytes(tmp_path):
    """DVC compares outputs by content: a re-run that changes nothing must change no file."""
    model = small_cnn()
    spec = models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)
    modelfile.save(tmp_path / "a.pt", model, spec)
    modelfile.save(tmp_path / "b.pt", model, spec)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
