"""Linear CKA: the release's estimator, the unbiased HSIC, and the streamed minibatch accumulator (exactness, memory
that does not grow with N, sums reduced over torchrun processes)."""

import datetime
import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rocket_openvla.profiling import StreamingCKA, linear_cka
from rocket_openvla.profiling.cka import centred_gram, hsic_terms

HERE = Path(__file__).parent
GROUP_TIMEOUT = datetime.timedelta(seconds=120)  # a worker that fails to start fails the test instead of hanging it


def _related(n: int, d1: int, d2: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(n, 8, generator=generator, dtype=torch.float64)
    x = shared @ torch.randn(8, d1, generator=generator, dtype=torch.float64)
    y = torch.tanh(shared @ torch.randn(8, d2, generator=generator, dtype=torch.float64))
    return x + 0.5 * torch.randn(n, d1, generator=generator, dtype=torch.float64), y


def test_linear_cka_equals_the_feature_space_formula_and_has_its_invariances():
    x, y = _related(40, 12, 7)
    xc, yc = x - x.mean(0), y - y.mean(0)
    # the same estimator written on D x D cross-covariances instead of N x N Gram matrices
    expected = (xc.T @ yc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert linear_cka(x, y) == pytest.approx(float(expected), abs=1e-12)
    rotation, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))
    assert linear_cka(3.0 * x @ rotation + 5.0, y) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x.numpy(), y.numpy()) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert linear_cka(torch.ones(5, 3), y[:5]) == 0.0  # no variance: the release's 0
    with pytest.raises(ValueError, match="same number N >= 2 of samples"):
        linear_cka(x, y[:10])


def test_unbiased_hsic_is_the_u_statistic_and_ignores_offsets():
    x, y = _related(7, 5, 3, seed=1)
    gram_x, gram_y = x @ x.T, y @ y.T
    # Song et al. (2012): HSIC_1 is the U-statistic of k_ij l_ij + k_ij l_qr - 2 k_ij l_iq over distinct i, j, q, r
    tuples = list(itertools.permutations(range(7), 4))
    u_statistic = sum(gram_x[i, j] * gram_y[i, j] + gram_x[i, j] * gram_y[q, r] - 2 * gram_x[i, j] * gram_y[i, q]
                      for i, j, q, r in tuples) / len(tuples)
    cross, _, _ = hsic_terms(gram_x[None], gram_y[None])
    assert float(cross) == pytest.approx(float(u_statistic), rel=1e-10)
    centred, _, _ = hsic_terms(centred_gram(x + 100.0)[None], centred_gram(y)[None])
    assert float(centred) == pytest.approx(float(u_statistic), rel=1e-9)


def _reference_minibatch_cka(xs, ys, batch):
    """The minibatch estimator written out from all features at once: per minibatch, HSIC_1 from its definition."""
    def hsic(gram_a, gram_b):
        n = gram_a.shape[0]
        gram_a, gram_b = gram_a - torch.diag(torch.diag(gram_a)), gram_b - torch.diag(torch.diag(gram_b))
        one = torch.ones(n, 1, dtype=gram_a.dtype)
        value = torch.trace(gram_a @ gram_b) \
            + (one.T @ gram_a @ one) * (one.T @ gram_b @ one) / ((n - 1) * (n - 2)) \
            - 2.0 / (n - 2) * (one.T @ gram_a @ gram_b @ one)
        return float(value) / (n * (n - 3))

    result = torch.zeros(len(xs), len(ys), dtype=torch.float64)
    for a, x in enumerate(xs):
        for b, y in enumerate(ys):
            sums = [0.0, 0.0, 0.0]
            for start in range(0, x.shape[0], batch):
                part_x, part_y = x[start:start + batch], y[start:start + batch]
                gram_x, gram_y = part_x @ part_x.T, part_y @ part_y.T
                sums = [sums[0] + hsic(gram_x, gram_y), sums[1] + hsic(gram_x, gram_x), sums[2] + hsic(gram_y, gram_y)]
            result[a, b] = sums[0] / (sums[1] * sums[2]) ** 0.5
    return result


def test_streamed_cka_equals_the_estimator_computed_at_once():
    data = [_related(96, 30, 20, seed) for seed in range(3)]
    xs, ys = [x for x, _ in data], [y for _, y in data[:2]]
    streamed = StreamingCKA(3, 2)
    for start in range(0, 96, 8):
        streamed.update([x[start:start + 8] for x in xs], [y[start:start + 8] for y in ys])
    assert int(streamed.batches) == 12
    assert (streamed.matrix() - _reference_minibatch_cka(xs, ys, 8)).abs().max() <= 1e-6
    # biased HSIC over one minibatch of every sample is the release's estimator
    exact = StreamingCKA(3, 2, unbiased=False)
    exact.update(xs, ys)
    expected = torch.tensor([[linear_cka(x, y) for y in ys] for x in xs], dtype=torch.float64)
    assert (exact.matrix() - expected).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="at least 4 samples"):
        StreamingCKA(3, 2).update([x[:3] for x in xs], [y[:3] for y in ys])


def test_unbiased_minibatches_avoid_the_biased_estimators_high_dimension_inflation():
    # independent features, D >> N: the population CKA is 0; the biased N-sample estimator reports ~1
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20_000, generator=generator), torch.randn(64, 20_000, generator=generator)
    assert linear_cka(x, y) > 0.9
    streamed = StreamingCKA(1, 1)
    for start in range(0, 64, 16):
        streamed.update([x[start:start + 16]], [y[start:start + 16]])
    assert abs(float(streamed.matrix())) < 0.2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    """A two-process gloo group (this process is rank 0, `cka_worker.py` rank 1) accumulating one dataset's
    minibatches; then the worker's memory probe."""
    import torch.distributed as dist

    from .cka_worker import MINIBATCHES, sharded_accumulator, small_minibatch

    result = tmp_path_factory.mktemp("cka_worker") / "result.json"
    init_method = f"tcp://127.0.0.1:{_free_port()}"
    worker = subprocess.Popen([sys.executable, str(HERE / "cka_worker.py"), init_method, str(result)],
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    dist.init_process_group("gloo", init_method=init_method, rank=0, world_size=2, timeout=GROUP_TIMEOUT)
    try:
        sharded = sharded_accumulator(0, 2)
    finally:
        dist.destroy_process_group()
    single = StreamingCKA(3, 2)
    for index in range(MINIBATCHES):
        single.update(*small_minibatch(index))
    errors = worker.communicate(timeout=300)[1]
    assert worker.returncode == 0, errors[-3000:]
    return {"sharded": sharded, "single": single, **json.loads(result.read_text())}


def test_processes_reduce_their_sums_to_the_single_process_result(two_processes):
    sharded, single = two_processes["sharded"], two_processes["single"]
    assert float(sharded.batches) == 6.0
    assert (sharded.matrix() - single.matrix()).abs().max() <= 1e-12


def test_peak_memory_stays_flat_as_the_number_of_samples_grows(two_processes):
    small, large = two_processes["peak_rss_bytes"]
    kept_features = (2048 - 256) * two_processes["feature_bytes_per_sample"]  # what keeping them would add
    assert kept_features > 100e6
    assert large - small < 8e6
