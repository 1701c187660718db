import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def empty_weights_cache(tmp_path_factory, monkeypatch):
    """Every test sees an empty weights cache of its own, never the user's
    (``reconad weights download`` fills ``$RECONAD_CACHE``; a ResNet found there would
    change what tests of the missing-weights error see)."""
    monkeypatch.setenv("RECONAD_CACHE", str(tmp_path_factory.mktemp("weights-cache")))


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tests on one intra-op thread (the test machine is small and shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_mvtec(tmp_path_factory) -> Path:
    """A tiny MVTec-layout texture set: brick, 64x64 PNGs; train/good 16, test/good 4,
    one image per defect type (scratch, hole, stain, foreign) with masks.  Read-only:
    tests that need to change it copy it first."""
    from reconad.data.textures import generate_textures

    return generate_textures(
        tmp_path_factory.mktemp("tiny_mvtec"),
        categories=("brick",),
        image_size=64,
        n_train=16,
        n_test_good=4,
        n_test_defect_per_type=1,
    )


@pytest.fixture(scope="module")
def bars():
    """(train, test, labels) of the 16 px bars toy (helpers.recon_toys.image_toy)."""
    from helpers.recon_toys import image_toy

    return image_toy()
