"""A local Ray cluster for the executor tests: started on 127.0.0.1 with 2 CPUs (2 workers of
1 thread), stopped after the module. Ray is installed by `make install` (the `ray` extra)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield ray
    finally:
        ray.shutdown()
