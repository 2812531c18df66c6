import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
# Test modules also import each other by bare name (``from factories import ...``); tests/ is a package
# (see tests/__init__.py), so pytest puts only ROOT on the path: add tests/ itself.
TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(1, TESTS)

import torch  # noqa: E402

# The models under test are tiny: one intra-op thread is fastest and avoids pathological slow-downs
# when another process (the browser test's server, a torchrun worker) shares the two cores.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def served_roots_for_tests(tmp_path_factory):
    """The dashboard opens only sources under its served roots (``DTVIZ_ROOTS``, set by ``dtviz serve``); the
    tests' files live in pytest's temp folder, so serve it with the repo (servers started by tests inherit it).
    tests/test_served_roots.py sets its own roots."""
    previous = os.environ.get("DTVIZ_ROOTS")
    os.environ["DTVIZ_ROOTS"] = os.pathsep.join([ROOT, str(tmp_path_factory.getbasetemp())])
    yield
    if previous is None:
        os.environ.pop("DTVIZ_ROOTS", None)
    else:
        os.environ["DTVIZ_ROOTS"] = previous
