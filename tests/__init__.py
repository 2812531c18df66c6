"""dtviz tests (a regular package, so an installed top-level ``tests`` package — torch-fidelity ships one — cannot shadow it)."""
