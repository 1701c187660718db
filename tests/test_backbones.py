"""reconad.backbones: pretrained EfficientNet-Lite, torchvision-layout ResNets, FeaturePyramid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage import data as skdata

from reconad.backbones import (
    BACKBONES,
    EfficientNetLite,
    FeaturePyramid,
    ResNet,
    build_backbone,
    build_classifier,
    canonical_name,
    efficientnet_lite_classifier,
    imagenet_topk,
)
from reconad.errors import ConfigError, ModelFileError

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = (967, 504)  # espresso, coffee mug

# Top-5 (class, logit) of the packaged lite0 weights on chelsea, centre-cropped, resized
# to 224 (bilinear, antialias) and scaled as (x - 127/255) / (128/255).  Measured once.
LITE0_CHELSEA_TOP5 = [(285, 9.16), (282, 8.93), (281, 8.26), (287, 6.67), (728, 3.69)]


# One thread: the small models here gain little from more on a small shared machine.
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite:
    return efficientnet_lite_classifier("efficientnet_lite0")


def _chelsea_224() -> torch.Tensor:
    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float()[None] / 255.0
    h, w = img.shape[-2:]
    left = (w - h) // 2
    x = F.interpolate(img[..., left : left + h], size=(224, 224), mode="bilinear", antialias=True)
    return (x - 127.0 / 255.0) / (128.0 / 255.0)


def _matches_reference(model: torch.nn.Module, atol: float = 1e-2) -> bool:
    with torch.no_grad():
        logits = model.eval()(_chelsea_224())[0]
    top = logits.topk(5)
    ids = [int(i) for i in top.indices]
    if ids != [c for c, _ in LITE0_CHELSEA_TOP5]:
        return False
    want = torch.tensor([v for _, v in LITE0_CHELSEA_TOP5])
    return bool(torch.allclose(top.values, want, atol=atol, rtol=0.0))


# --- (a) the packaged lite0 weights are the pretrained ImageNet ones --------------------


def test_lite0_classifies_real_photos(lite0: EfficientNetLite) -> None:
    cat = imagenet_topk(lite0, skdata.chelsea())
    assert cat[0][0] in CAT_CLASSES and sum(p for c, p in cat if c in CAT_CLASSES) > 0.8
    coffee = imagenet_topk(lite0, skdata.coffee())
    assert coffee[0][0] in COFFEE_CLASSES and coffee[0][1] > 0.5


def test_lite0_logits_match_stored_reference(lite0: EfficientNetLite) -> None:
    assert _matches_reference(lite0)
    torch.manual_seed(0)
    assert not _matches_reference(EfficientNetLite("efficientnet_lite0"))


def test_lite0_state_dict_keys_match_packaged_file(lite0: EfficientNetLite) -> None:
    from reconad.backbones.checkpoint import load_state_dict_file, packaged_lite_weights

    shipped = load_state_dict_file(packaged_lite_weights(0))
    ours = lite0.state_dict()
    assert list(ours) == list(shipped)
    assert all(ours[k].shape == shipped[k].shape for k in ours)
    assert "_blocks.0._expand_conv.weight" not in ours  # expand ratio 1: no expansion


# --- (b) lite1 / lite2 ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_lite2_classify_chelsea_as_cat(name: str) -> None:
    model = efficientnet_lite_classifier(name)
    assert model.image_size == {"efficientnet_lite1": 240, "efficientnet_lite2": 260}[name]
    top = imagenet_topk(model, skdata.chelsea(), k=3)
    assert top[0][0] in CAT_CLASSES, top


# --- (c) FeaturePyramid ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_pyramid() -> FeaturePyramid:
    return build_backbone("efficientnet_lite0")


@pytest.mark.parametrize("hw", [(64, 64), (128, 96), (67, 50)])
def test_lite0_pyramid_shapes(lite0_pyramid: FeaturePyramid, hw: tuple[int, int]) -> None:
    p = lite0_pyramid
    assert p.name == "efficientnet_lite0" and p.layers == (2, 3, 5)
    assert p.channels == [24, 40, 112] and p.strides == [4, 8, 16]
    h, w = hw
    with torch.no_grad():
        maps = p(torch.rand(2, 3, h, w))
    assert isinstance(maps, list) and len(maps) == 3
    for m, c, s in zip(maps, p.channels, p.strides):
        assert m.shape == (2, c, -(-h // s), -(-w // s))
        assert torch.isfinite(m).all()


def test_pyramid_is_frozen_and_stays_in_eval(lite0_pyramid: FeaturePyramid) -> None:
    p = lite0_pyramid
    assert not any(q.requires_grad for q in p.parameters())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = p(x)
    p.train()
    assert not p.training and not any(m.training for m in p.modules())
    with torch.no_grad():
        after = p(x)  # BatchNorm in train mode would use batch stats and update buffers
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_pyramid_is_trimmed_and_matches_full_network(lite0_pyramid: FeaturePyramid, lite0: EfficientNetLite) -> None:
    keys = lite0_pyramid.state_dict().keys()
    head = ("backbone._fc", "backbone._conv_head", "backbone._bn1")
    assert not any(k.startswith(head) for k in keys)
    assert len(lite0_pyramid.backbone._blocks) == 11  # groups 1..5 of lite0: 1+2+2+3+3 blocks
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = lite0_pyramid(x)
        full = lite0.forward_stages((x - 127 / 255) / (128 / 255), (2, 3, 5))
    assert all(_close(a, b) for a, b in zip(ours, full))


def test_pyramid_custom_layers_and_lite2_channels() -> None:
    p = build_backbone("lite0", layers=[1, 4, 7], pretrained=False)
    assert p.channels == [16, 80, 320] and p.strides == [2, 16, 32] and p.layers == (1, 4, 7)
    with torch.no_grad():
        shapes = [m.shape[1:] for m in p(torch.rand(1, 3, 64, 64))]
    assert shapes == [(16, 32, 32), (80, 4, 4), (320, 2, 2)]
    p2 = build_backbone("EfficientNet-Lite2", pretrained=False)
    assert p2.name == "efficientnet_lite2" and p2.channels == [24, 48, 120]


def test_pyramid_rejects_bad_input(lite0_pyramid: FeaturePyramid) -> None:
    with pytest.raises(ValueError):
        lite0_pyramid(torch.rand(3, 64, 64))
    with pytest.raises(ValueError):
        lite0_pyramid(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


# --- (d) ResNets: torchvision key layout, checkpoint round trips ----------------------------

RESNETS = {
    # name: (parameters incl. fc, pyramid channels, a few torchvision keys and shapes)
    "resnet18": (
        11_689_512,
        [64, 128, 256],
        {
            "layer1.0.conv1.weight": (64, 64, 3, 3),
            "layer4.1.bn2.weight": (512,),
            "fc.weight": (1000, 512),
        },
    ),
    "resnet50": (
        25_557_032,
        [256, 512, 1024],
        {"layer1.0.conv1.weight": (64, 64, 1, 1), "layer4.2.conv3.weight": (2048, 512, 1, 1)},
    ),
    "wide_resnet50_2": (
        68_883_240,
        [256, 512, 1024],
        {"layer1.0.conv1.weight": (128, 64, 1, 1), "layer4.2.conv3.weight": (2048, 1024, 1, 1)},
    ),
}
COMMON_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_mean": (64,),
    "layer2.0.downsample.0.weight": None,
    "layer2.0.downsample.1.running_var": None,
    "layer3.0.downsample.1.num_batches_tracked": (),
    "fc.bias": (1000,),
}


def _random_resnet(name: str) -> ResNet:
    torch.manual_seed(0)
    model = ResNet(name)
    for m in model.modules():  # non-trivial BN statistics, so the buffers are checked too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name", list(RESNETS))
def test_resnet_layout_and_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    n_params, channels, keys = RESNETS[name]
    model = _random_resnet(name)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == n_params
    for key, shape in {**COMMON_KEYS, **keys}.items():
        assert key in state, key
        assert shape is None or tuple(state[key].shape) == shape, key
    # torchvision: layer1 of the bottleneck nets widens 64 -> 256 and needs a projection.
    assert ("layer1.0.downsample.0.weight" in state) == (name != "resnet18")

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        want = model.forward_stages((x - mean) / std, (1, 2, 3))
    # resnet18 tries both formats; the big ones one each to keep the suite fast.
    formats = {
        "resnet18": ("pth", "safetensors"),
        "resnet50": ("pth",),
        "wide_resnet50_2": ("safetensors",),
    }
    for fmt in formats[name]:
        path = tmp_path / f"{name}.{fmt}"
        if fmt == "pth":
            torch.save(state, path)
        else:
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        pyramid = build_backbone(name, weights=path)
        path.unlink()
        assert pyramid.channels == channels and pyramid.strides == [4, 8, 16]
        with torch.no_grad():
            got = pyramid(x)
        assert all(_close(a, b) for a, b in zip(got, want)), fmt


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float rounding (channels-last kernels sum in another order)."""
    return bool((a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-5)


def test_resnet_checkpoint_wrappers_and_bad_files(tmp_path: Path) -> None:
    model = _random_resnet("resnet18")
    state = model.state_dict()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        want = build_backbone("resnet18", weights=_save(tmp_path / "plain.pth", state))(x)
    wrapped = {
        "sd.pth": {"state_dict": state, "epoch": 3},
        "model.pth": {"model": {f"module.{k}": v for k, v in state.items()}},
        "nofc.pth": {k: v for k, v in state.items() if not k.startswith("fc.")},
    }
    for fname, obj in wrapped.items():
        with torch.no_grad():
            got = build_backbone("resnet18", weights=_save(tmp_path / fname, obj))(x)
        assert all(torch.equal(a, b) for a, b in zip(got, want)), fname

    with pytest.raises(ModelFileError):
        build_backbone("resnet18", weights=tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ModelFileError):
        build_backbone("resnet18", weights=tmp_path / "junk.pth")
    with pytest.raises(ModelFileError, match="do not fit"):
        build_backbone("resnet50", weights=tmp_path / "plain.pth")  # resnet18 weights
    with pytest.raises(ModelFileError, match="do not fit"):
        build_backbone("efficientnet_lite0", weights=tmp_path / "plain.pth")


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


# --- (e) configuration errors ---------------------------------------------------------------


def test_names_and_aliases() -> None:
    assert BACKBONES == (
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "efficientnet_lite_ensemble",
        "resnet18",
        "resnet50",
        "wide_resnet50_2",
    )
    for alias in ("lite0", "efficientnet-lite0", "EfficientNet_Lite0", " efficientnet_lite0 "):
        assert canonical_name(alias) == "efficientnet_lite0"
    with pytest.raises(ConfigError, match="efficientnet_lite0, .*wide_resnet50_2"):
        build_backbone("resnet34")
    with pytest.raises(ConfigError):
        build_backbone(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        efficientnet_lite_classifier("resnet18")


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("efficientnet_lite0", ()),
        ("efficientnet_lite0", (0, 1)),
        ("efficientnet_lite0", (2, 8)),
        ("efficientnet_lite0", (3, 2)),
        ("efficientnet_lite0", (2, 2, 3)),
        ("efficientnet_lite0", (True, 2)),
        ("efficientnet_lite0", (1.5,)),
        ("efficientnet_lite0", 3),
        ("resnet18", (1, 5)),
    ],
)
def test_bad_layers_raise_config_error(name: str, layers: object) -> None:
    with pytest.raises(ConfigError, match=r"stage indices, from 1 \(stride"):
        build_backbone(name, layers=layers, pretrained=False)  # type: ignore[arg-type]


def test_resnet_needs_weights_path_when_pretrained() -> None:
    with pytest.raises(ConfigError, match="--backbone-weights PATH"):
        build_backbone("resnet50")
    p = build_backbone("resnet18", layers=(2, 4), pretrained=False)  # random init is allowed
    assert p.channels == [128, 512] and p.strides == [8, 32]
    assert np.isclose(float(p.mean[0, 0]), 0.485)


def test_model_classes_reject_unknown_variants() -> None:
    with pytest.raises(ConfigError, match="efficientnet_lite2"):
        EfficientNetLite("efficientnet_lite4")
    with pytest.raises(ConfigError, match="wide_resnet50_2"):
        ResNet("resnet101")


def _random_batchnorm_statistics(model: torch.nn.Module, seed: int) -> None:
    """Running statistics and affine terms away from the identity, so folding has work to do."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


@pytest.mark.parametrize("name", [b for b in BACKBONES if b != "efficientnet_lite_ensemble"])  # its members are here
def test_folding_batch_norms_keeps_every_backbone_s_stage_outputs(name):
    import copy

    from reconad.backbones.fold import fold_batchnorms

    torch.manual_seed(0)
    model = EfficientNetLite(name) if name.startswith("efficientnet") else ResNet(name)
    _random_batchnorm_statistics(model, 1)
    model.eval()
    folded = copy.deepcopy(model)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorms(folded) == n_bn  # every batch norm sits right after its convolution
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    stages = tuple(range(1, model.num_stages + 1))
    with torch.no_grad():
        for a, b in zip(model.forward_stages(x, stages), folded.forward_stages(x, stages)):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max())), float((a - b).abs().max())
        if name.startswith("efficientnet"):  # the classifier head folds too
            assert torch.allclose(model(x), folded(x), rtol=1e-4, atol=1e-4)


def test_the_pyramid_is_built_folded_and_equal_to_the_unfolded_encoder(lite0_pyramid, monkeypatch):
    import reconad.backbones.pyramid as pyramid_module

    assert lite0_pyramid.folded_batchnorms > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0_pyramid.modules())
    monkeypatch.setattr(pyramid_module, "fold_batchnorms", lambda module: 0)
    plain = build_backbone("efficientnet_lite0")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for a, b in zip(lite0_pyramid(x), plain(x)):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()) + 1e-6)


def test_folding_refuses_a_module_in_training_mode():
    from reconad.backbones.fold import fold_batchnorms

    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorms(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train())


def test_the_lite_ensemble_joins_its_members_maps_stage_by_stage(tmp_path: Path) -> None:
    """Each stage's map is Lite0's, Lite1's and Lite2's maps of the same image, joined
    along the channels, at the same size (the members share their strides)."""
    ensemble = build_backbone("lite_ensemble", layers=(2, 3, 5))
    members = [build_backbone(f"efficientnet_lite{i}", layers=(2, 3, 5)) for i in range(3)]
    assert ensemble.name == "efficientnet_lite_ensemble"
    assert ensemble.channels == [sum(m.channels[i] for m in members) for i in range(3)] == [72, 128, 344]
    assert ensemble.strides == members[0].strides
    x = torch.rand(2, 3, 96, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        joined = ensemble(x)
        parts = [m(x) for m in members]
    for level, got in enumerate(joined):
        want = torch.cat([p[level] for p in parts], dim=1)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5), level
    with pytest.raises(ConfigError, match="no backbone_weights file"):
        build_backbone("efficientnet_lite_ensemble", weights=tmp_path / "w.safetensors")
    with pytest.raises(ConfigError, match="feature encoder only"):
        build_classifier("lite_ensemble")
