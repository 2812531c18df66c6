"""What the command line printed on stderr, without its informational lines: ``dtviz: note: …`` (an assumption it
made about the source) and ``dtviz: job: …`` (the size and time estimate of a sampling job)."""


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and not line.startswith(("dtviz: note:", "dtviz: job:"))]
