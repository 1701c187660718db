"""MemAE: sparse, normalised memory addressing; learns toy rows and images."""

import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers.recon_toys import image_toy, table_toy
from reconad import Detector
from reconad.errors import ConfigError
from reconad.models import build_model
from reconad.models.memae import Memory, hard_shrink
from reconad.models.memae.model import addressing_entropy

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"epochs": 25, "batch_size": 32, "progress": False, "patience": None}


def test_hard_shrink_zeroes_small_weights_keeps_large():
    w = torch.tensor([0.001, 0.009, 0.011, 0.5])
    out = hard_shrink(w, 0.01)
    assert out[0] == 0 and out[1] == 0
    torch.testing.assert_close(out[2:], w[2:], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.01])
def test_addressing_is_sparse_and_sums_to_one(temperature):
    torch.manual_seed(0)
    mem = Memory(100, 16, threshold=1 / 100, temperature=temperature)
    w = mem.address(torch.randn(64, 16))
    assert w.shape == (64, 100)
    torch.testing.assert_close(w.sum(1), torch.ones(64))
    assert (w >= 0).all()
    assert ((w == 0).float().mean(1) > 0.3).all()  # shrinkage removed a good share of the slots
    dense = torch.softmax(
        torch.nn.functional.normalize(torch.randn(64, 16), dim=1)
        @ torch.nn.functional.normalize(mem.slots, dim=1).t()
        / temperature,
        dim=1,
    )
    assert addressing_entropy(w) < addressing_entropy(dense)


def test_entropy_term_enters_the_loss():
    x = torch.rand(4, 3, 16, 16)
    a = build_model("memae", input_shape=[3, 16, 16], entropy_weight=0.0)
    b = build_model("memae", input_shape=[3, 16, 16], entropy_weight=1.0)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert float(b.loss(x, torch.zeros(4))) > float(a.loss(x, torch.zeros(4)))


def test_image_memory_addresses_every_position():
    m = build_model("memae", input_shape=[3, 28, 28]).eval()
    _, w = m.reconstruct(torch.rand(2, 3, 28, 28))
    h, w_ = m.encoder.out_size
    assert w.shape == (2 * h * w_, 100)
    assert m.memory.threshold == pytest.approx(0.01)


def test_image_query_addresses_the_whole_map_with_image_sized_slots():
    m = build_model("memae", input_shape=[1, 28, 28], query="image").eval()
    c, (h, w_) = m.encoder.out_channels, m.encoder.out_size
    assert m.memory.slots.shape == (100, c * h * w_)
    x_hat, w = m.reconstruct(torch.rand(3, 1, 28, 28))
    assert w.shape == (3, 100) and x_hat.shape == (3, 1, 28, 28)
    # every image is rebuilt from the slots alone: the decoder's input is w @ slots
    z_hat = (w @ m.memory.slots).view(3, c, h, w_)
    assert torch.allclose(m.decoder(z_hat), x_hat, atol=1e-6)
    with pytest.raises(ConfigError, match="query"):
        build_model("memae", input_shape=[1, 28, 28], query="pixel")


def test_defaults_and_validation():
    assert build_model("memae", input_shape=[12]).memory.slots.shape[0] == 50
    with pytest.raises(ConfigError, match="shrink_threshold"):
        build_model("memae", input_shape=[12], shrink_threshold=2.0)


def test_learns_table_toy():
    train, test, labels = table_toy()
    det = Detector("memae", **FAST).fit(train)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9


def test_learns_image_toy():
    train, test, labels = image_toy()
    det = Detector("memae", image_size=16, **FAST).fit(train)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9
    assert det.anomaly_map(test[:3]).shape == (3, 16, 16)


def test_dot_product_addressing_of_the_official_code():
    torch.manual_seed(0)
    mem = Memory(20, 8, threshold=1 / 20, temperature=1.0, similarity="dot")
    z = torch.randn(32, 8) * 5
    w = mem.address(z)
    assert torch.allclose(w.sum(dim=1), torch.ones(32), atol=1e-5)
    expected = torch.softmax(z @ mem.slots.t(), dim=1)  # before shrinkage: the plain dot product
    assert torch.equal(w > 0, hard_shrink(expected, 1 / 20) > 0)
    # the cosine version ignores the query's length; the dot version does not
    assert not torch.allclose(mem.address(z), mem.address(z / 5))
    with pytest.raises(ConfigError, match="similarity"):
        build_model("memae", input_shape=[4], similarity="euclid")
