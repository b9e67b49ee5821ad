"""The zoo against its contract: reference parameter counts, stages, heads, shapes and BatchNorm modes.

Canonical models are only ever built abstractly (``nnx.eval_shape``), so checking ResNet-50 costs no memory.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnbench.config.strategies import STRATEGIES, frozen_stages
from cnnbench.config.suite import Suite, builtin_suites, read_suite
from cnnbench.engine.batches import StepBatches
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.heads import create_head, softmax_cross_entropy
from cnnbench.engine.train import TrainConfig, TransferModel, fit
from cnnbench.registry import UnknownNameError
from cnnbench.zoo import code_digest, count_params, create_model, get_spec, list_models
from cnnbench.zoo.densenet import DenseNet
from cnnbench.zoo.resnet import ResNet, SEBottleneck
from cnnbench.zoo.xception import Xception

NAMES = list_models()


def abstract_output(model: nnx.Module, method: str, x_shape: tuple[int, ...]) -> jax.ShapeDtypeStruct:
    """Shape of ``model.<method>(x)`` in inference mode, computed without allocating or running anything."""
    model.eval()
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    return jax.eval_shape(lambda s, x: getattr(nnx.merge(graphdef, s), method)(x), state, x)


def param_paths(model: nnx.Module) -> list[tuple]:
    return [path for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]


def test_registry_lists_the_families() -> None:
    assert {"lenet5", "resnet18", "resnet34", "resnet50"} <= set(NAMES)


def test_code_digest_follows_the_family_module() -> None:
    assert code_digest("vgg11") == code_digest("vgg16_bn")  # one module, one digest; the arch name keys them apart
    assert len({code_digest(name) for name in ("lenet5", "resnet18", "xception", "densenet121")}) == 4


SHORTEST_BUDGET = min(
    b.steps
    for suite in builtin_suites()
    if isinstance(transfer := read_suite(suite, registry_catalog()), Suite)
    for b in transfer.quadrants.values()
)


@pytest.mark.parametrize("name", NAMES)
def test_batchnorm_statistics_settle_within_the_shortest_budget(abstract: Callable[..., nnx.Module], name: str) -> None:
    """Evaluation uses the running statistics, so from scratch they must forget their initial (0, 1) values within
    the shortest target budget: with Keras's momentum 0.99, 55% of it was left after 60 steps and xception's
    ``scratch`` evaluated at chance while its training loss fell."""
    momenta = {bn.momentum for _, bn in nnx.iter_modules(abstract(name)) if isinstance(bn, nnx.BatchNorm)}
    assert all(momentum**SHORTEST_BUDGET < 0.01 for momentum in momenta), (SHORTEST_BUDGET, momenta)


@nnx.jit
def run(model: nnx.Module, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Feature map and logits in one compiled call (eager dispatch compiles every op separately: slower)."""
    feats = model.forward_features(x)
    return feats, model.forward_head(feats)


def bench_model(name: str) -> nnx.Module:
    """The benchmark-scale model with 10 classes."""
    return create_model(name, num_classes=10, **get_spec(name).bench_config)


def bench_input(name: str, batch: int = 2) -> jax.Array:
    config = get_spec(name).bench_config
    return jax.random.normal(jax.random.key(1), (batch, config["img_size"], config["img_size"], config["in_chans"]))


def variables(model: nnx.Module) -> dict[tuple, np.ndarray]:
    """Every parameter and BatchNorm statistic by path, copied to host memory."""
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    return {path: np.array(v.get_value()) for path, v in nnx.to_flat_state(state)}


def check_one_s2_train_step(name: str) -> None:
    """One step of the real training loop at benchmark scale, with the lower half of the stages frozen (``s2``):
    frozen stages keep every parameter and BatchNorm statistic bit for bit, every other stage and the head
    train, and auxiliary classifiers exist (and train) only where the arch has them. The loop's evaluation is
    the entry's inference-mode forward pass at benchmark scale, on the same model and compiled once."""
    base = S2_BASES.get(name, partial(create_model, name))(num_classes=0, **get_spec(name).bench_config)
    frozen = frozen_stages(STRATEGIES.get("s2"), base.stage_names)
    model = TransferModel.build(base, create_head("gap", base.feature_shape, 10, seed=0), 10, seed=0)
    before = variables(model)
    x, y = bench_input(name, batch=4), np.array([3, 7, 0, 1], np.int32)
    config = TrainConfig(steps=1, batch_size=4, learning_rate=1e-2, eval_points=1)
    result = fit(
        model,
        frozen,
        softmax_cross_entropy,
        StepBatches(lambda _: (x, y)),
        (x, y),
        config,
        lr_base=1e-2,
        lr_head=1e-2,
        weight_decay_head=0.0,
    )
    after = variables(result.model())
    (point,) = result.curve
    assert after.keys() == before.keys() and np.isfinite(point["train_loss"])
    assert np.isfinite(point["val_loss"]) and 0 <= point["val_accuracy"] <= 1  # the forward pass ran
    changed = {path: not np.array_equal(before[path], after[path]) for path in before}
    owners = {path[:2] if path[0] == "base" else path[:1] for path in changed}
    assert owners == {
        *(("base", s) for s in base.stage_names),
        ("head",),
        *((("aux",),) if name == "googlenet_aux" else ()),
    }
    for owner in owners:
        moved = [changed[p] for p in changed if p[: len(owner)] == owner]
        if owner[-1] in frozen:
            assert not any(moved), f"frozen stage {owner[-1]} changed"
        else:
            assert any(moved), f"trainable {owner} did not change"
    assert abstract_output(base, "forward_features", x.shape).shape == (4, *base.feature_shape)


# One entry per model class and block type runs its s2 step, in one of two tests, one at each end of this module, the
# slowest to build and compile first in each: pytest-xdist (``--dist load``) hands out consecutive chunks of the
# collection, and one chunk holding all of the heavy steps would leave the other worker idle at the end of the run.
# An entry that only changes another's depths builds its stages with the same code, so that entry's check covers it
# (every entry's stages and parameters are checked abstractly above); googlenet_aux is googlenet's every stage and
# module plus the auxiliary classifiers, and seresnet50 is resnet50's bottlenecks with SE modules added.
S2_EARLY = ("googlenet_aux", "xception", "densenet121", "lenet5", "alexnet", "vgg11")
S2_LATE = ("seresnet50", "mobilenetv2", "resnet18", "vgg11_bn")
S2_COVERED_BY = {"googlenet": "googlenet_aux", "resnet34": "resnet18", "resnet50": "seresnet50", "vgg16": "vgg11",
                 "vgg19": "vgg11", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn"}  # fmt: skip


def test_every_entry_has_its_s2_step_checked_or_is_covered_by_one_that_has() -> None:
    """A new entry joins ``S2_EARLY`` or ``S2_LATE``, or says which checked entry builds its stages."""
    assert sorted([*S2_EARLY, *S2_LATE, *S2_COVERED_BY]) == sorted(NAMES)
    assert set(S2_COVERED_BY.values()) <= {*S2_EARLY, *S2_LATE}


# densenet121's step compiles for 50 s here; the same DenseNet with one layer per dense block has the same stages and
# modules (stem, dense layers, transitions, the final norm) at a fraction of it. Likewise seresnet50 with one SE
# bottleneck per stage, two in layer2 (a projection shortcut with its stride, and an identity one; 13 s against 36 s)
# and xception with one middle-flow block (11 s against 19 s): the stages, module classes and code are the entries'.
S2_BASES: dict[str, Callable[..., nnx.Module]] = {
    "densenet121": partial(DenseNet, (1, 1, 1, 1), rngs=nnx.Rngs(0)),
    "seresnet50": partial(ResNet, SEBottleneck, (1, 2, 1, 1), rngs=nnx.Rngs(0)),
    "xception": partial(Xception, middle_repeats=1, rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("name", S2_EARLY)
def test_one_s2_train_step_changes_exactly_the_unfrozen_stages(name: str) -> None:
    """``check_one_s2_train_step`` for the entries of ``S2_EARLY``."""
    check_one_s2_train_step(name)


@pytest.mark.parametrize("name", NAMES)
def test_canonical_config_matches_reference(abstract: Callable[..., nnx.Module], name: str) -> None:
    """The canonical config, built abstractly with and without its classifier (one build each): the reference
    trainable count, stages, output shapes, every variable in a stage or the classifier, and ``num_classes=0``
    dropping exactly the classifier."""
    spec = get_spec(name)
    model, base = abstract(name), abstract(name, num_classes=0)
    x_shape = (2, spec.img_size, spec.img_size, spec.in_chans)
    trainable, total = count_params(model)
    assert trainable == spec.params
    assert total > trainable or not nnx.state(model, nnx.BatchStat)
    assert model.stage_names == spec.stages and len(spec.stages) >= 3
    assert all(isinstance(getattr(model, stage), nnx.Module) for stage in spec.stages)
    assert abstract_output(model, "__call__", x_shape).shape == (2, spec.num_classes)
    feats = abstract_output(model, "forward_features", x_shape)
    assert feats.shape == (2, *model.feature_shape) and model.feature_shape[-1] == model.num_features

    # every variable lives in a stage or the classifier
    owners = {path[0] for path, _ in nnx.to_flat_state(nnx.state(model))}
    assert owners == {*model.stage_names, "classifier"}
    assert any(path[0] == "classifier" for path in param_paths(model))

    # num_classes=0 drops exactly the classifier
    assert base.classifier is None
    assert all(path[0] in base.stage_names for path in param_paths(base))
    assert count_params(base)[0] == trainable - count_params(model.classifier)[0]
    pooled = abstract_output(base, "__call__", x_shape)
    h, w, c = base.feature_shape
    assert pooled.shape == (2, c if base.global_pool == "avg" else h * w * c)


# Pinned so that a change to the benchmark-scale models is deliberate: the benchmark's numbers depend on them.
BENCH_PARAMS = {"lenet5": (61_706, 61_706), "resnet18": (701_818, 704_218)}


@pytest.mark.parametrize("name", sorted(BENCH_PARAMS))
def test_benchmark_scale_param_counts(abstract: Callable[..., nnx.Module], name: str) -> None:
    assert count_params(abstract(name, num_classes=10, **get_spec(name).bench_config)) == BENCH_PARAMS[name]


def test_width_scales_every_stage(abstract: Callable[..., nnx.Module]) -> None:
    model = abstract("resnet50", width=0.5, num_classes=5, in_chans=1, img_size=64)
    assert model.stem.conv.conv.kernel.shape == (7, 7, 1, 32)
    assert model.layer4.layers[-1].conv3.conv.kernel.shape == (1, 1, 256, 1024)
    assert model.feature_shape == (2, 2, 1024) and model.classifier.kernel.shape == (1024, 5)
    assert abstract("resnet18", width=0.01).num_features == 5  # never below one channel per stage


def test_lenet5_flatten_adapts_to_the_input_size(abstract: Callable[..., nnx.Module]) -> None:
    model = abstract("lenet5", img_size=40)
    assert model.feature_shape == (3, 3, 120)
    assert model.classifier.layers[0].kernel.shape == (3 * 3 * 120, 84)
    with pytest.raises(ValueError, match="img_size >= 32"):
        create_model("lenet5", img_size=28)


@pytest.mark.parametrize("name", NAMES)
def test_min_img_size_is_the_smallest_image_the_family_computes_on(name: str) -> None:
    """The spec's ``min_img_size`` (what suites are checked against) agrees with the family's own code: a model
    built at it computes logits, one pixel less is refused by the family itself, and ``create_model`` refuses it
    naming the minimum."""
    spec = get_spec(name)
    width = spec.bench_config.get("width", 1.0)

    def build(size: int) -> nnx.Module:
        return nnx.eval_shape(lambda: spec.build(num_classes=10, in_chans=1, img_size=size, width=width,
                                                 rngs=nnx.Rngs(0)))  # fmt: skip

    size = spec.min_img_size
    assert abstract_output(build(size), "__call__", (2, size, size, 1)).shape == (2, 10)
    if size > 1:
        with pytest.raises(ValueError, match="img_size"):
            build(size - 1)
        with pytest.raises(ValueError, match=rf"img_size >= {size} \(the smallest image {name} computes on\)"):
            create_model(name, img_size=size - 1)


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="width=0"):
        create_model("lenet5", width=0)
    with pytest.raises(ValueError, match="num_classes=-1"):
        create_model("lenet5", num_classes=-1)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        create_model("resnet19")
    message = str(err.value)
    assert "'resnet19'" in message and all(name in message for name in NAMES)
    with pytest.raises(UnknownNameError):
        get_spec("resnet19")


def test_resnet18_bench_model_init_feature_map_and_batchnorm_modes() -> None:
    """One benchmark-scale ResNet-18 (building it compiles every initialiser, so it is built once for all three
    checks): torchvision's init, the 1×1 map at 32 px, and BatchNorm switching between train and eval mode."""
    model = bench_model("resnet18")
    kernel = np.asarray(model.layer4.layers[1].conv2.conv.kernel[...])
    assert kernel.std() == pytest.approx((2 / (3 * 3 * 128)) ** 0.5, rel=0.02)  # kaiming normal, fan_out
    bn = model.layer1.layers[0].conv1.bn
    assert (np.asarray(bn.scale[...]) == 1).all() and (np.asarray(bn.bias[...]) == 0).all()
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    fc = model.classifier
    assert np.abs(np.asarray(fc.kernel[...])).max() <= 128**-0.5  # torch.nn.Linear: uniform ±1/sqrt(fan_in)
    assert np.abs(np.asarray(fc.bias[...])).max() <= 128**-0.5 and np.asarray(fc.bias[...]).std() > 0

    # at 32 px ResNet-18 ends in a 1×1 map
    assert model.feature_shape == (1, 1, 128) and model.num_features == 128
    assert run(model, bench_input("resnet18"))[0].shape == (2, 1, 1, 128)

    # train and eval switch BatchNorm
    x = bench_input("resnet18") * 3 + 1

    def stats() -> list[np.ndarray]:
        return [np.array(v[...]) for _, v in nnx.to_flat_state(nnx.state(model, nnx.BatchStat))]

    before = stats()
    model.eval()
    first = run(model, x)[1]
    assert all((a == b).all() for a, b in zip(before, stats(), strict=True))
    np.testing.assert_array_equal(first, run(model, x)[1])
    model.train()
    run(model, x)
    assert any((a != b).any() for a, b in zip(before, stats(), strict=True))


@pytest.mark.parametrize("name", S2_LATE)
def test_one_s2_train_step_changes_exactly_the_unfrozen_stages_of_the_other_entries(name: str) -> None:
    """``check_one_s2_train_step`` for the entries of ``S2_LATE``."""
    check_one_s2_train_step(name)
