import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

# The models under test are tiny: one intra-op thread is fastest and avoids pathological slow-downs
# when another process (the browser test's server, a torchrun worker) shares the two cores.
torch.set_num_threads(1)
