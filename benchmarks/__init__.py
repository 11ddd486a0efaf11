"""Benchmarks: `python -m benchmarks` runs them all and rewrites BENCHMARKS.md."""


def load_note(extra: str = "") -> str:
    """A line with the machine's load average at the end of a run (the machine is shared), or ''."""
    import os

    try:
        load = os.getloadavg()
    except OSError:
        return ""
    return (f"\nLoad average at the end of the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            f"(1/5/15 min) on {os.cpu_count()} logical cores{extra}.")
