"""What a Spark master URL says about where executors run: known to the config (a cluster
master needs a shared scratch, refused at load) and to the engine (a session already running
against a cluster is refused at run time), so it lives below both."""


def is_local_master(master: str) -> bool:
    """``local``, ``local[N]``, ``local[*]``, ``local-cluster[...]``: every executor on the
    driver's machine, so a private temporary folder serves them all."""
    return master == "local" or master.startswith(("local[", "local-cluster["))
