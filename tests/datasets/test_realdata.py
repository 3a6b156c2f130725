"""The real files of `make data`: checksums, shapes and class counts of each set as published, and one split
of each. Skipped when the files are absent (run `make data`); `.ci/run` fetches them first."""

import numpy as np
import pytest

from valbench.datasets.datafiles import FILES, data_dir
from valbench.datasets.fetch import missing_files
from valbench.datasets.fashion_mnist_files import fashion_mnist_arrays
from valbench.datasets.uci import SETS, rda_table
from valbench.registry import get_dataset

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(any(not (data_dir() / path).is_file() for path in FILES),
                                 reason=f"the real data files are not in {data_dir()}: run `make data`")]

# rows, features, class counts in the label's level order
EXPECTED = {
    "letter": (20000, 16, [789, 766, 736, 805, 768, 775, 773, 734, 755, 747, 739, 761, 792, 783, 753, 803, 783,
                           758, 748, 796, 813, 764, 752, 787, 786, 734]),
    "shuttle": (58000, 9, [45586, 50, 171, 8903, 3267, 10, 13]),
    "satellite": (6435, 36, [1533, 703, 1358, 626, 707, 1508]),
    "dna": (3186, 180, [767, 765, 1654]),
    "spam": (4601, 57, [2788, 1813]),
    "caravan": (9822, 137, [9236, 586]),
}


def test_every_file_verifies():
    assert missing_files(data_dir()) == {}


def test_fashion_mnist_files_hold_the_published_arrays():
    x, y, x_test, y_test = fashion_mnist_arrays(str(data_dir()))
    assert x.shape == (60000, 784) and x_test.shape == (10000, 784) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    data = get_dataset("fashion_mnist")(seed=0, n_train=20000, n_valid=2000)
    assert (data.n_train, len(data.y_valid), len(data.y_test)) == (20000, 2000, 10000)
    assert np.bincount(data.y_train).tolist() == [2000] * 10 and 0 <= data.x_train.min() < data.x_train.max() <= 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tables_hold_the_published_rows_features_and_classes(name):
    rows, features, counts = EXPECTED[name]
    path, label, _ = SETS[name]
    x, y, classes, _ = rda_table(name, path, label, str(data_dir()))
    assert x.shape == (rows, features) and np.isfinite(x).all()
    assert np.bincount(y).tolist() == counts and len(classes) == len(counts)
    data = get_dataset(name)(seed=0)
    assert all(set(np.unique(split)) == set(range(len(counts))) for split in (data.y_train, data.y_valid, data.y_test))
