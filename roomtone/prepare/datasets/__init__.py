"""Ready-made datasets: ``synthetic_events`` (embedded default, generated in code) and ``fsdd`` (download)."""


def __getattr__(name):  # lazy, so each dataset module is imported only when used
    if name == "synthetic_events":
        from roomtone.prepare.datasets.synthetic import synthetic_events

        return synthetic_events
    if name == "fsdd":
        from roomtone.prepare.datasets.fsdd import fsdd

        return fsdd
    raise AttributeError(name)


__all__ = ["fsdd", "synthetic_events"]
