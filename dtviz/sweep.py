"""Placeholder until the sweep lands (being written now)."""


def add_sweep_parser(sub):
    sub.add_parser("sweep", help="pruning sweep (not yet available)")


def cmd_sweep(args):
    raise NotImplementedError
