import torch
from opacus.validators import ModuleValidator

from engine.config import SweepSpec
from engine.models import build_model
from engine_support import make_spec, run_sweep


def test_models_are_opacus_compatible_and_shaped():
    for name, is_image, shape in (("logreg", False, (5, 30)), ("mlp", False, (5, 30)), ("cnn", True, (5, 1, 28, 28))):
        model = build_model(name, n_features=30, n_classes=10 if is_image else 2, hidden_units=16, is_image=is_image)
        assert ModuleValidator.validate(model, strict=False) == []  # no BatchNorm, nothing Opacus rejects
        assert model(torch.zeros(shape)).shape == (5, 10 if is_image else 2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("cnn", n_features=0, n_classes=10,
                                                                              hidden_units=0, is_image=True).modules())


def test_cnn_learns_mnist_under_dp_sgd(store):
    spec = make_spec(dataset="mnist", techniques=("baseline", "dp-sgd"), epsilons=(8.0,), clipping_norms=(1.0,),
                     seeds=(0,), epochs=2, batch_size=64, learning_rate=2e-3, train_subsample=2000, delta=1e-4,
                     accountant="rdp")
    report = run_sweep(spec, store=store, device="cpu")
    assert report.failed == 0
    by_technique = {r["technique"]: r for r in store.records()}
    assert by_technique["baseline"]["accuracy"] > 0.6  # ten classes: chance is 0.1
    assert by_technique["dp-sgd"]["accuracy"] > 0.25
    assert by_technique["dp-sgd"]["model"] == "cnn" and by_technique["dp-sgd"]["epsilon"] <= 8.0
